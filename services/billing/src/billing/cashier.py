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

from tuoguan.billing.v1 import events_pb2
from tuoguan_common import metrics, outbox, telemetry
from tuoguan_common.outbox import utcnow

from .domain import ledger, payments
from .domain.payments import Payment, PaymentStatus, RefundAction
from .exceptions import PaymentInProgress, ProviderUnavailable, RefundRefused
from .providers.base import PaymentProvider
from .registration_client import BookingSource
from .store import BillingStore

log = logging.getLogger(__name__)


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


class Cashier:
    def __init__(self, store: BillingStore, provider: PaymentProvider, *, bookings: BookingSource | None = None,
                 clock: Callable[[], dt.datetime] = utcnow, payment_timeout: dt.timedelta = dt.timedelta(seconds=5),
                 batch_size: int = 500):
        for outcome in ("captured", "failed"):
            metrics.BILLING_RECONCILED.labels(outcome)
        self.store = store
        self.provider = provider
        self.bookings = bookings
        self.clock = clock
        self.payment_timeout = payment_timeout
        self.batch_size = batch_size

    @property
    def database(self):
        return self.store.database

    # Paying a fee (api).

    def open_payment(self, cur: psycopg.Cursor, *, patient_id: str, booking_id: str, method_token: str,
                     idempotency_key: str, bearer: str | None) -> Payment:
        """Starts paying a held booking's fee; the payment is PENDING until the provider answers."""
        assert self.bookings is not None, "the api builds the cashier with a booking source"
        booking = self.bookings.get_booking(booking_id, bearer)
        payments.check_payable(booking, patient_id, self.store.payments_for_booking(cur, booking_id))
        payment = replace(
            payments.open_payment(payments.payment_id_for(patient_id, idempotency_key), booking,
                                  self.provider.name, self.clock()),
            trace_carrier=telemetry.inject(),
        )
        if not self.store.insert_payment(cur, payment):
            # Another attempt for this booking committed meanwhile: its status says why not.
            payments.check_payable(booking, patient_id, self.store.payments_for_booking(cur, booking_id))
            raise PaymentInProgress("another payment for this booking has just started")
        # Inside our transaction but committed at the provider: if ours rolls
        # back, a retry names the same payment and the provider answers with
        # the charge it already made.
        authorization = self.provider.authorize(payment.payment_id, payment.amount_fen, method_token,
                                                idempotency_key=f"registration-fee:{payment.payment_id}")
        self.store.set_provider_reference(cur, payment.payment_id, authorization.reference)
        return replace(payment, provider_reference=authorization.reference)

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
