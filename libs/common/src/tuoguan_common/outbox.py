"""Transactional outbox, consumer inbox and idempotency keys.

A write appends its events to ``outbox`` in the same transaction as its
change; the worker's relay publishes them to RabbitMQ as nameko events
(exchange ``<service>.events``, routing key = event type) and marks them sent
once the broker has committed them. Consumers record each handled event id in
``inbox`` in the transaction of their effect, so a redelivery changes nothing.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import logging
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from google.protobuf import json_format
from google.protobuf.message import Message
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from . import metrics, telemetry
from .db import pg_array
from .errors import InvalidArgument
from .net import limit_amqp_waits

log = logging.getLogger(__name__)

# One copy of the tables every service needs; each service's first migration
# executes it.
DDL = """
CREATE TABLE IF NOT EXISTS outbox (
    id          bigserial PRIMARY KEY,
    event_id    uuid        NOT NULL UNIQUE,
    event_type  text        NOT NULL,
    payload     jsonb       NOT NULL,
    headers     jsonb       NOT NULL DEFAULT '{}'::jsonb,
    created_at  timestamptz NOT NULL DEFAULT now(),
    sent_at     timestamptz
);
CREATE INDEX IF NOT EXISTS outbox_unsent ON outbox (id) WHERE sent_at IS NULL;

CREATE TABLE IF NOT EXISTS inbox (
    event_id    uuid        NOT NULL,
    handler     text        NOT NULL,
    handled_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (event_id, handler)
);

CREATE TABLE IF NOT EXISTS dead_letters (
    id          bigserial   PRIMARY KEY,
    event_id    text,
    event_type  text        NOT NULL,
    handler     text        NOT NULL,
    error       text        NOT NULL,
    payload     jsonb       NOT NULL,
    failed_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS idempotency_keys (
    scope        text        NOT NULL,
    owner        text        NOT NULL,
    key          text        NOT NULL,
    request_hash text        NOT NULL,
    response     bytea,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, owner, key)
);
"""


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def event_payload(message: Message, event_id: str, occurred_at: dt.datetime) -> dict[str, Any]:
    body = json_format.MessageToDict(message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)
    body["event_id"] = event_id
    body["occurred_at"] = occurred_at.isoformat()
    return body


def parse_event(payload: dict[str, Any], message_type: type[Message]) -> Message:
    """The consumer's side: the payload back into its protobuf message."""
    return json_format.ParseDict(payload, message_type(), ignore_unknown_fields=True)


def append(
    cur: psycopg.Cursor, message: Message, *, event_id: str | None = None, trace_carrier: dict | None = None,
) -> str:
    """Adds an event to the outbox inside the caller's transaction.

    The event continues the current trace; work done later on behalf of an
    earlier request (a timer settling a payment) passes the ``trace_carrier``
    it saved from that request so the saga stays one trace.
    """
    row = _outbox_row(message, event_id, dict(trace_carrier) if trace_carrier else telemetry.inject())
    cur.execute(_APPEND, row)
    return row[0]


def append_many(cur: psycopg.Cursor, events: list[tuple[Message, dict | None]]) -> list[str]:
    """Adds a batch's events in one round, each with the trace carrier of the
    request it came from (None: the current trace)."""
    rows = [_event_row(message, None, dict(carrier) if carrier else telemetry.inject())
            for message, carrier in events]
    if rows:
        cur.execute("INSERT INTO outbox (event_id, event_type, payload, headers) "
                    "SELECT * FROM unnest(%s::uuid[], %s::text[], %s::jsonb[], %s::jsonb[])",
                    (pg_array(r[0] for r in rows), pg_array(r[1] for r in rows),
                     pg_array(json.dumps(r[2]) for r in rows), pg_array(json.dumps(r[3]) for r in rows)))
    return [row[0] for row in rows]


_APPEND = "INSERT INTO outbox (event_id, event_type, payload, headers) VALUES (%s, %s, %s, %s)"


def _event_row(message: Message, event_id: str | None, headers: dict) -> tuple[str, str, dict, dict]:
    event_id = event_id or str(uuid.uuid4())
    return event_id, message.DESCRIPTOR.name, event_payload(message, event_id, utcnow()), headers


def _outbox_row(message: Message, event_id: str | None, headers: dict) -> tuple:
    event_id, event_type, payload, headers = _event_row(message, event_id, headers)
    return event_id, event_type, Jsonb(payload), Jsonb(headers)


def dead_letter(cur: psycopg.Cursor, payload: Any, event_type: str, handler: str, error: str) -> None:
    """Keeps an event no handler can apply, for an operator to look at and replay."""
    cur.execute(
        "INSERT INTO dead_letters (event_id, event_type, handler, error, payload) VALUES (%s, %s, %s, %s, %s)",
        (str(payload["event_id"]) if isinstance(payload, dict) and payload.get("event_id") else None,
         event_type, handler, error,
         Jsonb(payload if isinstance(payload, (dict, list)) else {"raw": str(payload)})),
    )


def first_time(cur: psycopg.Cursor, event_id: str, handler: str) -> bool:
    """Records that ``handler`` handled ``event_id``; False when it already had."""
    cur.execute(
        "INSERT INTO inbox (event_id, handler) VALUES (%s, %s) ON CONFLICT DO NOTHING RETURNING 1",
        (event_id, handler),
    )
    return cur.fetchone() is not None


def first_times(cur: psycopg.Cursor, event_ids: Sequence[str], handler: str) -> set[str]:
    """``first_time`` for a batch of events in one statement: the ids not handled before."""
    if not event_ids:
        return set()
    cur.execute("INSERT INTO inbox (event_id, handler) SELECT unnest(%s::uuid[]), %s "
                "ON CONFLICT DO NOTHING RETURNING event_id::text", (pg_array(sorted(set(event_ids))), handler),
                prepare=False)
    return {row["event_id"] for row in cur.fetchall()}


def request_fingerprint(request: Message) -> str:
    return hashlib.sha256(request.SerializeToString(deterministic=True)).hexdigest()


def as_parsed(request: Message, **fields: Any) -> Message:
    """A copy of ``request`` with ``fields`` as the handler parsed them (an id
    in its canonical form, a code in capitals, a text stripped): what to
    fingerprint, so a retry that spells them otherwise is the same request,
    not a key reused for another one."""
    parsed = type(request)()
    parsed.CopyFrom(request)
    for name, value in fields.items():
        setattr(parsed, name, value)
    return parsed


class IdempotencyConflict(InvalidArgument):
    """The key was used before for a different request: INVALID_ARGUMENT on
    ``idempotency_key`` (HTTP 422), with a reason of its own, so a client can
    tell a key it reused by mistake (make a new one) from a field it got wrong."""

    reason = "idempotency_key_reused"

    def __init__(self, key: str):
        super().__init__("idempotency_key", "was already used for a different request")


def claim_key(cur: psycopg.Cursor, scope: str, owner: str, key: str, request_hash: str) -> bytes | None:
    """Claims an idempotency key inside the write's transaction.

    Returns None when the key is new (go on and do the work), or the stored
    response of the first request. A concurrent request with the same key waits
    on the row until the first one commits, then gets its answer.
    """
    cur.execute(
        "INSERT INTO idempotency_keys (scope, owner, key, request_hash) VALUES (%s, %s, %s, %s) "
        "ON CONFLICT DO NOTHING RETURNING 1",
        (scope, owner, key, request_hash),
    )
    if cur.fetchone() is not None:
        return None
    cur.execute(
        "SELECT request_hash, response FROM idempotency_keys WHERE scope = %s AND owner = %s AND key = %s",
        (scope, owner, key),
    )
    row = cur.fetchone()
    if row["request_hash"] != request_hash:
        raise IdempotencyConflict(key)
    return bytes(row["response"] or b"")


@dataclass(frozen=True)
class EarlierRequest:
    """A key already claimed: the request's fingerprint and the first answer
    (None while the request that claimed it has not finished)."""

    request_hash: str
    response: bytes | None


# Planned for their arrays on each call (prepare=False below): a cached
# generic plan of these IN (unnest) lookups scans the whole table.
_KEYS_IN = "(owner, key) IN (SELECT * FROM unnest(%s::text[], %s::text[]))"
_EARLIER = f"SELECT owner, key, request_hash, response FROM idempotency_keys WHERE scope = %s AND {_KEYS_IN}"


def claim_keys(cur: psycopg.Cursor, scope: str, claims: Sequence[tuple[str, str, str]]) -> set[tuple[str, str]]:
    """``claim_key`` for a batch of distinct (owner, key, request hash) in one
    statement: the (owner, key) pairs claimed now. A key another transaction
    holds is waited for, then left out if it committed."""
    if not claims:
        return set()
    claims = sorted(claims)  # one order for every batch: concurrent batches wait, never deadlock
    cur.execute(
        "INSERT INTO idempotency_keys (scope, owner, key, request_hash) "
        "SELECT %s, * FROM unnest(%s::text[], %s::text[], %s::text[]) ON CONFLICT DO NOTHING RETURNING owner, key",
        (scope, pg_array(c[0] for c in claims), pg_array(c[1] for c in claims), pg_array(c[2] for c in claims)),
    )
    return {(r["owner"], r["key"]) for r in cur.fetchall()}


def earlier_requests(cur: psycopg.Cursor, scope: str, keys: Sequence[tuple[str, str]], *,
                     lock: bool = False) -> dict[tuple[str, str], EarlierRequest]:
    """The claimed keys among (owner, key) pairs, locked with ``lock``
    (the caller's cursor returns rows as dicts, as ``Database``'s do)."""
    if not keys:
        return {}
    keys = sorted(set(keys))
    cur.execute(_EARLIER + (" ORDER BY owner, key FOR UPDATE" if lock else ""),
                (scope, pg_array(k[0] for k in keys), pg_array(k[1] for k in keys)), prepare=False)
    return {(r["owner"], r["key"]): EarlierRequest(r["request_hash"],
                                                   bytes(r["response"]) if r["response"] is not None else None)
            for r in cur.fetchall()}


def forget_keys(cur: psycopg.Cursor, scope: str, keys: Sequence[tuple[str, str]]) -> None:
    """Releases keys whose requests were refused after they were claimed, so they may be used again."""
    if keys:
        cur.execute(f"DELETE FROM idempotency_keys WHERE scope = %s AND {_KEYS_IN} AND response IS NULL",
                    (scope, pg_array(k[0] for k in keys), pg_array(k[1] for k in keys)), prepare=False)


def store_responses(cur: psycopg.Cursor, scope: str, answered: Sequence[tuple[str, str, Message]]) -> None:
    """``store_response`` for a batch, in one statement."""
    if answered:
        cur.execute(
            "UPDATE idempotency_keys k SET response = a.response "
            "FROM unnest(%s::text[], %s::text[], %s::bytea[]) AS a(owner, key, response) "
            "WHERE k.scope = %s AND k.owner = a.owner AND k.key = a.key",
            (pg_array(a[0] for a in answered), pg_array(a[1] for a in answered),
             pg_array(a[2].SerializeToString() for a in answered), scope),
            prepare=False,
        )


def store_response(cur: psycopg.Cursor, scope: str, owner: str, key: str, response: Message) -> None:
    cur.execute(
        "UPDATE idempotency_keys SET response = %s WHERE scope = %s AND owner = %s AND key = %s",
        (response.SerializeToString(), scope, owner, key),
    )


class OutboxRelay:
    """Moves outbox rows to RabbitMQ.

    Each batch is taken with ``FOR UPDATE SKIP LOCKED`` (so several worker
    replicas share the work), published inside one AMQP transaction (the broker
    has every message once tx_commit returns), then marked sent. A crash
    between publish and mark re-sends the batch: consumers' inbox absorbs it.

    A run holds its batch's row locks, so nothing it waits for may hold it
    forever: a peer that keeps the connection open but stops answering (a
    broker's memory alarm, a node gone without a reset, a database failover)
    fails the run, which drops both connections; the next run connects again.
    """

    # How long one wait on RabbitMQ, or on data sent to PostgreSQL, may last.
    io_timeout = 15.0
    connect_timeout = 5
    # A whole run in a green process (the worker), where eventlet can cut any
    # wait short: a query the database never answers leaves no error for the
    # kernel to report (the bytes were acknowledged), so only a deadline ends it.
    run_timeout = 45.0

    def __init__(self, service: str, database_url: str, amqp_uri: str, *, batch_size: int = 200):
        self.service = service
        self.database_url = database_url
        self.amqp_uri = amqp_uri
        self.batch_size = batch_size
        self.exchange_name = f"{service}.events"
        self._conn: psycopg.Connection | None = None
        self._amqp = None
        # Series exist from the start, so rate() and alerts see zero, not nothing;
        # a relay stuck in its first run ages from its start.
        metrics.OUTBOX_RELAY_ERRORS.labels(service)
        metrics.OUTBOX_RELAYED.labels(service)
        metrics.OUTBOX_RELAY_LAST_SUCCESS.labels(service).set_to_current_time()
        self._channel = None

    def _connect(self) -> None:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(
                self.database_url, autocommit=False, connect_timeout=self.connect_timeout,
                # A server gone without a word: the kernel gives up on data it
                # sent that is never acknowledged, and probes an idle connection.
                tcp_user_timeout=int(self.io_timeout * 1000),
                keepalives=1, keepalives_idle=10, keepalives_interval=5, keepalives_count=3,
            )
        if self._amqp is None:
            import kombu

            from .config import amqp_tls

            # The URI read as nameko's consumers read it (kombu): amqps:// is
            # TLS, on 5671 unless it names a port.
            broker = kombu.Connection(self.amqp_uri, heartbeat=0, connect_timeout=self.connect_timeout,
                                      ssl=amqp_tls(self.amqp_uri))
            try:
                broker.connect()
            except BaseException:
                broker.collect()
                raise
            self._amqp = broker.connection
            # A broker that blocks publishers (memory or disk alarm) must not
            # hold the batch's row locks forever: time out, roll back,
            # reconnect, and let the error counter tell.
            limit_amqp_waits(self._amqp, self.io_timeout)
            self._channel = self._amqp.channel()
            # Same declaration as nameko's get_event_exchange, so both agree.
            self._channel.exchange_declare(self.exchange_name, "topic", durable=True, auto_delete=False)
            self._channel.tx_select()

    def _bound_idleness(self, cur: psycopg.Cursor) -> None:
        """The first statement of each of the relay's transactions. The other
        side of the same failure: a relay that vanished while holding its
        batch's row locks (its transaction idle on the server) frees them for
        the other replicas. Longer than a run may last, so the relay's own
        deadline ends a slow run first. For the transaction only: a session's
        setting would stay, behind a transaction pooler (PgBouncer), on a
        server connection that other clients get next, and the relay's next
        transaction may not."""
        cur.execute("SELECT set_config('idle_in_transaction_session_timeout', %s, true)",
                    (str(int((self.run_timeout + self.io_timeout) * 1000)),), prepare=False)

    def close(self) -> None:
        """Closes both connections, telling the peers if they answer in time."""
        # Best effort: a peer that does not answer has its connection dropped below.
        with contextlib.suppress(Exception):
            with _time_limit(self.io_timeout, "closing the outbox relay's connections"):
                for closer in (self._channel, self._amqp, self._conn):
                    if closer is not None:
                        closer.close()
        self.abandon()

    def abandon(self) -> None:
        """Drops both connections without waiting on either peer.

        PostgreSQL rolls back the run's transaction when its connection goes
        (a server the close does not reach: once
        idle_in_transaction_session_timeout has passed); RabbitMQ discards an
        AMQP transaction that was not committed.
        """
        if self._amqp is not None:
            with contextlib.suppress(Exception):
                self._amqp.collect()
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
        self._conn = self._amqp = self._channel = None

    def relay_once(self) -> int:
        """Publishes one batch; returns how many events it sent.

        A run that fails or runs out of time abandons its connections (the
        batch stays unsent) and raises; the next run connects again.
        """
        sent = self._limited(self._relay_batch)
        metrics.OUTBOX_RELAY_LAST_SUCCESS.labels(self.service).set_to_current_time()
        return sent

    def backlog(self) -> int:
        n = self._limited(self._count_backlog)
        metrics.OUTBOX_BACKLOG.labels(self.service).set(n)
        return n

    def _limited(self, step: Callable[[], int]) -> int:
        try:
            with _time_limit(self.run_timeout, f"an outbox relay run of {self.service}"):
                return step()
        except BaseException:
            # A run cut short leaves a transaction open or a reply unread:
            # neither connection is fit for the next run.
            self.abandon()
            raise

    def _relay_batch(self) -> int:
        import amqp

        self._connect()
        assert self._conn is not None and self._channel is not None
        with self._conn.cursor() as cur:
            self._bound_idleness(cur)
            # The payload as PostgreSQL writes jsonb out: already the JSON to send (no parse and dump again).
            cur.execute(
                "SELECT id, event_type, payload::text, headers FROM outbox WHERE sent_at IS NULL "
                "ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED",
                (self.batch_size,),
            )
            rows = cur.fetchall()
            if not rows:
                self._conn.rollback()
                return 0
            for _id, event_type, payload, headers in rows:
                amqp_headers = {f"nameko.{k}": v for k, v in (headers or {}).items()}
                msg = amqp.Message(
                    payload,
                    content_type="application/json", content_encoding="utf-8",
                    delivery_mode=2, application_headers=amqp_headers,
                )
                self._channel.basic_publish(msg, exchange=self.exchange_name, routing_key=event_type)
            self._channel.tx_commit()
            cur.execute("UPDATE outbox SET sent_at = now() WHERE id = ANY(%s)", ([r[0] for r in rows],))
        self._conn.commit()
        metrics.OUTBOX_RELAYED.labels(self.service).inc(len(rows))
        return len(rows)

    def _count_backlog(self) -> int:
        self._connect()
        assert self._conn is not None
        with self._conn.cursor() as cur:
            self._bound_idleness(cur)
            cur.execute("SELECT count(*) FROM outbox WHERE sent_at IS NULL")
            n = cur.fetchone()[0]
        self._conn.commit()
        return n

    def run(self, should_stop, *, idle_sleep: float = 0.05, sleep=time.sleep) -> None:
        """Relays until ``should_stop()``; sleeps only when there is nothing to send."""
        last_backlog = 0.0
        while not should_stop():
            try:
                sent = self.relay_once()
                if time.monotonic() - last_backlog > 5:
                    self.backlog()
                    last_backlog = time.monotonic()
            except Exception:  # noqa: BLE001 - the relay must outlive a broker or database restart
                metrics.OUTBOX_RELAY_ERRORS.labels(self.service).inc()
                log.exception("outbox relay failed; reconnecting")
                sleep(1.0)
                continue
            if sent < self.batch_size:
                sleep(idle_sleep)
        self.close()


class DeadlineExceeded(Exception):
    """A relay run, or its closing, took longer than its time limit.

    Neither an OSError (psycopg reports any OSError raised in its wait as a
    closed socket) nor eventlet's own Timeout (a BaseException, which would
    end the relay's loop instead of failing one run)."""


def _time_limit(seconds: float, what: str) -> contextlib.AbstractContextManager:
    """A deadline for everything inside, where it can be kept: in a process
    eventlet has patched, any wait is cut short with ``DeadlineExceeded``. A
    plain process has no such means; its sockets' own timeouts bound each
    wait there."""
    if "eventlet" in sys.modules:
        import eventlet
        from eventlet import patcher

        if patcher.is_monkey_patched("socket"):
            return eventlet.Timeout(seconds, DeadlineExceeded(f"{what} took longer than {seconds:g}s"))
    return contextlib.nullcontext()


@dataclass
class Idempotent:
    """One write's idempotency key: the first answer is kept and given again."""

    scope: str
    owner: str
    key: str
    fingerprint: str
    response_type: type[Message]
    # Set once the key turned out to be used before: the answer is a replay.
    replayed: bool = False

    @classmethod
    def of(cls, scope: str, owner: str, key: str, request: Message, response_type: type[Message]) -> Idempotent:
        return cls(scope, owner, key, request_fingerprint(request), response_type)

    def replay(self, cur: psycopg.Cursor) -> Message | None:
        stored = claim_key(cur, self.scope, self.owner, self.key, self.fingerprint)
        self.replayed = stored is not None
        return None if stored is None else self.response_type.FromString(stored)

    def remember(self, cur: psycopg.Cursor, response: Message) -> Message:
        store_response(cur, self.scope, self.owner, self.key, response)
        return response

    def run(self, database: Any, write: Callable[[psycopg.Cursor], Message]) -> Message:
        """The write, once: in one transaction, either the first answer given again, or
        ``write``'s answer, remembered with the key (in the write's own transaction)."""
        with database.transaction() as cur:
            replayed = self.replay(cur)
            if replayed is not None:
                return replayed
            return self.remember(cur, write(cur))


class KeyBatch:
    """The idempotency keys of a batch of writes (one scope, distinct keys).

    ``read`` only sends its statement, so it rides in the caller's pipeline;
    ``replay`` reads the answer. The keys of new writes are written with their
    answers by ``remember``, in the same transaction as the writes: the
    caller holds a lock that serialises each owner's writes in the scope
    (registration: the patient's advisory lock) from before ``read`` until
    the commit, so nobody else can take one of these keys in between. If
    something did, the unique key fails the whole transaction: nothing is
    half-written, and the retry finds the key.
    """

    _REMEMBER = ("INSERT INTO idempotency_keys (scope, owner, key, request_hash, response) "
                 "SELECT %s, * FROM unnest(%s::text[], %s::text[], %s::text[], %s::bytea[])")

    def __init__(self, writes: list[Idempotent]):
        self.writes = writes
        self.scope = writes[0].scope if writes else ""
        if any(w.scope != self.scope for w in writes) or len({(w.owner, w.key) for w in writes}) != len(writes):
            raise ValueError("a key batch holds distinct keys of one scope")
        self._cursor: psycopg.Cursor | None = None
        self._earlier: dict[tuple[str, str], Any] | None = None

    def read(self, conn: psycopg.Connection) -> None:
        self._cursor = conn.cursor(row_factory=dict_row)
        self._cursor.execute(_EARLIER, (self.scope, pg_array(w.owner for w in self.writes),
                                             pg_array(w.key for w in self.writes)), prepare=False)

    def replay(self, write: Idempotent) -> Message | None:
        """None when the key is new; else the first answer, or
        ``IdempotencyConflict`` when the key was used for another request."""
        if self._earlier is None:
            assert self._cursor is not None, "read() first"
            self._earlier = {(r["owner"], r["key"]): r for r in self._cursor.fetchall()}
        earlier = self._earlier.get((write.owner, write.key))
        if earlier is None:
            return None
        if earlier["request_hash"] != write.fingerprint:
            raise IdempotencyConflict(write.key)
        write.replayed = True
        return write.response_type.FromString(bytes(earlier["response"] or b""))

    def remember(self, cur: psycopg.Cursor, answered: list[tuple[Idempotent, Message]]) -> None:
        if answered:
            cur.execute(self._REMEMBER, (
                self.scope, pg_array(w.owner for w, _ in answered), pg_array(w.key for w, _ in answered),
                pg_array(w.fingerprint for w, _ in answered),
                pg_array(response.SerializeToString() for _, response in answered)))
