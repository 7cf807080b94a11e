"""The outbox relay against the real PostgreSQL and RabbitMQ: every event
arrives once, as a nameko event a nameko handler can consume."""
from __future__ import annotations

import uuid

import psycopg
import pytest

from tuoguan.billing.v1 import events_pb2
from tuoguan_common import outbox
from tuoguan_common.testing import EventTap, wait_for

pytestmark = pytest.mark.integration


def test_relay_publishes_each_event_once_in_nameko_format(infra, outbox_db):
    service = f"svc{uuid.uuid4().hex[:6]}"
    with EventTap(infra["amqp_uri"], service, ["PaymentCaptured"]) as tap:
        ids = []
        with outbox_db.transaction() as cur:
            for n in range(25):
                ids.append(outbox.append(cur, events_pb2.PaymentCaptured(payment_id=f"p{n}", amount_fen=100 + n)))
        relay = outbox.OutboxRelay(service, outbox_db.url, infra["amqp_uri"], batch_size=10)
        sent = sum(relay.relay_once() for _ in range(4))
        assert sent == 25
        assert relay.relay_once() == 0
        assert relay.backlog() == 0
        relay.close()
        got = wait_for(lambda: len(tap.events("PaymentCaptured")) >= 25 and tap.events("PaymentCaptured"),
                       message="the relayed events")
    assert [m["event_id"] for m in got] == ids
    parsed = outbox.parse_event(got[3], events_pb2.PaymentCaptured)
    assert parsed.payment_id == "p3" and parsed.amount_fen == 103


def test_inbox_makes_redelivery_harmless(outbox_db):
    event_id = str(uuid.uuid4())
    with outbox_db.transaction() as cur:
        assert outbox.first_time(cur, event_id, "handler") is True
    with outbox_db.transaction() as cur:
        assert outbox.first_time(cur, event_id, "handler") is False
        assert outbox.first_time(cur, event_id, "other_handler") is True


def test_idempotency_key_returns_first_answer_and_rejects_reuse(outbox_db):
    request = events_pb2.PaymentCaptured(payment_id="a")
    fp = outbox.request_fingerprint(request)
    with outbox_db.transaction() as cur:
        assert outbox.claim_key(cur, "pay", "patient-1", "k1", fp) is None
        outbox.store_response(cur, "pay", "patient-1", "k1", events_pb2.PaymentCaptured(payment_id="answer"))
    with outbox_db.transaction() as cur:
        stored = outbox.claim_key(cur, "pay", "patient-1", "k1", fp)
        assert events_pb2.PaymentCaptured.FromString(stored).payment_id == "answer"
    with pytest.raises(outbox.IdempotencyConflict):
        with outbox_db.transaction() as cur:
            outbox.claim_key(cur, "pay", "patient-1", "k1", outbox.request_fingerprint(events_pb2.PaymentCaptured(payment_id="b")))



def test_an_event_that_cannot_be_applied_is_dead_lettered_not_requeued(outbox_db):
    from tuoguan_common.nameko_support import handle_event

    def refuse(cur, event):
        raise ValueError("a rule this event breaks every time")

    payload = outbox.event_payload(events_pb2.PaymentCaptured(payment_id="p-x"), str(uuid.uuid4()),
                                   outbox.utcnow())
    assert handle_event(outbox_db, payload, events_pb2.PaymentCaptured, "h", refuse) == "dead_lettered"
    assert handle_event(outbox_db, {"no": "id"}, events_pb2.PaymentCaptured, "h", refuse) == "malformed"
    with outbox_db.transaction() as cur:
        cur.execute("SELECT event_id, handler, error FROM dead_letters ORDER BY id")
        rows = cur.fetchall()
        cur.execute("SELECT count(*) AS n FROM inbox")
        assert cur.fetchone()["n"] == 0  # nothing half-applied
    assert [(r["event_id"], r["handler"], r["error"]) for r in rows] == [
        (payload["event_id"], "h", "ValueError"), (None, "h", "KeyError")]


def test_a_transient_failure_goes_back_to_the_queue(outbox_db):
    from tuoguan_common.nameko_support import handle_event

    def database_down(cur, event):
        raise psycopg.OperationalError("server closed the connection")

    payload = outbox.event_payload(events_pb2.PaymentCaptured(payment_id="p-y"), str(uuid.uuid4()),
                                   outbox.utcnow())
    with pytest.raises(psycopg.OperationalError):
        handle_event(outbox_db, payload, events_pb2.PaymentCaptured, "h", database_down)
    ok = handle_event(outbox_db, payload, events_pb2.PaymentCaptured, "h", lambda cur, event: None)
    assert ok == "ok"  # the retry applies it, once
