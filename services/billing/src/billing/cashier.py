"""The cashier: takes registration fees through the provider, settles them
as the provider answers, gives them back when a booking is cancelled.

It joins the domain (what may happen), the store (what is written) and the
provider (where money moves). The api and the worker are thin shells over it.
Every change of a payment, its journal entry and its event commit together.
"""
from __future__ import annotations

import datetime as dt
import logging
import uuid
from dataclasses import dataclass, field, replace
from typing import Callable

import psycopg

from tuoguan.billing.v1 import billing_pb2, events_pb2
from tuoguan_common import metrics, outbox, telemetry
from tuoguan_common.outbox import utcnow

from .domain import ledger, payments
from .domain.errors import PaymentInProgress
from .domain.payments import Booking, Payment, PaymentStatus, RefundAction, ResumeAction
from .exceptions import ProviderRequestConflict, ProviderUnavailable, RefundRefused, UnknownPaymentMethod
from .messages import payment_message
from .providers.base import PaymentProvider
from .registration_client import BookingSource
from .store import BillingStore

log = logging.getLogger(__name__)

PAY_SCOPE = "billing.PayRegistrationFee"


@dataclass
class Settled:
    """What one run changed, counted once its transaction has committed."""

    captured: list[Payment] = field(default_factory=list)
    failed: list[Payment] = field(default_factory=list)
    unknown: list[Payment] = field(default_factory=list)
    refunded: list[Payment] = field(default_factory=list)

    def count(self, *, reconciled: bool = False) -> "Settled":
        for payment in self.captured:
            metrics.BILLING_PAYMENTS.labels("captured").inc()
            metrics.BILLING_CAPTURED_FEN.inc(payment.amount_fen)
        if self.failed:
            metrics.BILLING_PAYMENTS.labels("failed").inc(len(self.failed))
        if self.unknown:
            metrics.BILLING_PAYMENTS.labels("unknown").inc(len(self.unknown))
        if reconciled:
            for outcome, settled in (("captured", self.captured), ("failed", self.failed)):
                if settled:
                    metrics.BILLING_RECONCILED.labels(outcome).inc(len(settled))
        for payment in self.refunded:
            metrics.BILLING_REFUNDS.inc()
            metrics.BILLING_REFUNDED_FEN.inc(payment.refunded_fen)
        return self


def _charged_after_giving_up(payment: Payment) -> None:
    # The provider made a charge for a payment already failed as never
    # authorised (an authorisation that outlived the worker's grace and the
    # booking's hold).
    # Its reference is on the row; the day's reconciliation shows the capture
    # as missing in the ledger, for finance to refund by hand.
    log.error("the provider charged a payment billing had already given up",
              extra={"payment_id": payment.payment_id, "status": payment.status.value})


@dataclass(frozen=True)
class FeeRequest:
    """A patient's PayRegistrationFee, parsed."""

    patient_id: str
    booking_id: str  # canonical (payments.check_booking_id)
    method_token: str
    idempotency_key: str
    # Of the request as parsed, so two spellings of one booking id are one request.
    fingerprint: str
    bearer: str | None

    @property
    def payment_id(self) -> str:
        return payments.payment_id_for(self.patient_id, self.idempotency_key)


class Cashier:
    def __init__(self, store: BillingStore, provider: PaymentProvider, *, bookings: BookingSource | None = None,
                 clock: Callable[[], dt.datetime] = utcnow, payment_timeout: dt.timedelta = dt.timedelta(seconds=5),
                 authorize_grace: dt.timedelta = dt.timedelta(seconds=5), batch_size: int = 500):
        for outcome in ("captured", "failed"):
            metrics.BILLING_RECONCILED.labels(outcome)
        self.store = store
        self.provider = provider
        self.bookings = bookings
        self.clock = clock
        self.payment_timeout = payment_timeout
        self.authorize_grace = authorize_grace
        self.batch_size = batch_size

    @property
    def database(self):
        return self.store.database

    # Paying a fee (api).

    def pay_fee(self, request: FeeRequest) -> billing_pb2.PayRegistrationFeeResponse:
        """Starts paying a held booking's fee; the answer is the PENDING payment
        with the provider's reference, and it settles when the provider answers.

        No transaction is open while registration or the provider is asked:

        1. the first answer, if this request was made before (a short read);
        2. the booking, from registration;
        3. transaction 1: the idempotency key and the PENDING payment, committed
           before any money moves, so a charge never exists without its row;
        4. the provider's authorisation, under the payment's authorisation key:
           the provider makes one charge whoever asks and however often;
        5. transaction 2: the provider's reference and the answer under the key.

        A retry of a request that stopped between 3 and 5 carries on from 4;
        the worker's ``authorize_unfinished`` does the same for one nobody retries.
        """
        answer = self._first_answer(request)
        if answer is None:
            assert self.bookings is not None, "the api builds the cashier with a booking source"
            booking = self.bookings.get_booking(request.booking_id, request.bearer)
            opened = self._open_payment(request, booking)
            if isinstance(opened, Payment):
                return self._authorize(request, opened, opened_here=True)
            answer = opened
        if answer:
            return billing_pb2.PayRegistrationFeeResponse.FromString(answer)
        # Claimed by a request that has not finished: it died, or still runs. Carry on.
        with self.database.transaction() as cur:
            payment = self.store.get_payment(cur, request.payment_id)
        if payment is None:
            raise PaymentInProgress("this request is still opening its payment")
        return self._authorize(request, payment, opened_here=False)

    def _first_answer(self, request: FeeRequest) -> bytes | None:
        """None for a new request; else its first answer, empty while the first has not finished."""
        with self.database.transaction() as cur:
            earlier = self.store.earlier_request(cur, PAY_SCOPE, request.patient_id, request.idempotency_key)
        if earlier is None:
            return None
        if earlier.request_hash != request.fingerprint:
            raise outbox.IdempotencyConflict(request.idempotency_key)
        return earlier.response or b""

    def _open_payment(self, request: FeeRequest, booking: Booking) -> Payment | bytes:
        """Transaction 1: claims the key and commits the PENDING payment; or,
        when the same request claimed the key meanwhile, its answer so far."""
        payment = replace(
            payments.open_payment(request.payment_id, booking, self.provider.name, self.clock(),
                                  method_token=request.method_token),
            trace_carrier=telemetry.inject(),
        )
        with self.database.transaction() as cur:
            claimed = outbox.claim_key(cur, PAY_SCOPE, request.patient_id, request.idempotency_key,
                                       request.fingerprint)
            if claimed is not None:
                return claimed
            payments.check_payable(booking, request.patient_id,
                                   self.store.payments_for_booking(cur, payment.booking_id))
            inserted = self.store.insert_payment(cur, payment)
            # Read again after the insert: another attempt that committed or
            # failed in between is seen now (a failed one released the hold).
            payments.check_payable(booking, request.patient_id, [
                p for p in self.store.payments_for_booking(cur, payment.booking_id)
                if p.payment_id != payment.payment_id
            ])
            if not inserted:
                raise PaymentInProgress("another payment for this booking has just started")
        return payment

    def _authorize(self, request: FeeRequest, payment: Payment, *,
                   opened_here: bool) -> billing_pb2.PayRegistrationFeeResponse:
        """Steps 4 and 5: the provider's authorisation, then the reference and the answer."""
        reference = None
        if payment.status is PaymentStatus.PENDING and payment.provider_reference is None:
            reference = self._authorization(request, payment, retried=not opened_here)
        with self.database.transaction() as cur:
            earlier = self.store.earlier_request(cur, PAY_SCOPE, request.patient_id, request.idempotency_key,
                                                 lock=True)
            stored = reference is not None and self.store.set_provider_reference(
                cur, payment.payment_id, reference, self.clock())
            if earlier is not None and earlier.response:
                # A retry of the same request answered first: one answer for all.
                return billing_pb2.PayRegistrationFeeResponse.FromString(earlier.response)
            payment = self.store.get_payment(cur, payment.payment_id)
            if payment is None:  # withdrawn by an attempt the provider refused
                raise PaymentInProgress("this request's payment was withdrawn: try again")
            response = billing_pb2.PayRegistrationFeeResponse(payment=payment_message(payment))
            outbox.store_response(cur, PAY_SCOPE, request.patient_id, request.idempotency_key, response)
        if stored and payment.status is PaymentStatus.FAILED:
            _charged_after_giving_up(payment)
        if opened_here:
            metrics.BILLING_PAYMENTS.labels("pending").inc()
        return response

    def _authorization(self, request: FeeRequest, payment: Payment, *, retried: bool) -> str | None:
        """Step 4: the provider's reference for the payment. None when a retry
        comes after the booking's hold is over and the provider never saw the
        payment: it is failed then, as the worker would (no money moved)."""
        key = payments.authorization_key(payment.payment_id)
        if retried:
            seen = self.provider.authorizations([key])
            now = self.clock()
            action = payments.resume_action(replace(payment, method_token=request.method_token), key in seen, now)
            if action is ResumeAction.RECORD:
                return seen[key]
            if action is ResumeAction.ABANDON:
                with self.database.transaction() as cur:
                    settled = self._book(cur, [payments.abandon(payment, now)], now)
                settled.count()
                return None
        try:
            return self.provider.authorize(payment.payment_id, payment.amount_fen, request.method_token,
                                           idempotency_key=key).reference
        except UnknownPaymentMethod:
            # Refused before any charge was made: the request leaves nothing
            # behind, and the patient may pay with another method.
            with self.database.transaction() as cur:
                if self.store.withdraw_unauthorized(cur, payment.payment_id):
                    self.store.forget_request(cur, PAY_SCOPE, request.patient_id, request.idempotency_key)
            raise

    # Finishing what the api did not (worker timer).

    def authorize_unfinished(self) -> Settled:
        """Payments opened but not authorised after the grace (the api died,
        or lost the provider, between its two transactions): the provider's
        reference is stored if it has the charge; otherwise the payment is
        authorised now while the booking's hold runs, or failed once it is
        over (no money moved). The provider deduplicates every authorisation,
        so nothing here charges twice. Cheap when there is nothing to do: one
        query on a partial index that is empty but for crashes and outages.
        """
        now = self.clock()
        with self.database.transaction() as cur:
            batch = self.store.claim_unauthorized(cur, now - self.authorize_grace, self.batch_size)
            if not batch:
                return Settled()
            # Asked with the rows locked, so a replica cannot authorise one
            # while this one decides it was never seen.
            seen = self.provider.authorizations([payments.authorization_key(p.payment_id) for p in batch])
            actions = {p.payment_id: payments.resume_action(p, payments.authorization_key(p.payment_id) in seen, now)
                       for p in batch}
            for payment in batch:
                if actions[payment.payment_id] is ResumeAction.RECORD:
                    self.store.set_provider_reference(cur, payment.payment_id,
                                                      seen[payments.authorization_key(payment.payment_id)], now)
            settled = self._book(cur, [payments.abandon(p, now) for p in batch
                                       if actions[p.payment_id] is ResumeAction.ABANDON], now)
        for payment in batch:
            if actions[payment.payment_id] is ResumeAction.AUTHORIZE:
                settled.failed.extend(self._authorize_unfinished(payment).failed)
        log.info("unfinished payments resumed", extra={"counts": {
            action.value: sum(1 for a in actions.values() if a is action) for action in ResumeAction}})
        return settled.count()

    def _authorize_unfinished(self, payment: Payment) -> Settled:
        assert payment.method_token is not None
        key = payments.authorization_key(payment.payment_id)
        try:
            reference = self.provider.authorize(payment.payment_id, payment.amount_fen, payment.method_token,
                                                idempotency_key=key).reference
        except UnknownPaymentMethod:
            now = self.clock()
            with self.database.transaction() as cur:
                return self._book(cur, [payments.abandon(payment, now, payments.UNKNOWN_PAYMENT_METHOD)], now)
        except (ProviderUnavailable, ProviderRequestConflict) as exc:
            log.error("provider did not authorise an unfinished payment; will retry",
                      extra={"payment_id": payment.payment_id, "error": type(exc).__name__})
            return Settled()
        with self.database.transaction() as cur:
            stored = self.store.set_provider_reference(cur, payment.payment_id, reference, self.clock())
            after = self.store.get_payment(cur, payment.payment_id)
        if stored and after is not None and after.status is PaymentStatus.FAILED:
            _charged_after_giving_up(after)
        return Settled()

    # Settling with the provider (worker timers).

    def settle_pending(self) -> Settled:
        """Asks the provider about pending payments, in one batch, and books its answers."""
        return self._ask_about_pending(give_up=False).count()

    def give_up_on_unanswered(self) -> Settled:
        """Pending payments past the timeout: one last question, then UNKNOWN."""
        settled = self._ask_about_pending(give_up=True)
        if settled.unknown:
            log.warning("payments left unanswered by the provider", extra={"count": len(settled.unknown)})
        return settled.count()

    def _ask_about_pending(self, *, give_up: bool) -> Settled:
        now = self.clock()
        with self.database.transaction() as cur:
            batch = self.store.claim_payments(cur, PaymentStatus.PENDING, self.batch_size,
                                              created_before=now - self.payment_timeout if give_up else None)
            if not batch:
                return Settled()
            answers = {a.reference: a for a in self.provider.poll([p.provider_reference for p in batch])}
            changed = []
            for payment in batch:
                after = payments.settle(payment, answers.get(payment.provider_reference))
                if after is None and give_up:
                    after = payments.unanswered(payment, now, self.payment_timeout)
                if after is not None:
                    changed.append(after)
            return self._book(cur, changed, now)

    def reconcile_unknown(self) -> Settled:
        """Settles UNKNOWN payments from the provider's own records."""
        with self.database.transaction() as cur:
            batch = self.store.claim_payments(cur, PaymentStatus.UNKNOWN, self.batch_size)
            settled = Settled()
            if batch:
                records = {r.reference: r for r in self.provider.lookup([p.provider_reference for p in batch])}
                now = self.clock()
                changed = []
                for payment in batch:
                    record = records.get(payment.provider_reference)
                    changed.append(payments.not_found_at_provider(payment, now) if record is None
                                   else payments.settle(payment, record))
                settled = self._book(cur, [c for c in changed if c], now)
            unknown = self.store.count_unknown(cur)
        metrics.BILLING_UNKNOWN_PAYMENTS.set(unknown)
        return settled.count(reconciled=True)

    def _book(self, cur: psycopg.Cursor, changed: list[Payment], now: dt.datetime) -> Settled:
        """Writes settled payments with their journal entries and events."""
        written = self.store.save_transitions(cur, changed, now)
        settled = Settled()
        for payment in changed:
            if payment.payment_id not in written:
                continue
            if payment.status is PaymentStatus.CAPTURED:
                settled.captured.append(payment)
            elif payment.status is PaymentStatus.FAILED:
                settled.failed.append(payment)
            elif payment.status is PaymentStatus.UNKNOWN:
                settled.unknown.append(payment)
        self.store.post_entries(cur, (
            ledger.capture_entry(p.payment_id, p.amount_fen, p.provider, p.settled_at or now)
            for p in settled.captured
        ), now)
        # A timer settles the payment long after the request: its events carry
        # the request's trace, so the booking saga reads as one trace.
        for p in settled.captured:
            outbox.append(cur, events_pb2.PaymentCaptured(
                payment_id=p.payment_id, booking_id=p.booking_id, patient_id=p.patient_id, amount_fen=p.amount_fen,
            ), trace_carrier=p.trace_carrier)
        for p in settled.failed:
            outbox.append(cur, events_pb2.PaymentFailed(
                payment_id=p.payment_id, booking_id=p.booking_id, patient_id=p.patient_id, reason=p.failure_reason,
            ), trace_carrier=p.trace_carrier)
        return settled

    # Refunds (worker event handlers and timer).

    def refund_for_booking(self, cur: psycopg.Cursor, *, payment_id: str, booking_id: str, reason: str) -> Settled:
        """Gives a booking's captured fee back, once, whatever the redeliveries.

        Runs in the event's transaction (its inbox row commits with the
        refund). A payment whose capture is not known yet keeps the request
        and is refunded when it is captured.
        """
        payment = self._payment_of_booking(cur, payment_id, booking_id)
        if payment is None:
            log.warning("refund asked for a payment billing does not have", extra={"reason": reason})
            return Settled()
        action = payments.refund_action(payment)
        if action is RefundAction.ISSUE:
            return self._refund(cur, payment, reason)
        if action is RefundAction.AWAIT_CAPTURE:
            self.store.request_refund(cur, payment.payment_id, reason, self.clock())
        log.info("refund not issued now", extra={"payment_id": payment.payment_id, "action": action.value})
        return Settled()

    def issue_requested_refunds(self) -> Settled:
        """Refunds asked for before their capture was known, or deferred
        because the provider could not refund them then; one transaction each,
        so one the provider still refuses does not hold back the others."""
        settled = Settled()
        tried: list[str] = []
        while len(tried) < self.batch_size:
            with self.database.transaction() as cur:
                claimed = self.store.claim_refunds_requested(cur, 1, skip=tried)
                if not claimed:
                    break
                payment = claimed[0]
                tried.append(payment.payment_id)
                done = self._refund(cur, payment, payment.refund_requested_reason or "requested")
            settled.refunded.extend(done.refunded)
        return settled.count()

    def _payment_of_booking(self, cur: psycopg.Cursor, payment_id: str, booking_id: str) -> Payment | None:
        if payment_id and payments.is_payment_id(payment_id):
            payment = self.store.get_payment(cur, payment_id, lock=True)
            if payment is not None and booking_id and payment.booking_id != booking_id:
                log.warning("refund event names another booking's payment", extra={"payment_id": payment_id})
                return None
            return payment
        return self.store.live_payment_for_booking(cur, booking_id, lock=True) if booking_id else None

    def _refund(self, cur: psycopg.Cursor, payment: Payment, reason: str) -> Settled:
        refunded = payments.refund(payment)
        try:
            # One refund per payment: the key makes a retry after a crash find
            # the refund the provider already made.
            receipt = self.provider.refund(payment.provider_reference, payment.amount_fen,
                                           idempotency_key=f"refund:{payment.payment_id}")
        except (ProviderUnavailable, RefundRefused) as exc:
            # Kept, not lost: issue_requested_refunds tries again later.
            log.error("provider did not refund; will retry", extra={"payment_id": payment.payment_id,
                                                                     "error": type(exc).__name__})
            self.store.request_refund(cur, payment.payment_id, reason, self.clock())
            return Settled()
        now = self.clock()
        refund_id = str(uuid.uuid4())
        self.store.insert_refund(cur, refund_id=refund_id, payment_id=payment.payment_id,
                                 amount_fen=receipt.amount_fen, reason=reason,
                                 provider_reference=receipt.reference, refunded_at=receipt.refunded_at)
        if not self.store.save_transitions(cur, [refunded], now):
            raise RuntimeError("a locked captured payment did not move to refunded")
        self.store.post_entries(cur, [ledger.refund_entry(payment.payment_id, refund_id, receipt.amount_fen,
                                                          payment.provider, receipt.refunded_at)], now)
        outbox.append(cur, events_pb2.RefundIssued(
            payment_id=payment.payment_id, booking_id=payment.booking_id, patient_id=payment.patient_id,
            amount_fen=receipt.amount_fen, refund_id=refund_id,
        ))
        return Settled(refunded=[refunded])
