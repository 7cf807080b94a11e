"""A registration fee's payment and its lifecycle.

    PENDING -> CAPTURED | FAILED | UNKNOWN
    UNKNOWN -> CAPTURED | FAILED        (reconciliation, from the provider's records)
    CAPTURED -> REFUNDED

A booking has at most one payment that is not FAILED: after a failure the
patient may try again, otherwise the booking is paid or being paid.
"""
from __future__ import annotations

import datetime as dt
import enum
import re
import uuid
from dataclasses import dataclass, field, replace
from typing import Iterable

from tuoguan_common.errors import InvalidArgument, PermissionDenied

from ..exceptions import (
    AlreadyPaid,
    AlreadyRefunded,
    BookingNotHeld,
    InvalidPaymentTransition,
    NoFeeDue,
    NotRefundable,
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
    # Opaque to the rules: the trace context of the request that opened the
    # payment, so the events of its settlement continue the patient's trace.
    trace_carrier: dict[str, str] = field(default_factory=dict, compare=False, repr=False)


def check_method_token(token: str) -> str:
    token = (token or "").strip()
    if not token:
        raise InvalidArgument("payment_method_token", "is required")
    if not TOKEN_PATTERN.match(token):
        raise InvalidArgument("payment_method_token", "is not a payment method token (tok_...)")
    return token


def is_payment_id(text: str) -> bool:
    try:
        uuid.UUID(text)
    except (ValueError, TypeError, AttributeError):
        return False
    return True


def check_payment_id(text: str, field: str = "payment_id") -> str:
    text = (text or "").strip()
    if not text:
        raise InvalidArgument(field, "is required")
    if not is_payment_id(text):
        raise InvalidArgument(field, "is not a payment id")
    return text


def payment_id_for(patient_id: str, idempotency_key: str) -> str:
    """The same request always names the same payment.

    The provider dedupes authorisations by payment id, so a request retried
    after a crash between the provider's answer and our commit finds the
    charge it already made instead of charging the patient twice.
    """
    return str(uuid.uuid5(_PAYMENT_ID_NAMESPACE, f"{patient_id}\x1f{idempotency_key}"))


def check_payable(booking: Booking, patient_id: str, payments: Iterable[Payment]) -> None:
    """The patient may start paying this booking now, or the reason why not."""
    if booking.patient_id != patient_id:
        raise PermissionDenied("not yours")
    for payment in payments:
        if payment.status in (PaymentStatus.PENDING, PaymentStatus.UNKNOWN):
            raise PaymentInProgress(
                f"payment {payment.payment_id} for this booking is waiting for the provider's answer",
            )
        if payment.status in (PaymentStatus.CAPTURED, PaymentStatus.REFUNDED):
            raise AlreadyPaid(f"this booking was paid by payment {payment.payment_id}")
    if booking.status != "HELD":
        raise BookingNotHeld(f"the booking is {booking.status.lower()}, not held: it cannot be paid")
    if booking.fee_fen <= 0:
        raise NoFeeDue("this booking has no fee to pay")


def open_payment(payment_id: str, booking: Booking, provider: str, now: dt.datetime) -> Payment:
    # The amount is the booking's fee as registration states it, never the client's.
    return Payment(
        payment_id=payment_id, booking_id=booking.booking_id, patient_id=booking.patient_id,
        amount_fen=booking.fee_fen, status=PaymentStatus.PENDING, provider=provider, created_at=now,
    )


def transition(payment: Payment, to: PaymentStatus, **changes) -> Payment:
    if to not in TRANSITIONS[payment.status]:
        raise InvalidPaymentTransition(f"a {payment.status.lower()} payment cannot become {to.lower()}")
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
    if payment.status is PaymentStatus.PENDING and now - payment.created_at >= timeout:
        return transition(payment, PaymentStatus.UNKNOWN)
    return None


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
