"""The billing worker as its own process on the real PostgreSQL and RabbitMQ:
it settles payments on its timers, reconciles an unanswered one, relays the
events, and refunds once whatever registration's redeliveries."""
from __future__ import annotations

import datetime as dt
import sys
import urllib.request
from functools import partial

import pytest

from tuoguan.registration.v1 import events_pb2 as registration_events
from tuoguan_common.testing import EventTap, free_port, publish_event, wait_for, wait_for_consumers

pytestmark = pytest.mark.integration

HANDLER_QUEUES = (
    "evt-registration-BookingCancelled--billing.refund_cancelled_booking",
    "evt-registration-PaymentRejected--billing.refund_rejected_payment",
)


@pytest.fixture
def billing_events(infra):
    """What billing publishes, from a queue of this test's own."""
    with EventTap(infra["amqp_uri"], "billing", ("PaymentCaptured", "PaymentFailed", "RefundIssued")) as tap:
        yield tap


def start_worker(processes, infra, billing, **settings: str) -> int:
    """The billing worker on the test's database and broker; returns its metrics port."""
    metrics_port = free_port()
    processes.start("billing-worker", [sys.executable, "-m", "tuoguan_common.worker_main", "billing"], {
        "BILLING_DATABASE_URL": billing.db.url,
        "AMQP_URI": infra["amqp_uri"],
        "BILLING_WORKER_METRICS_PORT": str(metrics_port),
        **settings,
    }, ready_port=metrics_port)
    return metrics_port


def test_the_worker_settles_reconciles_and_refunds_once(infra, billing, billing_events, processes):
    metrics_port = start_worker(processes, infra, billing, BILLING_PAYMENT_TIMEOUT_SECONDS="1",
                                BILLING_TIMEOUT_CHECK_INTERVAL_SECONDS="0.2", BILLING_RECONCILE_INTERVAL_SECONDS="0.5")
    # The handlers' queues are shared by every billing worker on the broker:
    # with another one attached, it would take some of the events published here.
    wait_for_consumers(infra["amqp_uri"], HANDLER_QUEUES, exactly=1, timeout=30,
                       message="the worker's event queues, with this worker their only consumer")

    paid = billing.new_payment("tok_ok")
    declined = billing.new_payment("tok_decline")
    unanswered = billing.new_payment("tok_timeout")  # captured only in the provider's records, 3 s later

    ours = {paid.payment_id, declined.payment_id, unanswered.payment_id}

    def of(event_type: str) -> list[dict]:
        # Other tests' workers may publish on the same exchange: only ours count.
        return [e for e in billing_events.events(event_type) if e["payment_id"] in ours]

    wait_for(lambda: {e["payment_id"] for e in of("PaymentCaptured")} == {paid.payment_id, unanswered.payment_id},
             timeout=20, message="both captures, one of them by reconciliation")
    assert [e["payment_id"] for e in of("PaymentFailed")] == [declined.payment_id]

    cancelled = registration_events.BookingCancelled(
        booking_id=paid.booking_id, patient_id=paid.patient_id, slot_id="slot-1", reason="patient",
        refund_due=True, payment_id=paid.payment_id, fee_fen=paid.amount_fen,
    )
    publish = partial(publish_event, infra["amqp_uri"], "registration")
    event_id = publish(cancelled)
    publish(cancelled, event_id)  # redelivered
    publish(cancelled)  # and told again under another id
    publish(registration_events.PaymentRejected(
        booking_id=unanswered.booking_id, payment_id=unanswered.payment_id, reason="hold_expired",
    ))

    wait_for(lambda: {e["payment_id"] for e in of("RefundIssued")} == {paid.payment_id, unanswered.payment_id},
             timeout=20, message="RefundIssued for both payments")

    def refunds_counted():
        # The redelivery may be handled after both refunds: wait for its outcome too.
        body = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read().decode()
        return "tuoguan_billing_refunds_total 2.0" in body and 'outcome="duplicate"' in body and body

    metrics = wait_for(refunds_counted, timeout=10, message="the refunds in the worker's metrics")
    assert 'outcome="duplicate"' in metrics  # the redelivered event, recognised by the inbox
    assert 'tuoguan_billing_reconciled_payments_total{outcome="captured"} 1.0' in metrics
    assert 'tuoguan_billing_payments_total{outcome="unknown"} 1.0' in metrics
    assert 'tuoguan_billing_provider_call_seconds_count{operation="refund",outcome="ok"} 2.0' in metrics
    assert "tuoguan_billing_unknown_payments 0.0" in metrics
    refunds = of("RefundIssued")
    assert sorted(e["payment_id"] for e in refunds) == sorted([paid.payment_id, unanswered.payment_id])
    assert len(of("PaymentCaptured")) == 2
    assert len(billing.rows("SELECT 1 FROM sandbox_provider.refunds")) == 2
    books = billing.rows("SELECT side, sum(amount_fen) AS fen FROM journal_lines GROUP BY side ORDER BY side")
    assert [(r["side"], int(r["fen"])) for r in books] == [("credit", 20000), ("debit", 20000)]


def test_the_worker_finishes_the_payments_the_api_did_not(infra, billing, billing_events, processes):
    start_worker(processes, infra, billing, BILLING_AUTHORIZE_GRACE_SECONDS="0.5",
                 BILLING_AUTHORIZE_RETRY_INTERVAL_SECONDS="0.2", BILLING_LATE_CHARGE_CHECK_INTERVAL_SECONDS="0.2",
                 BILLING_RECONCILE_INTERVAL_SECONDS="0.5")

    # The api died between its two transactions, and nobody retried.
    authorised, _ = billing.unfinished_payment()  # before asking the provider; the hold runs
    recorded, _ = billing.unfinished_payment(charged=True)  # after the provider charged
    abandoned, booking_id = billing.unfinished_payment(hold=dt.timedelta(milliseconds=300))  # its hold is over
    ours = {authorised, recorded, abandoned}

    def of(event_type: str) -> list[dict]:
        return [e for e in billing_events.events(event_type) if e["payment_id"] in ours]

    wait_for(lambda: {e["payment_id"] for e in of("PaymentCaptured")} == {authorised, recorded},
             timeout=20, message="the captures of the payments the worker authorised or recorded")
    wait_for(lambda: of("PaymentFailed"), timeout=20, message="the abandoned payment's failure")
    assert [(e["payment_id"], e["booking_id"], e["reason"]) for e in of("PaymentFailed")] == [
        (abandoned, booking_id, "never_authorized")]
    charged = billing.rows("SELECT merchant_payment_id FROM sandbox_provider.charges")
    assert sorted(c["merchant_payment_id"] for c in charged) == sorted([authorised, recorded])
    assert billing.rows("SELECT 1 FROM payments WHERE method_token IS NOT NULL") == []

    # The api's call that made the abandoned payment's charge was still at the
    # provider; the charge lands now, and nobody stores it: the worker's sweep
    # finds it and gives the money back.
    billing.provider.authorize(abandoned, 5000, "tok_ok", f"registration-fee:{abandoned}")
    wait_for(lambda: of("RefundIssued"), timeout=20, message="the late charge given back")
    assert [(e["payment_id"], int(e["amount_fen"])) for e in of("RefundIssued")] == [(abandoned, 5000)]
    assert billing.rows("SELECT status, refund_requested_reason FROM payments WHERE payment_id = %s", abandoned) == [
        {"status": "FAILED", "refund_requested_reason": None}]
