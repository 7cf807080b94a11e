"""The billing worker as its own process on the real PostgreSQL and RabbitMQ:
it settles payments on its timers, reconciles an unanswered one, relays the
events, and refunds once whatever registration's redeliveries."""
from __future__ import annotations

import json
import sys
import urllib.request
import uuid

import amqp
import pytest

from tuoguan.registration.v1 import events_pb2 as registration_events
from tuoguan_common import outbox
from tuoguan_common.testing import free_port, wait_for

pytestmark = pytest.mark.integration

HANDLER_QUEUES = (
    "evt-registration-BookingCancelled--billing.refund_cancelled_booking",
    "evt-registration-PaymentRejected--billing.refund_rejected_payment",
)


class Broker:
    """A test's own queue on billing.events, and a publisher of registration's events."""

    def __init__(self, amqp_uri: str):
        self.conn = amqp.Connection(host="127.0.0.1:5672")
        self.conn.connect()
        self.channel = self.conn.channel()
        self.channel.exchange_declare("billing.events", "topic", durable=True, auto_delete=False)
        self.channel.exchange_declare("registration.events", "topic", durable=True, auto_delete=False)
        self.queue = f"test-billing-{uuid.uuid4().hex[:8]}"
        self.channel.queue_declare(self.queue, exclusive=True)
        for event_type in ("PaymentCaptured", "PaymentFailed", "RefundIssued"):
            self.channel.queue_bind(self.queue, "billing.events", routing_key=event_type)
        self.received: list[tuple[str, dict]] = []

    def drain(self) -> list[tuple[str, dict]]:
        while (message := self.channel.basic_get(self.queue, no_ack=True)) is not None:
            self.received.append((message.delivery_info["routing_key"], json.loads(message.body)))
        return self.received

    def of(self, event_type: str, payment_ids: set[str]) -> list[dict]:
        # Other tests' workers may publish on the same exchange: only ours count.
        return [body for kind, body in self.drain() if kind == event_type and body["payment_id"] in payment_ids]

    def consumers(self, name: str) -> int:
        """How many consumers a queue has; 0 when it does not exist yet."""
        channel = self.conn.channel()
        try:
            return channel.queue_declare(name, passive=True).consumer_count
        except amqp.exceptions.NotFound:
            return 0
        finally:
            if channel.is_open:
                channel.close()

    def publish(self, event, event_id: str) -> None:
        body = json.dumps(outbox.event_payload(event, event_id, outbox.utcnow()))
        message = amqp.Message(body, content_type="application/json", content_encoding="utf-8", delivery_mode=2)
        self.channel.basic_publish(message, exchange="registration.events", routing_key=event.DESCRIPTOR.name)

    def close(self) -> None:
        self.conn.close()


@pytest.fixture
def broker(infra):
    b = Broker(infra["amqp_uri"])
    yield b
    b.close()


def test_the_worker_settles_reconciles_and_refunds_once(infra, billing, broker, processes):
    metrics_port = free_port()
    processes.start("billing-worker", [sys.executable, "-m", "tuoguan_common.worker_main", "billing"], {
        "BILLING_DATABASE_URL": billing.db.url,
        "AMQP_URI": infra["amqp_uri"],
        "BILLING_WORKER_METRICS_PORT": str(metrics_port),
        "BILLING_PAYMENT_TIMEOUT_SECONDS": "1",
        "BILLING_TIMEOUT_CHECK_INTERVAL_SECONDS": "0.2",
        "BILLING_RECONCILE_INTERVAL_SECONDS": "0.5",
    }, ready_port=metrics_port)
    # The handlers' queues are shared by every billing worker on the broker:
    # with another one attached, it would take some of the events published here.
    wait_for(lambda: all(broker.consumers(q) == 1 for q in HANDLER_QUEUES), timeout=30,
             message="the worker's event queues, with this worker their only consumer")

    paid = billing.new_payment("tok_ok")
    declined = billing.new_payment("tok_decline")
    unanswered = billing.new_payment("tok_timeout")  # captured only in the provider's records, 3 s later

    ours = {paid.payment_id, declined.payment_id, unanswered.payment_id}
    wait_for(lambda: {e["payment_id"] for e in broker.of("PaymentCaptured", ours)} == {paid.payment_id,
                                                                                       unanswered.payment_id},
             timeout=20, message="both captures, one of them by reconciliation")
    assert [e["payment_id"] for e in broker.of("PaymentFailed", ours)] == [declined.payment_id]

    cancelled = registration_events.BookingCancelled(
        booking_id=paid.booking_id, patient_id=paid.patient_id, slot_id="slot-1", reason="patient",
        refund_due=True, payment_id=paid.payment_id, fee_fen=paid.amount_fen,
    )
    event_id = str(uuid.uuid4())
    broker.publish(cancelled, event_id)
    broker.publish(cancelled, event_id)  # redelivered
    broker.publish(cancelled, str(uuid.uuid4()))  # and told again under another id
    broker.publish(registration_events.PaymentRejected(
        booking_id=unanswered.booking_id, payment_id=unanswered.payment_id, reason="hold_expired",
    ), str(uuid.uuid4()))

    wait_for(lambda: {e["payment_id"] for e in broker.of("RefundIssued", ours)} == {paid.payment_id,
                                                                                    unanswered.payment_id},
             timeout=20, message="RefundIssued for both payments")

    def refunds_counted():
        body = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read().decode()
        return "tuoguan_billing_refunds_total 2.0" in body and body

    metrics = wait_for(refunds_counted, timeout=10, message="the refunds in the worker's metrics")
    assert 'outcome="duplicate"' in metrics  # the redelivered event, recognised by the inbox
    assert 'tuoguan_billing_reconciled_payments_total{outcome="captured"} 1.0' in metrics
    assert 'tuoguan_billing_payments_total{outcome="unknown"} 1.0' in metrics
    assert 'tuoguan_billing_provider_call_seconds_count{operation="refund",outcome="ok"} 2.0' in metrics
    assert "tuoguan_billing_unknown_payments 0.0" in metrics
    refunds = broker.of("RefundIssued", ours)
    assert sorted(e["payment_id"] for e in refunds) == sorted([paid.payment_id, unanswered.payment_id])
    assert len(broker.of("PaymentCaptured", ours)) == 2
    assert len(billing.rows("SELECT 1 FROM sandbox_provider.refunds")) == 2
    books = billing.rows("SELECT side, sum(amount_fen) AS fen FROM journal_lines GROUP BY side ORDER BY side")
    assert [(r["side"], int(r["fen"])) for r in books] == [("credit", 20000), ("debit", 20000)]
