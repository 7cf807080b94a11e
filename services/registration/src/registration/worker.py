"""Registration's worker: billing's payment events, hold expiry, daily
publishing, the capacity gauge and the purge of the outbox, inbox and
idempotency keys past their retention (``RetentionPurge``).
``tuoguan-worker registration`` runs it."""
from __future__ import annotations

import logging
import os
from collections.abc import Sequence

from nameko.timer import timer
from tuoguan.billing.v1 import events_pb2 as billing_events
from tuoguan_common import metrics
from tuoguan_common.config import PORTS
from tuoguan_common.nameko_support import (Delivery, EventBatch, Observability, OutboxRelayer, RetentionPurge,
                                           WorkerStore, event_handler, handle_event, require_ids)
from tuoguan_common.outbox import utcnow

from .config import RegistrationConfig
from .domain import rules
from .domain.model import Refusal
from .publishing import publish_schedule
from .store import Store

log = logging.getLogger(__name__)

# Timer intervals are fixed when the class is defined, so the settings are read at import.
CONFIG = RegistrationConfig.from_env()
EXPIRY_BATCH = 500
CONFIRMATIONS_AT_ONCE = 32


def payment_event(event) -> None:
    """What a payment's event must name: its booking and its payment. A capture naming no payment confirmed a
    booking without one, or, on a confirmed booking, was rejected with a PaymentRejected naming no payment,
    which billing refunded from the booking's real one."""
    require_ids(event, "booking_id", "payment_id")


# Shared by the worker's greenthreads: the captures they hold at once go in one batch.
CONFIRMATIONS: EventBatch[rules.CaptureDecision] = EventBatch(billing_events.PaymentCaptured, "payment_captured",
                                                              check=payment_event)


class RegistrationWorker(RetentionPurge):
    name = "registration"

    store = WorkerStore(Store, "registration")
    relayer = OutboxRelayer("registration")
    observability = Observability("registration")

    @event_handler("billing", "PaymentCaptured", requeue_on_error=True)
    def on_payment_captured(self, payload):
        # In a surge, the captures the worker holds at once confirm their bookings in one transaction.
        store = self.store

        def confirm(cur, captured: Sequence[Delivery]) -> list[rules.CaptureDecision]:
            return store.apply_payments_captured(cur, [(
                d.event.booking_id, rules.CapturedPayment(d.event.payment_id, d.event.patient_id, d.event.amount_fen),
                d.trace_carrier) for d in captured], utcnow())

        outcome, decision = CONFIRMATIONS.handle(store.db, payload, confirm)
        if decision == rules.CONFIRM:
            metrics.REGISTRATION_BOOKINGS_CONFIRMED.inc()
        elif isinstance(decision, Refusal):
            # Money billing must give back: worth an operator's eye.
            log.warning("captured payment rejected", extra={
                "booking_id": payload.get("booking_id"), "payment_id": payload.get("payment_id"),
                "reason": decision.reason})
        return outcome

    @event_handler("billing", "PaymentFailed", requeue_on_error=True)
    def on_payment_failed(self, payload):
        released = []

        def apply(cur, event):
            released.append(self.store.apply_payment_failed(cur, event.booking_id, utcnow()))

        outcome = handle_event(self.store.db, payload, billing_events.PaymentFailed, "payment_failed", apply,
                               check=payment_event)
        if released == [True]:
            metrics.REGISTRATION_HOLDS_RELEASED.labels("payment_failed").inc()
        return outcome

    @event_handler("billing", "RefundIssued", requeue_on_error=True)
    def on_refund_issued(self, payload):
        def apply(cur, event):
            self.store.apply_refund_issued(cur, event.booking_id, event.payment_id, utcnow())

        return handle_event(self.store.db, payload, billing_events.RefundIssued, "refund_issued", apply,
                            check=payment_event)

    @timer(interval=CONFIG.expiry_interval)
    def expire_holds(self):
        """Unpaid holds past their time go back to stock, a batch at a time until none is due."""
        while True:
            released = self.store.expire_due_holds(utcnow(), limit=EXPIRY_BATCH)
            if released:
                metrics.REGISTRATION_HOLDS_RELEASED.labels("expired").inc(released)
            if released < EXPIRY_BATCH:
                return

    @timer(interval=CONFIG.publish_interval, eager=True)
    def publish_daily(self):
        # One day beyond the horizon, so tomorrow's new day exists before its 07:00 release.
        publish_schedule(self.store, CONFIG.release, utcnow(), days_ahead=CONFIG.release.days_ahead + 1)

    @timer(interval=CONFIG.gauge_interval, eager=True)
    def measure_remaining_capacity(self):
        metrics.REGISTRATION_SLOTS_REMAINING.set(self.store.remaining_capacity(utcnow()))


def main() -> None:
    # worker_main patches the standard library for eventlet when imported: only here, in the worker process.
    from tuoguan_common import worker_main

    port = int(os.environ.get("REGISTRATION_WORKER_METRICS_PORT") or PORTS["registration"]["worker_metrics"])
    # Captures are confirmed in batches of what the worker holds at once: in
    # a surge the batch, not the handler, is the unit of work, so the worker
    # takes more at a time than the others (its waiting handlers hold no connection).
    worker_main.run(RegistrationWorker, "registration", port, concurrency=CONFIRMATIONS_AT_ONCE)
