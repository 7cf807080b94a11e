"""EventBatch against the real PostgreSQL: the events a worker's greenthreads
hold at once are applied in one transaction, each once, and a bad one is
dead-lettered alone. Greenthreads run as in the worker: the events handed
over together queue before the writer's greenthread runs."""
from __future__ import annotations

import time
import uuid

import eventlet
import psycopg
import pytest

from tuoguan.billing.v1 import events_pb2
from tuoguan_common import outbox
from tuoguan_common.nameko_support import DeliveredPayload, EventBatch

pytestmark = pytest.mark.integration


def captured(payment_id: str) -> dict:
    return outbox.event_payload(events_pb2.PaymentCaptured(payment_id=payment_id, amount_fen=100),
                                str(uuid.uuid4()), outbox.utcnow())


class Recorder:
    """An apply_batch that records each batch's payment ids and writes one row per event."""

    def __init__(self, fail_on: str | None = None, error: type[Exception] = ValueError, pause: float = 0.0):
        self.batches: list[list[str]] = []
        self.fail_on = fail_on
        self.error = error
        self.pause = pause

    def __call__(self, cur, deliveries):
        ids = [d.event.payment_id for d in deliveries]
        self.batches.append(ids)
        eventlet.sleep(self.pause)  # the database's wait, as the worker's patched driver yields it
        if self.fail_on in ids:
            raise self.error(f"{self.fail_on} breaks a rule")
        outbox.append_many(cur, [(events_pb2.PaymentCaptured(payment_id=f"done-{i}"), d.trace_carrier)
                                 for i, d in zip(ids, deliveries)])
        return [f"result-{i}" for i in ids]


def handle_at_once(batch: EventBatch, db, payloads, apply_batch) -> list:
    """Each payload in its own greenthread, as nameko's workers would; each one's answer or error."""
    def one(payload):
        try:
            return batch.handle(db, payload, apply_batch)
        except BaseException as exc:  # noqa: BLE001 - the test looks at it
            return exc

    threads = [eventlet.spawn(one, p) for p in payloads]
    return [t.wait() for t in threads]


def rows(db, sql: str) -> list[dict]:
    with db.transaction() as cur:
        cur.execute(sql)
        return cur.fetchall()


def test_events_held_at_once_share_a_transaction_and_each_gets_its_result(outbox_db):
    batch = EventBatch(events_pb2.PaymentCaptured, "h")
    apply = Recorder()
    payloads = [captured(f"p{n}") for n in range(6)]
    answers = handle_at_once(batch, outbox_db, payloads, apply)
    assert answers == [("ok", f"result-p{n}") for n in range(6)]
    assert apply.batches == [["p0", "p1", "p2", "p3", "p4", "p5"]]
    assert len(rows(outbox_db, "SELECT * FROM inbox WHERE handler = 'h'")) == 6
    assert sorted(r["payload"]["payment_id"] for r in rows(outbox_db, "SELECT payload FROM outbox")) == \
        sorted(f"done-p{n}" for n in range(6))


def test_events_that_come_while_a_batch_is_written_go_in_the_next_and_nobody_waits_for_others(outbox_db):
    batch = EventBatch(events_pb2.PaymentCaptured, "h")
    apply = Recorder(pause=0.2)
    answered: dict[str, float] = {}

    def handle(payload):
        outcome = batch.handle(outbox_db, payload, apply)
        answered[payload["payment_id"]] = time.monotonic()
        return outcome

    first = eventlet.spawn(handle, captured("p0"))
    eventlet.sleep(0.05)  # p0's batch is being written
    later = [eventlet.spawn(handle, captured(f"p{n}")) for n in (1, 2)]
    assert [g.wait() for g in [first, *later]] == [("ok", "result-p0"), ("ok", "result-p1"), ("ok", "result-p2")]
    assert apply.batches == [["p0"], ["p1", "p2"]]
    # p0's handler returned with its own batch, not after the next one.
    assert answered["p1"] - answered["p0"] > 0.15


def test_a_redelivered_event_is_a_duplicate_in_its_batch_and_after(outbox_db):
    batch = EventBatch(events_pb2.PaymentCaptured, "h")
    apply = Recorder()
    first, second = captured("p1"), captured("p2")
    assert batch.handle(outbox_db, first, apply) == ("ok", "result-p1")
    answers = handle_at_once(batch, outbox_db, [second, first, second, captured("p3")], apply)
    assert answers == [("ok", "result-p2"), ("duplicate", None), ("duplicate", None), ("ok", "result-p3")]
    assert apply.batches == [["p1"], ["p2", "p3"]]
    assert len(rows(outbox_db, "SELECT * FROM outbox")) == 3


def test_a_bad_event_is_dead_lettered_alone(outbox_db):
    batch = EventBatch(events_pb2.PaymentCaptured, "h")
    apply = Recorder(fail_on="bad")
    payloads = [captured("p0"), captured("p1"), captured("bad"), captured("p3")]
    answers = handle_at_once(batch, outbox_db, payloads, apply)
    assert answers == [("ok", "result-p0"), ("ok", "result-p1"), ("dead_lettered", None), ("ok", "result-p3")]
    # The batch that held it failed whole, then went again one event at a time.
    assert apply.batches == [["p0", "p1", "bad", "p3"], ["p0"], ["p1"], ["bad"], ["p3"]]
    assert [(r["event_id"], r["error"]) for r in rows(outbox_db, "SELECT event_id, error FROM dead_letters")] == \
        [(payloads[2]["event_id"], "ValueError")]
    handled = {r["event_id"] for r in rows(outbox_db, "SELECT event_id::text FROM inbox")}
    assert handled == {p["event_id"] for p in payloads} - {payloads[2]["event_id"]}


def test_a_transient_failure_sends_every_event_of_the_batch_back_to_its_queue(outbox_db):
    batch = EventBatch(events_pb2.PaymentCaptured, "h")
    payloads = [captured("p0"), captured("q0"), captured("q1"), captured("q2")]
    assert batch.handle(outbox_db, payloads[0], Recorder()) == ("ok", "result-p0")
    answers = handle_at_once(batch, outbox_db, payloads[1:], Recorder(fail_on="q1", error=psycopg.OperationalError))
    # The database failed under the batch [q0, q1, q2]: each worker raises, and nameko requeues its message.
    assert len(answers) == 3 and all(isinstance(a, psycopg.OperationalError) for a in answers)
    assert {r["event_id"] for r in rows(outbox_db, "SELECT event_id::text FROM inbox")} == {payloads[0]["event_id"]}
    # Redelivered, each is applied once.
    again = handle_at_once(batch, outbox_db, payloads, Recorder())
    assert again == [("duplicate", None), ("ok", "result-q0"), ("ok", "result-q1"), ("ok", "result-q2")]


def test_a_server_refusing_writes_after_a_failover_sends_the_batch_back_and_a_repeating_error_is_found_alone(
        outbox_db):
    """Transient by SQLSTATE, not by class: 25006 is an InternalError (it was
    dead-lettered), 54000 an OperationalError (the whole batch went back, for ever)."""
    batch = EventBatch(events_pb2.PaymentCaptured, "h")
    refused = handle_at_once(batch, outbox_db, [captured("r0"), captured("r1")],
                             Recorder(fail_on="r1", error=psycopg.errors.ReadOnlySqlTransaction))
    assert [type(a) for a in refused] == [psycopg.errors.ReadOnlySqlTransaction] * 2
    payloads = [captured("p0"), captured("big"), captured("p2")]
    apply = Recorder(fail_on="big", error=psycopg.errors.ProgramLimitExceeded)
    answers = handle_at_once(batch, outbox_db, payloads, apply)
    assert answers == [("ok", "result-p0"), ("dead_lettered", None), ("ok", "result-p2")]
    assert [(r["event_id"], r["error"]) for r in rows(outbox_db, "SELECT event_id, error FROM dead_letters")] == \
        [(payloads[1]["event_id"], "ProgramLimitExceeded")]


def test_on_its_last_attempt_an_event_of_a_batch_failing_transiently_is_dead_lettered_alone(outbox_db):
    batch = EventBatch(events_pb2.PaymentCaptured, "h")
    last = DeliveredPayload(captured("q1"), attempt=10, last=True)
    payloads = [captured("q0"), last, DeliveredPayload(captured("q2"), attempt=3, last=False)]
    answers = handle_at_once(batch, outbox_db, payloads,
                             Recorder(fail_on="q0", error=psycopg.errors.SerializationFailure))
    assert isinstance(answers[0], psycopg.errors.SerializationFailure)
    assert answers[1] == ("dead_lettered", None)
    assert isinstance(answers[2], psycopg.errors.SerializationFailure)
    assert [(r["event_id"], r["error"]) for r in rows(outbox_db, "SELECT event_id, error FROM dead_letters")] == \
        [(last["event_id"], "SerializationFailure on attempt 10, the last")]
    assert rows(outbox_db, "SELECT * FROM inbox") == []


def test_a_malformed_event_is_dead_lettered_without_a_batch(outbox_db):
    batch = EventBatch(events_pb2.PaymentCaptured, "h")
    apply = Recorder()
    assert batch.handle(outbox_db, {"no": "id"}, apply) == ("malformed", None)
    assert apply.batches == []
    assert [r["error"] for r in rows(outbox_db, "SELECT error FROM dead_letters")] == ["KeyError"]


class Killed(BaseException):
    """Stands for the writer's greenthread being killed (the container stops)."""


def test_a_writer_killed_mid_batch_leaves_no_worker_waiting(outbox_db):
    batch = EventBatch(events_pb2.PaymentCaptured, "h")
    apply = Recorder(fail_on="p1", error=Killed)
    with eventlet.Timeout(10):
        answers = handle_at_once(batch, outbox_db, [captured("p0"), captured("p1"), captured("p2")], apply)
    assert [type(a) for a in answers] == [Killed] * 3
    assert rows(outbox_db, "SELECT * FROM inbox") == []
    # The next event starts a new writer.
    assert batch.handle(outbox_db, captured("p3"), Recorder()) == ("ok", "result-p3")
