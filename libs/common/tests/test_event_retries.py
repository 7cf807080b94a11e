"""A worker's handler whose event fails, as its own process on the real
PostgreSQL and RabbitMQ (``retry_worker.py``): an error that would repeat is
dead-lettered at once; a transient one (SQLSTATE, not psycopg's class) is
tried again, later each time, and dead-lettered after the last attempt."""
from __future__ import annotations

import json
import random
import string
import sys
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable
from urllib.parse import urlsplit

import psycopg
import pytest

from tuoguan.billing.v1 import events_pb2
from tuoguan_common import outbox
from tuoguan_common.db import drop_database, ensure_database, transient
from tuoguan_common.nameko_support import retry_delay
from tuoguan_common.testing import SilentProxy, free_port, publish_event, unique_database_url, wait_for, wait_for_consumers

pytestmark = pytest.mark.integration

SCHEMA = """
CREATE TABLE effects (payment_id text PRIMARY KEY, note text);
CREATE INDEX effects_note ON effects (note);
CREATE TABLE gate (id int PRIMARY KEY);
INSERT INTO gate VALUES (1);
CREATE TABLE switch (read_only boolean NOT NULL);
INSERT INTO switch VALUES (false);
"""
ATTEMPTS = 5  # the worker's TUOGUAN_EVENT_MAX_ATTEMPTS here; the waits between them are the platform's own


@dataclass
class RetryWorker:
    url: str
    amqp_uri: str
    source: str
    metrics_port: int
    log: Callable[[], str]

    @property
    def queue(self) -> str:
        return f"evt-{self.source}-PaymentCaptured--retrytest.on_captured"

    def queue_messages(self, queue: str) -> int | None:
        """How many messages wait in ``queue`` (None: no such queue)."""
        import kombu

        with kombu.Connection(self.amqp_uri) as conn:
            try:
                return conn.channel().queue_declare(queue, passive=True).message_count
            except conn.channel_errors:
                return None

    def take(self, queue: str):
        """The messages waiting in ``queue``, taken off it."""
        import kombu

        taken = []
        with kombu.Connection(self.amqp_uri) as conn:
            channel = conn.channel()
            while (message := channel.basic_get(queue, no_ack=True)) is not None:
                taken.append(message)
        return taken

    def publish(self, payment_id: str, **fields) -> str:
        return publish_event(self.amqp_uri, self.source, events_pb2.PaymentCaptured(payment_id=payment_id, **fields))

    def rows(self, sql: str, *params) -> list[tuple]:
        with psycopg.connect(self.url, autocommit=True) as conn:
            return conn.execute(sql, params).fetchall()

    def execute(self, sql: str, *params) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(sql, params)

    def outcome_series(self) -> dict[str, float]:
        """Every outcome series of the handler the worker serves (tuoguan_events_handled_total), zeros included."""
        body = urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).read().decode()
        found: dict[str, float] = {}
        for line in body.splitlines():
            if line.startswith("tuoguan_events_handled_total{") and 'handler="on_captured"' in line:
                outcome = line.split('outcome="', 1)[1].split('"', 1)[0]
                found[outcome] = found.get(outcome, 0) + float(line.rsplit(" ", 1)[1])
        return found

    def metric(self, name: str) -> float:
        """The sum of the worker's series of ``name``."""
        body = urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).read().decode()
        return sum(float(line.rsplit(" ", 1)[1]) for line in body.splitlines()
                   if line.startswith(name + "{") or line.startswith(name + " "))

    def outcomes(self) -> dict[str, float]:
        """The handler's outcomes so far, as the worker counts them."""
        return {outcome: n for outcome, n in self.outcome_series().items() if n}


def start_retry_worker(infra, processes, *, amqp_uri: str | None = None, database_url=lambda url: url,
                       env: dict | None = None) -> RetryWorker:
    """The worker on a database of its own; ``amqp_uri`` and ``database_url``
    are where the worker itself finds them (e.g. through a proxy)."""
    url = unique_database_url(infra, "retries")
    ensure_database(url)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(outbox.DDL)
        conn.execute(SCHEMA)
    source = f"retrysrc{uuid.uuid4().hex[:8]}"
    port = free_port()
    processes.start("retry-worker", [sys.executable, str(Path(__file__).with_name("retry_worker.py"))], {
        "RETRYTEST_DATABASE_URL": database_url(url), "AMQP_URI": amqp_uri or infra["amqp_uri"],
        "RETRYTEST_WORKER_METRICS_PORT": str(port), "RETRY_TEST_SOURCE": source,
        "TUOGUAN_EVENT_MAX_ATTEMPTS": str(ATTEMPTS), **(env or {}),
    }, ready_port=port)
    wait_for_consumers(infra["amqp_uri"], [f"evt-{source}-PaymentCaptured--retrytest.on_captured"], timeout=30)
    return RetryWorker(url, infra["amqp_uri"], source, port, lambda: processes.log("retry-worker"))


def stop_retry_worker(worker: RetryWorker, processes) -> None:
    import kombu

    processes.stop_all()
    drop_database(worker.url)
    with kombu.Connection(worker.amqp_uri) as conn:
        conn.channel().queue_delete(worker.queue + ".parked")


@pytest.fixture
def retry_worker(infra, processes):
    worker = start_retry_worker(infra, processes)
    yield worker
    stop_retry_worker(worker, processes)


def test_every_outcome_is_served_at_zero_before_the_first_event(retry_worker):
    # Born at 1, the first dead letter since a restart would be no rise to increase() (TuoguanEventsDeadLettered).
    assert retry_worker.outcome_series() == dict.fromkeys(
        ["ok", "duplicate", "malformed", "dead_lettered", "parked", "error"], 0.0)


def test_an_error_the_database_would_repeat_is_dead_lettered_once_not_retried(retry_worker):
    """54000 (an index row too large) is an OperationalError: it was retried
    hundreds of times a second, for ever."""
    oversized = "".join(random.choices(string.ascii_letters + string.digits, k=8000))
    event_id = retry_worker.publish("oversized:1", booking_id=oversized)
    letters = wait_for(lambda: retry_worker.rows("SELECT event_id::text, error FROM dead_letters"), timeout=15,
                       message="the event dead-lettered")
    assert letters == [(event_id, "ProgramLimitExceeded")]
    time.sleep(1.0)  # anything retried would show by now
    assert retry_worker.outcomes() == {"dead_lettered": 1.0}
    assert retry_worker.rows("SELECT count(*) FROM effects") == [(0,)]


def test_a_lost_connection_and_a_server_refusing_writes_are_waited_for_and_the_event_applied_once(retry_worker):
    """A failover: the worker's connections go, and the apply's reaches a
    demoted primary, which refuses writes with 25006 (an InternalError),
    while the dead letter could be written: the event was dead-lettered."""
    name = retry_worker.url.rsplit("/", 1)[1]
    retry_worker.execute("UPDATE switch SET read_only = true")
    retry_worker.rows("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                      "WHERE datname = %s AND pid <> pg_backend_pid()", name)
    event_id = retry_worker.publish("applied:1")
    wait_for(lambda: "ReadOnlySqlTransaction" in retry_worker.log(), timeout=15,
             message="the event refused by the read-only server (after the lost connection)")
    assert "AdminShutdown" in retry_worker.log()  # the first attempt met the connection the server ended
    assert retry_worker.rows("SELECT count(*) FROM dead_letters") == [(0,)]

    retry_worker.execute("UPDATE switch SET read_only = false")
    wait_for(lambda: retry_worker.rows("SELECT payment_id FROM effects"), timeout=20, message="the event applied")
    assert retry_worker.rows("SELECT event_id::text FROM inbox") == [(event_id,)]
    assert retry_worker.rows("SELECT count(*) FROM dead_letters") == [(0,)]
    assert retry_worker.outcomes()["ok"] == 1.0


def test_an_event_failing_transiently_for_ever_is_dead_lettered_after_the_last_attempt_each_tried_later(
        retry_worker):
    """A lock never released (55P03): the event came back at once, hundreds of times a second, for ever."""
    with psycopg.connect(retry_worker.url) as holder:
        holder.execute("SELECT id FROM gate WHERE id = 1 FOR UPDATE")
        published = time.monotonic()
        event_id = retry_worker.publish("locked:1")
        letters = wait_for(lambda: retry_worker.rows("SELECT event_id::text, error FROM dead_letters"), timeout=30,
                           message="the event dead-lettered after its last attempt")
        elapsed = time.monotonic() - published
    assert letters == [(event_id, f"LockNotAvailable on attempt {ATTEMPTS}, the last")]
    # Each attempt after the first waited longer than the one before.
    assert elapsed >= sum(retry_delay(n) for n in range(2, ATTEMPTS + 1))
    time.sleep(1.0)
    assert retry_worker.outcomes() == {"error": ATTEMPTS - 1, "dead_lettered": 1.0}
    assert retry_worker.rows("SELECT count(*) FROM inbox") == [(0,)]


@pytest.mark.parametrize("payment_id, error", [
    ("nul:\x00", "UntranslatableCharacter"),  # the apply and the dead letter's jsonb both refuse it (22P05)
    ("raises:1", "RuntimeError"),  # outside handle_event
])
def test_an_event_whose_handler_still_raises_on_its_last_attempt_is_parked_not_cycled(
        retry_worker, payment_id, error):
    """Published again every 5 s for ever, and never put aside, before."""
    event_id = retry_worker.publish(payment_id)
    parked = retry_worker.queue + ".parked"
    wait_for(lambda: retry_worker.queue_messages(parked), timeout=30, message="the event parked")
    time.sleep(2.0)  # a copy published again would be back and failing by now
    assert retry_worker.outcomes() == {"error": ATTEMPTS - 1, "parked": 1.0}
    assert retry_worker.queue_messages(retry_worker.queue) == 0
    [message] = retry_worker.take(parked)
    assert message.headers["x-tuoguan-attempt"] == ATTEMPTS
    assert message.headers["x-tuoguan-error"] == error
    assert json.loads(message.body)["event_id"] == event_id
    assert retry_worker.rows("SELECT count(*) FROM dead_letters") == [(0,)]
    assert "event parked" in retry_worker.log()
    assert "event dead-lettered" not in retry_worker.log()  # it never was


def test_the_worker_reports_its_parked_events_until_a_person_takes_them(infra, processes):
    """TuoguanEventsDeadLettered fired for 15 minutes after an event was
    parked, then nothing said it was still there."""
    worker = start_retry_worker(infra, processes, env={"TUOGUAN_QUEUE_WATCH_SECONDS": "0.2"})
    parked = worker.queue + ".parked"
    try:
        def depth() -> float | None:
            body = urllib.request.urlopen(f"http://127.0.0.1:{worker.metrics_port}/metrics", timeout=5).read()
            needle = f'tuoguan_event_queue_parked_messages{{queue="{parked}",service="retrytest"}} '
            return next((float(line.rsplit(" ", 1)[1]) for line in body.decode().splitlines()
                         if line.startswith(needle)), None)

        wait_for(lambda: depth() == 0, timeout=10, message="the parking queue read, nothing parked")
        worker.publish("raises:1")
        wait_for(lambda: depth() == 1, timeout=30, message="the parked event counted")
        assert worker.outcomes() == {"error": ATTEMPTS - 1, "parked": 1.0}
        assert len(worker.take(parked)) == 1  # dropped by an operator
        wait_for(lambda: depth() == 0, timeout=10, message="the parking queue empty again")
    finally:
        stop_retry_worker(worker, processes)


def test_failed_events_are_published_again_on_one_kept_connection_which_a_broker_restart_replaces(
        infra, processes):
    """A connection of its own per failed message before: ~3 ms of CPU and a
    TIME_WAIT socket each. Here the broker, as the worker sees it, restarts
    (every connection closed) while events are being retried."""
    broker_port = urlsplit(infra["amqp_uri"]).port
    with SilentProxy(broker_port) as broker:
        worker = start_retry_worker(infra, processes, amqp_uri=broker.url(infra["amqp_uri"]))
        try:
            connections = "tuoguan_event_republish_connections_total"
            assert worker.metric(connections) == 0
            with psycopg.connect(worker.url) as holder:
                holder.execute("SELECT id FROM gate WHERE id = 1 FOR UPDATE")
                first = {worker.publish(f"locked:a{n}") for n in range(15)}
                wait_for(lambda: len(worker.rows("SELECT 1 FROM dead_letters")) == len(first), timeout=30,
                         message="the first events dead-lettered after their last attempt")
                assert worker.outcomes()["error"] == len(first) * (ATTEMPTS - 1)
                assert worker.metric(connections) == 1  # every failure published again on the same one

                second = {worker.publish(f"locked:b{n}") for n in range(15)}
                wait_for(lambda: worker.outcomes()["error"] >= len(first) * (ATTEMPTS - 1) + len(second),
                         timeout=15, message="the next events failed once")
                broker.drop()  # mid-way: the next events are being retried
                wait_for(lambda: {e for (e,) in worker.rows("SELECT event_id::text FROM dead_letters")}
                         == first | second, timeout=60, message="the next events dead-lettered after the restart")
            assert worker.metric(connections) == 2  # the broken one replaced, once
            assert all(error == f"LockNotAvailable on attempt {ATTEMPTS}, the last"
                       for (error,) in worker.rows("SELECT error FROM dead_letters"))
        finally:
            stop_retry_worker(worker, processes)


def test_a_database_outage_longer_than_the_attempts_budget_does_not_use_it_up(infra, processes):
    """Every try during an outage failed (lost connections, then no connection
    from the pool in time), each counted: the budget (~20 s in production)
    was spent and the event dead-lettered, or parked, with nothing wrong with it."""
    with SilentProxy(urlsplit(infra["database_url"]).port) as database:
        worker = start_retry_worker(infra, processes, database_url=database.url, env={
            "TUOGUAN_WORKER_DB_POOL_TIMEOUT": "0.5", "TUOGUAN_EVENT_RETRY_MAX_SECONDS": "1"})
        try:
            database.refusing.set()
            database.drop()
            event_id = worker.publish("applied:1")
            # Tries every ~1.5 s (the longest delay, then the pool's wait): more than the attempts allow.
            wait_for(lambda: worker.outcomes().get("error", 0) >= ATTEMPTS + 2, timeout=40,
                     message="more failed tries than the attempts allow")
            assert "attempt not counted" in worker.log()
            assert worker.rows("SELECT count(*) FROM dead_letters") == [(0,)]
            assert not worker.queue_messages(worker.queue + ".parked")

            database.refusing.clear()
            wait_for(lambda: worker.rows("SELECT payment_id FROM effects"), timeout=60,
                     message="the event applied once the database answers")
            assert worker.rows("SELECT event_id::text FROM inbox") == [(event_id,)]
            assert worker.rows("SELECT count(*) FROM dead_letters") == [(0,)]
            assert worker.outcomes()["ok"] == 1.0
            assert "parked" not in worker.outcomes()
        finally:
            stop_retry_worker(worker, processes)


@pytest.mark.parametrize("sqlstate, retried", [
    ("40001", True), ("40P01", True), ("55P03", True), ("25006", True), ("57P01", True), ("57P03", True),
    ("08006", True), ("53300", True), ("53100", True), ("57014", True), ("57P05", True),
    ("54000", False), ("23505", False), ("22001", False), ("42P01", False), ("22P05", False),
])
def test_transient_is_decided_by_sqlstate(sqlstate, retried):
    assert transient(psycopg.errors.lookup(sqlstate)("from the server")) is retried


def test_no_sqlstate_is_transient_only_when_the_database_was_not_reached():
    from psycopg_pool import PoolTimeout

    assert transient(psycopg.OperationalError("server closed the connection unexpectedly"))
    assert transient(PoolTimeout("couldn't get a connection after 30.00 sec"))
    assert not transient(psycopg.InternalError("no SQLSTATE"))
    assert not transient(ValueError("a rule the event breaks"))
