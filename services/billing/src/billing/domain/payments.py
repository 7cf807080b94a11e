"""A registration fee's payment and its lifecycle.

    PENDING -> CAPTURED | FAILED | UNKNOWN
    UNKNOWN -> CAPTURED | FAILED        (reconciliation, from the provider's records)
    CAPTURED -> REFUNDED

A PENDING payment is opened and committed before the provider is asked; until
the provider's reference is stored it is "unauthorised", and the api's retry or
the worker finishes the authorisation (the provider deduplicates it by
``authorization_key``), or fails it once the booking's hold is over, the
request that opened it has had its grace and the provider never saw it. A
charge that reaches the provider after all is given back, the payment staying
FAILED (``return_action``) and showing what went back (``charge_given_back``).

One payment is attempted per hold: registration releases the hold when a
payment fails, so after a FAILED payment the booking cannot be paid again (the
patient holds the slot again, a new booking). Otherwise the booking is paid or
being paid.
"""
from __future__ import annotations

import datetime as dt
import enum
import re
import uuid
from dataclasses import dataclass, field, replace
from typing import Iterable

from .errors import (
    AlreadyPaid,
    AlreadyRefunded,
    BadInput,
    BookingNotHeld,
    InvalidPaymentTransition,
    KeyReused,
    NoFeeDue,
    NotRefundable,
    NotTheirs,
    PaymentFailedHoldReleased,
    PaymentInProgress,
)


class PaymentStatus(enum.StrEnum):
    PENDING = "PENDING"
    CAPTURED = "CAPTURED"
    FAILED = "FAILED"
    UNKNOWN = "UNKNOWN"
    REFUNDED = "REFUNDED"


TRANSITIONS: dict[PaymentStatus, frozenset[PaymentStatus]] = {
    PaymentStatus.PENDING: frozenset({PaymentStatus.CAPTURED, PaymentStatus.FAILED, PaymentStatus.UNKNOWN}),
    PaymentStatus.UNKNOWN: frozenset({PaymentStatus.CAPTURED, PaymentStatus.FAILED}),
    PaymentStatus.CAPTURED: frozenset({PaymentStatus.REFUNDED}),
    PaymentStatus.FAILED: frozenset(),
    PaymentStatus.REFUNDED: frozenset(),
}

# Why a payment the provider never heard of is failed: no money moved.
NOT_FOUND_AT_PROVIDER = "not_found_at_provider"
# Why an unauthorised payment is failed once its booking's hold is over and the
# provider never saw it: no money moved, and the slot is no longer the patient's.
NEVER_AUTHORIZED = "never_authorized"
# Why the worker fails an unauthorised payment the provider refuses the token of.
UNKNOWN_PAYMENT_METHOD = "unknown_payment_method"
# Why a FAILED payment's charge is refunded: the provider made it after billing
# had given the payment up (an authorisation that outlived the grace and the
# hold), so registration was told the payment failed while the patient paid.
CHARGED_AFTER_FAILURE = "charged_after_failure"

# The failures billing decided without the provider's word that no charge
# was made: it never saw the charge, or its records did not show it yet. A
# charge may land on such a payment afterwards (an authorisation still on its
# way, a provider's records late), and its money must go back (``charge_may_land``).
FAILED_UNHEARD = frozenset({NEVER_AUTHORIZED, NOT_FOUND_AT_PROVIDER})

# Payment method tokens as providers hand them to the payment page; the
# provider decides whether it knows one, billing only checks the shape.
TOKEN_PATTERN = re.compile(r"^tok_[a-z0-9_]{1,60}$")

_PAYMENT_ID_NAMESPACE = uuid.UUID("5d0f8a8e-4d0b-4c8e-9b2a-7f1f3c9f0b11")


class ChargeState(enum.StrEnum):
    """A charge as the provider sees it."""

    PENDING = "pending"
    CAPTURED = "captured"
    DECLINED = "declined"


@dataclass(frozen=True)
class ChargeStatus:
    """The provider's word on one charge."""

    reference: str
    payment_id: str
    amount_fen: int
    state: ChargeState
    decline_reason: str | None = None
    settled_at: dt.datetime | None = None


@dataclass(frozen=True)
class Booking:
    """What billing needs to know of a registration booking."""

    booking_id: str
    patient_id: str
    status: str  # registration's status name: HELD, CONFIRMED, CANCELLED, ...
    fee_fen: int
    # When registration gives an unpaid hold back to stock (None: not said).
    hold_expires_at: dt.datetime | None = None


@dataclass(frozen=True)
class Payment:
    payment_id: str
    booking_id: str
    patient_id: str
    amount_fen: int
    status: PaymentStatus
    provider: str
    created_at: dt.datetime
    provider_reference: str | None = None
    failure_reason: str | None = None
    settled_at: dt.datetime | None = None
    refunded_fen: int = 0
    # Set when a refund was asked for before the capture was known.
    refund_requested_reason: str | None = None
    # The booking's hold as registration stated it when the payment opened.
    hold_expires_at: dt.datetime | None = None
    # When the provider's reference was stored (None while unauthorised).
    authorized_at: dt.datetime | None = None
    # A charge the provider made after billing had failed the payment, given
    # back: how much and when. The payment stays FAILED and refunded_fen 0.
    refunded_after_failure_fen: int = 0
    refunded_after_failure_at: dt.datetime | None = None
    # The payment page's token, kept only while unauthorised so the worker can
    # finish the authorisation; cleared with the reference.
    method_token: str | None = field(default=None, compare=False, repr=False)
    # Opaque to the rules: the trace context of the request that opened the
    # payment, so the events of its settlement continue the patient's trace.
    trace_carrier: dict[str, str] = field(default_factory=dict, compare=False, repr=False)


def check_method_token(token: str) -> str:
    token = (token or "").strip()
    if not token:
        raise BadInput("payment_method_token", "is required")
    if not TOKEN_PATTERN.match(token):
        raise BadInput("payment_method_token", "is not a payment method token (tok_...)")
    return token


def check_booking_id(text: str, field: str = "booking_id") -> str:
    """Registration's booking id in its canonical form (lower case, hyphenated),
    as registration itself spells it, so one booking has one spelling here."""
    text = (text or "").strip()
    if not text:
        raise BadInput(field, "is required")
    try:
        return str(uuid.UUID(text))
    except ValueError:
        raise BadInput(field, "is not a valid id") from None


def canonical_payment_id(text: str) -> str | None:
    """A payment id in its canonical form, None when it is not one.

    uuid.UUID reads more spellings than PostgreSQL's uuid type does
    (``urn:uuid:...``, hyphens anywhere: ``1-`` and 31 hex digits): the id
    is passed on as uuid spells it, never as it came, so the database is
    only ever asked about ids it can read.
    """
    try:
        return str(uuid.UUID(text))
    except (ValueError, TypeError, AttributeError):
        return None


def canonical_booking_id(text: str) -> str | None:
    """A booking id (registration's, a uuid) in the canonical form payments
    store it in (check_booking_id), None when it is not one: an event's id
    is text from another service, compared with the stored one."""
    return canonical_payment_id(text)


def check_payment_id(text: str, field: str = "payment_id") -> str:
    """The payment id in its canonical form (canonical_payment_id)."""
    text = (text or "").strip()
    if not text:
        raise BadInput(field, "is required")
    payment_id = canonical_payment_id(text)
    if payment_id is None:
        raise BadInput(field, "is not a payment id")
    return payment_id


def payment_id_for(patient_id: str, idempotency_key: str) -> str:
    """The same request always names the same payment.

    The provider dedupes authorisations by payment id, so a request retried
    after a crash between the provider's answer and our commit finds the
    charge it already made instead of charging the patient twice.
    """
    return str(uuid.uuid5(_PAYMENT_ID_NAMESPACE, f"{patient_id}\x1f{idempotency_key}"))


def check_payment_id_unused(payment_id: str, named: Payment | None) -> None:
    """``named``: the payment that already has the id ``payment_id_for``
    gives a new request, if any. A repeat is answered from its key before
    it gets here, so such a payment is another request's: its key was
    purged by retention and is used again. The client must take a new key."""
    if named is not None:
        raise KeyReused(f"the idempotency key names payment {payment_id}, of another request")


def authorization_key(payment_id: str) -> str:
    """The idempotency key of a payment's authorisation at the provider: the
    api, its retries and the worker all ask under it, so the charge is made once."""
    return f"registration-fee:{payment_id}"


def ticket_booking(stated: Booking, booking_id: str, now: dt.datetime) -> Booking | None:
    """The booking as registration's payment ticket states it, when billing may
    take it from there; None when the ticket's hold is over (registration is
    asked then, and knows whether it still holds). A ticket of another
    booking is the caller's mistake."""
    if stated.booking_id != booking_id:
        raise BadInput("payment_ticket", "was issued for another booking")
    if stated.hold_expires_at is None or stated.hold_expires_at <= now:
        return None
    return stated


def check_payable(booking: Booking, patient_id: str, payments: Iterable[Payment], now: dt.datetime) -> None:
    """The patient may start paying this booking now, or the reason why not."""
    if booking.patient_id != patient_id:
        raise NotTheirs("not yours")
    # Before the status: registration confirms a free booking as it is held,
    # so it reads CONFIRMED, and "not held" would tell the patient to hold it again.
    if booking.fee_fen <= 0:
        raise NoFeeDue("this booking has no fee to pay")
    failed = None
    for payment in payments:
        if payment.status in (PaymentStatus.PENDING, PaymentStatus.UNKNOWN):
            raise PaymentInProgress(
                f"payment {payment.payment_id} for this booking is waiting for the provider's answer",
            )
        if payment.status in (PaymentStatus.CAPTURED, PaymentStatus.REFUNDED):
            raise AlreadyPaid(f"this booking was paid by payment {payment.payment_id}")
        if payment.status is PaymentStatus.FAILED:
            failed = failed or payment
    if failed is not None:
        # Registration releases the hold on PaymentFailed: a second attempt
        # would race that release and capture money only to refund it.
        raise PaymentFailedHoldReleased(
            f"payment {failed.payment_id} for this booking failed and its hold was released: hold the slot again",
        )
    if booking.status != "HELD":
        raise BookingNotHeld(f"the booking is {booking.status.lower()}, not held: it cannot be paid")
    # Registration still says HELD until its expiry timer gets to the booking;
    # the hold is over all the same, and a capture now would only be rejected
    # and refunded.
    if booking.hold_expires_at is not None and booking.hold_expires_at <= now:
        raise BookingNotHeld("the booking's hold is over: it cannot be paid, hold the slot again")


def open_payment(payment_id: str, booking: Booking, provider: str, now: dt.datetime,
                 method_token: str | None = None) -> Payment:
    # The amount is the booking's fee as registration states it, never the client's.
    return Payment(
        payment_id=payment_id, booking_id=booking.booking_id, patient_id=booking.patient_id,
        amount_fen=booking.fee_fen, status=PaymentStatus.PENDING, provider=provider, created_at=now,
        hold_expires_at=booking.hold_expires_at, method_token=method_token,
    )


class ResumeAction(enum.StrEnum):
    """What the worker, or a retry of the request, does with a payment opened
    but never authorised."""

    # The provider has the charge: store its reference, settle as usual.
    RECORD = "record"
    # The provider never saw it and the hold still runs: authorise it now.
    AUTHORIZE = "authorize"
    # The provider never saw it, the hold is over and so is the grace: fail
    # it, no money moved.
    ABANDON = "abandon"
    # Ask again later: nothing to authorise it with while the hold runs, or
    # the hold is over but the payment is younger than the grace, so the
    # request that opened it may still be inside the provider's call (the
    # api answers payment_in_progress).
    WAIT = "wait"


def resume_action(payment: Payment, seen_by_provider: bool, now: dt.datetime, *,
                  grace: dt.timedelta) -> ResumeAction:
    """``grace``: how long the request that opened a payment may take to
    authorise it (BILLING_AUTHORIZE_GRACE_SECONDS). "The provider never saw
    it" is only known once that request is over: until then its charge may
    still be on the way, and failing the payment would leave that charge on
    a payment billing has given up."""
    if seen_by_provider:
        return ResumeAction.RECORD
    if payment.hold_expires_at is not None and now >= payment.hold_expires_at:
        return ResumeAction.ABANDON if now - payment.created_at >= grace else ResumeAction.WAIT
    return ResumeAction.AUTHORIZE if payment.method_token else ResumeAction.WAIT


def abandon(payment: Payment, now: dt.datetime, reason: str = NEVER_AUTHORIZED) -> Payment:
    """An unauthorised payment given up: the provider never charged it."""
    return transition(payment, PaymentStatus.FAILED, settled_at=now, failure_reason=reason)


def transition(payment: Payment, to: PaymentStatus, **changes) -> Payment:
    if to not in TRANSITIONS[payment.status]:
        raise InvalidPaymentTransition(f"a {payment.status.lower()} payment cannot become {to.lower()}")
    if to is PaymentStatus.FAILED:
        # A refund asked for while the payment was pending or unknown
        # (AWAIT_CAPTURE) finds nothing captured now. Kept, it would take the
        # payment out of the late-charge sweep (charge_may_land, the partial
        # index payments_failed_unheard), so a charge landing on it after all
        # would never be given back; such a charge is asked back as
        # CHARGED_AFTER_FAILURE instead.
        changes.setdefault("refund_requested_reason", None)
    return replace(payment, status=to, **changes)


def sources_of(to: PaymentStatus) -> frozenset[PaymentStatus]:
    """The statuses a payment may be in to move to ``to``."""
    return frozenset(s for s, targets in TRANSITIONS.items() if to in targets)


def settle(payment: Payment, answer: ChargeStatus | None) -> Payment | None:
    """The payment once the provider's answer is known; None while there is none."""
    if answer is None or answer.state is ChargeState.PENDING:
        return None
    if answer.state is ChargeState.CAPTURED:
        return transition(payment, PaymentStatus.CAPTURED, settled_at=answer.settled_at)
    return transition(payment, PaymentStatus.FAILED, settled_at=answer.settled_at,
                      failure_reason=answer.decline_reason or "declined")


def not_found_at_provider(payment: Payment, now: dt.datetime) -> Payment:
    return transition(payment, PaymentStatus.FAILED, settled_at=now, failure_reason=NOT_FOUND_AT_PROVIDER)


def unanswered(payment: Payment, now: dt.datetime, timeout: dt.timedelta) -> Payment | None:
    """A pending payment the provider left unanswered too long becomes UNKNOWN:
    the money may or may not have moved, only reconciliation can tell."""
    # Counted from when the provider got it: a payment the worker authorised
    # late has the same time to answer as any other.
    asked_at = payment.authorized_at or payment.created_at
    if payment.status is PaymentStatus.PENDING and now - asked_at >= timeout:
        return transition(payment, PaymentStatus.UNKNOWN)
    return None


class ReturnAction(enum.StrEnum):
    """What becomes of a charge the provider made for a payment billing had failed."""

    # The provider captured it: give it back.
    REFUND = "refund"
    # The provider declined it: no money moved, nothing to give back.
    NOTHING_MOVED = "nothing_moved"
    # The provider has not settled it yet: ask again later (it can only
    # refund what it has captured).
    WAIT = "wait"


def charged_after_failure(payment: Payment) -> bool:
    """A payment failed by billing whose charge the provider made all the same."""
    return payment.status is PaymentStatus.FAILED and payment.refund_requested_reason == CHARGED_AFTER_FAILURE


def charge_may_land(payment: Payment) -> bool:
    """A payment billing failed without the provider's word (FAILED_UNHEARD)
    whose charge, if one lands, has not been asked back yet: the provider is
    asked about it again (a retry of its request, the worker's sweep)."""
    return (payment.status is PaymentStatus.FAILED and payment.failure_reason in FAILED_UNHEARD
            and payment.refund_requested_reason is None)


def charged_after_all(record: ChargeStatus | None) -> bool:
    """``record``: the provider's record of a charge billing had failed the
    payment of. Captured or on its way: the money must go back. Declined, or
    none: no money moved."""
    return record is not None and record.state is not ChargeState.DECLINED


def return_action(payment: Payment, record: ChargeStatus | None) -> ReturnAction:
    """``record``: the provider's own record of the payment's charge (None:
    it has none yet, asked again later)."""
    if not charged_after_failure(payment):
        raise NotRefundable(f"payment {payment.payment_id} has no charge made after its failure to give back")
    if record is None or record.state is ChargeState.PENDING:
        return ReturnAction.WAIT
    if record.state is ChargeState.CAPTURED:
        return ReturnAction.REFUND
    return ReturnAction.NOTHING_MOVED


def charge_given_back(payment: Payment, amount_fen: int, refunded_at: dt.datetime) -> Payment:
    """The payment once the charge made after its failure is refunded: still
    FAILED (registration was told so and released the hold), showing what
    went back and when, its refund no longer asked for."""
    if not charged_after_failure(payment):
        raise NotRefundable(f"payment {payment.payment_id} has no charge made after its failure to give back")
    return replace(payment, refunded_after_failure_fen=amount_fen, refunded_after_failure_at=refunded_at,
                   refund_requested_reason=None)


class RefundAction(enum.StrEnum):
    ISSUE = "issue"
    ALREADY_REFUNDED = "already_refunded"
    # The capture is not known yet: remember the request, refund once captured.
    AWAIT_CAPTURE = "await_capture"
    NOTHING_TO_REFUND = "nothing_to_refund"


def refund_action(payment: Payment) -> RefundAction:
    if payment.status is PaymentStatus.CAPTURED:
        return RefundAction.ISSUE
    if payment.status is PaymentStatus.REFUNDED:
        return RefundAction.ALREADY_REFUNDED
    if payment.status in (PaymentStatus.PENDING, PaymentStatus.UNKNOWN):
        return RefundAction.AWAIT_CAPTURE
    return RefundAction.NOTHING_TO_REFUND


def refund(payment: Payment) -> Payment:
    """The whole captured fee goes back: a registration fee is refunded once, in full."""
    if payment.status is PaymentStatus.REFUNDED:
        raise AlreadyRefunded(f"payment {payment.payment_id} was already refunded")
    if payment.status is not PaymentStatus.CAPTURED:
        raise NotRefundable(f"a {payment.status.lower()} payment has nothing captured to refund")
    return transition(payment, PaymentStatus.REFUNDED, refunded_fen=payment.amount_fen, refund_requested_reason=None)
