"""The outbox relay against the real PostgreSQL and RabbitMQ: every event
arrives once, as a nameko event a nameko handler can consume."""
from __future__ import annotations

import uuid

import psycopg
import pytest

from tuoguan.billing.v1 import events_pb2
from tuoguan_common import outbox
from tuoguan_common.db import Database, drop_database, ensure_database
from tuoguan_common.testing import EventTap, unique_database_url, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def outbox_db(infra):
    url = unique_database_url(infra, "outboxtest")
    ensure_database(url)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(outbox.DDL)
    db = Database(url).open()
    yield db
    db.close()
    drop_database(url)


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

