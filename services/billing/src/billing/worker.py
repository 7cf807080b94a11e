"""Billing's nameko worker: relays the outbox, settles payments with the
provider on timers, refunds fees when registration says so, and purges the
outbox, inbox and idempotency keys past their retention (``RetentionPurge``).

Run with ``tuoguan-worker billing``. Entrypoints stay thin: the cashier holds
the rules' orchestration, the same one the api uses.
"""
from __future__ import annotations

from nameko.timer import timer

from tuoguan.registration.v1 import events_pb2 as registration_events
from tuoguan_common.nameko_support import (Observability, OutboxRelayer, RetentionPurge, WorkerStore, event_handler,
                                           handle_event, require_ids)

from .cashier import Cashier, Settled
from .providers import build_provider
from .settings import BillingSettings
from .store import BillingStore

# Read at import: nameko's timers take their interval when the class is made.
SETTINGS = BillingSettings.from_env()


def cancelled_booking(event) -> None:
    """A cancellation names its booking, and its payment when registration knew one (a capture still on its
    way has none: the booking's live payment is refunded). An id that is there but no id is malformed: it
    was taken for no id at all, and the booking's payment refunded in its place."""
    require_ids(event, "booking_id", *(["payment_id"] if event.payment_id else []))


def rejected_payment(event) -> None:
    """A rejection is about one payment: without its id, the booking's other, good payment was refunded."""
    require_ids(event, "booking_id", "payment_id")


class CashierDependency(WorkerStore):
    """The cashier over the worker's connection pool, and the provider with its own."""

    def __init__(self):
        super().__init__(self._build, "billing")
        self.provider = None

    def _build(self, database) -> Cashier:
        self.provider = build_provider(SETTINGS, database.url)
        return Cashier(BillingStore(database), self.provider, payment_timeout=SETTINGS.payment_timeout,
                       authorize_grace=SETTINGS.authorize_grace, batch_size=SETTINGS.batch_size,
                       late_charge_window=SETTINGS.late_charge_window)

    def stop(self):
        if self.provider is not None:
            self.provider.close()
        super().stop()


class BillingWorker(RetentionPurge):
    name = "billing"

    relayer = OutboxRelayer("billing")
    observability = Observability("billing")
    cashier: Cashier = CashierDependency()

    @timer(interval=SETTINGS.authorize_retry_interval_seconds)
    def authorize_unfinished_payments(self):
        self.cashier.authorize_unfinished()

    @timer(interval=SETTINGS.settle_interval_seconds)
    def settle_pending_payments(self):
        self.cashier.settle_pending()

    @timer(interval=SETTINGS.timeout_check_interval_seconds)
    def mark_unanswered_payments_unknown(self):
        self.cashier.give_up_on_unanswered()

    @timer(interval=SETTINGS.reconcile_interval_seconds)
    def reconcile_unknown_payments(self):
        self.cashier.reconcile_unknown()

    @timer(interval=SETTINGS.reconcile_interval_seconds)
    def issue_requested_refunds(self):
        self.cashier.issue_requested_refunds()

    @timer(interval=SETTINGS.late_charge_check_interval_seconds)
    def find_charges_after_failure(self):
        self.cashier.find_charges_after_failure()

    @event_handler("registration", "BookingCancelled", requeue_on_error=True)
    def refund_cancelled_booking(self, payload):
        return self._refund_on(payload, registration_events.BookingCancelled, "billing.refund_cancelled_booking",
                               lambda event: event.refund_due, "booking_cancelled", cancelled_booking)

    @event_handler("registration", "PaymentRejected", requeue_on_error=True)
    def refund_rejected_payment(self, payload):
        # The capture came after the hold expired: the patient has no booking for the money.
        return self._refund_on(payload, registration_events.PaymentRejected, "billing.refund_rejected_payment",
                               lambda event: True, "payment_rejected", rejected_payment)

    def _refund_on(self, payload, message_type, handler: str, due, reason: str, check) -> str:
        done: list[Settled] = []

        def apply(cur, event):
            if due(event):
                done.append(self.cashier.refund_for_booking(cur, payment_id=event.payment_id,
                                                            booking_id=event.booking_id, reason=reason))

        outcome = handle_event(self.cashier.database, payload, message_type, handler, apply, check=check)
        # Only once committed: a transaction that failed after apply (at its
        # commit, say) is dead-lettered with its refund rolled back, and
        # ``done`` still holds what it would have refunded.
        if outcome == "ok":
            for settled in done:
                settled.count()
        return outcome


def main() -> None:
    from tuoguan_common import worker_main

    worker_main.run(BillingWorker, "billing", SETTINGS.worker_metrics_port)
