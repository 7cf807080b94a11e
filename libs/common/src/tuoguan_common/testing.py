"""Pytest fixtures shared by every service's tests (a pytest plugin).

The infrastructure rule: with a Docker engine, ``docker-compose.yml`` brings
PostgreSQL and RabbitMQ up through pytest-docker; without one, the servers
named by ``DATABASE_URL`` and ``AMQP_URI`` (default: the local ones) must
answer. Neither: the session fails loudly. Nothing is skipped.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Iterable
from urllib.parse import urlsplit

import pytest

from .config import DEFAULT_AMQP_URI, DEFAULT_DATABASE_URL, DEFAULT_REDIS_URL
from .net import answers, free_port  # noqa: F401 - free_port is part of the fixtures' API
from .processes import ProcessFailed, ProcessGroup
from .vhosts import private_vhost

REPO = Path(__file__).resolve().parents[4]


def _docker_engine() -> bool:
    if not shutil.which("docker"):
        return False
    return subprocess.run(["docker", "info"], capture_output=True, timeout=20).returncode == 0


@pytest.fixture(scope="session")
def docker_compose_file():
    return str(REPO / "docker-compose.yml")


@pytest.fixture(scope="session")
def docker_setup():
    # Only the infrastructure: the tests start the platform's own processes on fresh databases,
    # and compose's copies of them would consume the tests' events.
    return ["up --wait postgres rabbitmq redis"]


@pytest.fixture(scope="session")
def infra(request):
    """URLs of a PostgreSQL server, a RabbitMQ broker and a Redis (the portal's waiting room) that answer."""
    if _docker_engine() and not os.environ.get("DATABASE_URL"):
        docker_services = request.getfixturevalue("docker_services")
        docker_services.wait_until_responsive(timeout=90, pause=1, check=lambda: answers("127.0.0.1", 5432))
        docker_services.wait_until_responsive(timeout=90, pause=1, check=lambda: answers("127.0.0.1", 5672))
        docker_services.wait_until_responsive(timeout=90, pause=1, check=lambda: answers("127.0.0.1", 6379))
    db = os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL
    amqp = os.environ.get("AMQP_URI") or DEFAULT_AMQP_URI
    redis = os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL
    missing = []
    for name, url, port in (("PostgreSQL", db, 5432), ("RabbitMQ", amqp, 5672), ("Redis", redis, 6379)):
        parts = urlsplit(url)
        if not answers(parts.hostname or "127.0.0.1", parts.port or port):
            missing.append(f"{name} at {parts.hostname}:{parts.port or port}")
    if missing:
        pytest.fail(
            "integration tests need a real PostgreSQL, RabbitMQ and Redis, and these did not answer: "
            + ", ".join(missing)
            + ". Start them (bash .ci/run does), set DATABASE_URL / AMQP_URI / REDIS_URL, or install a Docker engine.",
            pytrace=False,
        )
    # A test run of its own on the broker: a `make up` or a second run beside it shares no queue with it.
    amqp, cleanup = private_vhost(amqp, "test")
    try:
        yield {"database_url": db, "amqp_uri": amqp, "redis_url": redis}
    finally:
        cleanup()


@pytest.fixture(scope="session")
def token_keys(tmp_path_factory) -> dict[str, str]:
    from .auth import generate_keypair

    private, public = generate_keypair(tmp_path_factory.mktemp("keys"))
    return {"private": str(private), "public": str(public)}


@pytest.fixture(scope="session")
def issuer(token_keys):
    from .auth import TokenIssuer

    return TokenIssuer(Path(token_keys["private"]).read_bytes())


@pytest.fixture(scope="session")
def verifier(token_keys):
    from .auth import TokenVerifier

    return TokenVerifier(Path(token_keys["public"]).read_bytes())


def unique_database_url(infra: dict[str, str], service: str) -> str:
    server = urlsplit(infra["database_url"])
    return server._replace(path=f"/test_{service}_{uuid.uuid4().hex[:8]}").geturl()


@pytest.fixture
def make_database(infra):
    """Creates a migrated, empty database for a service; dropped afterwards."""
    from .db import Database, drop_database, migrate

    made: list[tuple[str, Database]] = []

    def make(service: str, migrations_dir: Path) -> Database:
        url = unique_database_url(infra, service)
        migrate(url, migrations_dir)
        db = Database(url, max_size=20, name=f"test-{service}").open()
        made.append((url, db))
        return db

    yield make
    for url, db in made:
        db.close()
        drop_database(url)


def migrate_in_background(url: str, migrations_dir: Path) -> tuple[threading.Thread, list[BaseException]]:
    """Starts a service's migrations in a thread, as a deploy step beside the
    running platform: the thread, and what it raised (filled once it ends)."""
    from .db import migrate

    failures: list[BaseException] = []

    def run() -> None:
        try:
            migrate(url, migrations_dir)
        except BaseException as exc:  # noqa: BLE001 - what the deploy step would report
            failures.append(exc)

    thread = threading.Thread(target=run, name="migrate")
    thread.start()
    return thread, failures


def retention_indexes(url: str) -> dict[str, bool]:
    """The retention purge's indexes (``retention.INDEXES``) the database has: name -> valid."""
    import psycopg

    from .retention import INDEXES

    with psycopg.connect(url) as conn:
        return dict(conn.execute("SELECT c.relname, i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                                 "WHERE c.relname = ANY(%s)", (list(INDEXES),)).fetchall())


def check_retention_indexes_migration(url: str, migrations_dir: Path, previous: str) -> None:
    """A service's migration that builds the retention purge's indexes, from
    ``previous`` (its revision before) on a database with rows: built beside a
    transaction writing the inbox, while other writers of the inbox and the
    keys go on (CONCURRENTLY: a plain CREATE INDEX would queue them behind
    it); dropped by the downgrade; built again by the next upgrade."""
    import psycopg

    from .db import downgrade, migrate
    from .retention import INDEXES

    def write(conn: psycopg.Connection) -> None:
        conn.execute("INSERT INTO inbox (event_id, handler) VALUES (gen_random_uuid(), 'handler')")
        conn.execute("INSERT INTO idempotency_keys (scope, owner, key, request_hash) "
                     "VALUES ('scope', 'owner', gen_random_uuid()::text, 'h')")

    migrate(url, migrations_dir, previous)
    assert retention_indexes(url) == {}
    with psycopg.connect(url) as long_writer:
        write(long_writer)
        attempt, failures = migrate_in_background(url, migrations_dir)
        time.sleep(1.0)
        with psycopg.connect(url, autocommit=True) as writer:
            writer.execute("SET lock_timeout = '2s'")
            write(writer)
        assert attempt.is_alive(), "the build did not wait for the transaction writing the inbox"
        long_writer.commit()
    attempt.join(60)
    assert not attempt.is_alive() and failures == []
    assert retention_indexes(url) == {name: True for name in INDEXES}
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT (SELECT count(*) FROM inbox), (SELECT count(*) FROM idempotency_keys)"
                            ).fetchone() == (2, 2)
    downgrade(url, migrations_dir, previous)
    assert retention_indexes(url) == {}
    migrate(url, migrations_dir)
    assert retention_indexes(url) == {name: True for name in INDEXES}


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.05, message: str = "condition"):
    """Polls until predicate() is truthy; fails the test with ``message`` otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout}s waiting for {message}")


class Processes(ProcessGroup):
    """Real service processes (api, worker, gateway) started by a test.

    Workers run as their own processes, as in production: the test process
    is never eventlet-patched, so in-process grpcio servers keep working.
    A process that does not come up fails the test with its log.
    """

    def start(self, *args, **kwargs) -> subprocess.Popen:
        try:
            return super().start(*args, **kwargs)
        except ProcessFailed as exc:
            pytest.fail(str(exc), pytrace=False)


@pytest.fixture
def processes(tmp_path):
    group = Processes(tmp_path, cwd=REPO)
    yield group
    group.stop_all()


class SilentProxy:
    """A TCP proxy to ``target_port`` on this machine that can go silent:
    while ``frozen`` it keeps every connection open and accepts what is sent
    (the kernel acknowledges it) but forwards nothing either way, as a broker
    or database server that stopped answering, or vanished without a reset.
    Thawed, it forwards what it held. A side that closes closes the other.
    Plain threads: the test process is never eventlet-patched."""

    def __init__(self, target_port: int, host: str = "127.0.0.1"):
        self.host = host
        self.target = (host, target_port)
        self.frozen = threading.Event()
        # While set, a new connection is closed at once, as a server down (with drop(): an outage).
        self.refusing = threading.Event()
        self._closed = threading.Event()
        self._listener = socket.create_server((host, 0))
        self.port = self._listener.getsockname()[1]
        self._sockets: list[socket.socket] = [self._listener]
        threading.Thread(target=self._accept, name=f"proxy-{self.port}", daemon=True).start()

    def url(self, url: str) -> str:
        """``url`` (a server on the target port) through the proxy."""
        parts = urlsplit(url)
        userinfo = parts.netloc.rpartition("@")[0]
        return parts._replace(netloc=f"{userinfo}@{self.host}:{self.port}" if userinfo
                              else f"{self.host}:{self.port}").geturl()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
                if self.refusing.is_set():
                    client.close()
                    continue
                upstream = socket.create_connection(self.target)
            except OSError:
                continue
            self._sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                while self.frozen.is_set() and not self._closed.is_set():
                    time.sleep(0.02)
                sink.sendall(data)
            while self.frozen.is_set() and not self._closed.is_set():
                time.sleep(0.02)
        except OSError:
            pass
        for s in (sink, source):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def drop(self) -> None:
        """Closes every connection through the proxy, as a server restarting
        does (clients see them closed); new ones are forwarded as before."""
        dropped, self._sockets = self._sockets[1:], self._sockets[:1]
        for s in dropped:
            try:
                s.shutdown(socket.SHUT_RDWR)
                s.close()
            except OSError:
                pass

    def close(self) -> None:
        self._closed.set()
        for s in self._sockets:
            try:
                s.close()
            except OSError:
                pass

    def __enter__(self) -> "SilentProxy":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# RabbitMQ, as the workers see it: nameko events on ``<source>.events``
# (routing key = event type, JSON body with ``event_id`` and ``occurred_at``).

def _broker(amqp_uri: str):
    import kombu

    connection = kombu.Connection(amqp_uri)
    connection.connect()
    return connection


def _declare_events_exchange(channel, source: str) -> str:
    # The same declaration as nameko's and the outbox relay's, so all agree.
    exchange = f"{source}.events"
    channel.exchange_declare(exchange, "topic", durable=True, auto_delete=False)
    return exchange


def publish_event(amqp_uri: str, source: str, message, event_id: str | None = None) -> str:
    """Publishes ``message`` as service ``source`` would; returns its event id.

    Publishing the same ``event_id`` twice is a redelivery, as consumers see it.
    """
    import amqp

    from .outbox import event_payload, utcnow

    event_id = event_id or str(uuid.uuid4())
    body = json.dumps(event_payload(message, event_id, utcnow()))
    with _broker(amqp_uri) as connection:
        channel = connection.channel()
        exchange = _declare_events_exchange(channel, source)
        channel.basic_publish(
            amqp.Message(body, content_type="application/json", content_encoding="utf-8", delivery_mode=2),
            exchange=exchange, routing_key=message.DESCRIPTOR.name,
        )
    return event_id


class EventTap:
    """A test's own queue on ``<source>.events``, bound to ``event_types``:
    collects what is published from now on (use as a context manager)."""

    def __init__(self, amqp_uri: str, source: str, event_types: Iterable[str]):
        self._connection = _broker(amqp_uri)
        self._channel = self._connection.channel()
        exchange = _declare_events_exchange(self._channel, source)
        self.queue = f"test-{source}-{uuid.uuid4().hex[:8]}"
        self._channel.queue_declare(self.queue, exclusive=True)
        for event_type in event_types:
            self._channel.queue_bind(self.queue, exchange, routing_key=event_type)
        self.received: list[tuple[str, dict]] = []

    def drain(self) -> list[tuple[str, dict]]:
        """Every (event type, body) received so far."""
        while (message := self._channel.basic_get(self.queue, no_ack=True)) is not None:
            self.received.append((message.delivery_info["routing_key"], json.loads(message.body)))
        return self.received

    def events(self, event_type: str, **fields) -> list[dict]:
        """The bodies of ``event_type`` so far whose ``fields`` have the given values
        (other tests' workers may publish on the same exchange)."""
        return [body for kind, body in self.drain()
                if kind == event_type and all(body.get(k) == v for k, v in fields.items())]

    def close(self) -> None:
        self._connection.release()

    def __enter__(self) -> "EventTap":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def queue_consumers(connection, queue: str) -> int:
    """How many consumers a queue has; 0 when it does not exist yet."""
    from .topology import queue_state

    state = queue_state(connection, queue)
    return 0 if state is None else state[1]


def wait_for_consumers(amqp_uri: str, queues: Iterable[str], *, exactly: int | None = None,
                       timeout: float = 30.0, message: str | None = None) -> None:
    """Waits until every queue has a consumer, or exactly ``exactly`` of them
    (a worker's handler queues are shared by every replica on the broker)."""
    queues = list(queues)
    wanted = "a consumer" if exactly is None else f"exactly {exactly} consumer(s)"

    def ready() -> bool:
        counts = [queue_consumers(connection, q) for q in queues]
        return all(n > 0 if exactly is None else n == exactly for n in counts)

    with _broker(amqp_uri) as connection:
        wait_for(ready, timeout=timeout, message=message or f"{wanted} on each of {', '.join(queues)}")
