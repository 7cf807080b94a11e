"""Nameko dependencies shared by every worker process.

* ``WorkerStore``: the service's store over a connection pool built at
  container start, with psycopg's eventlet-safe wait function.
* ``Observability``: a span per worker (child of the traceparent the relay put
  in the AMQP headers), RED metrics per event handler, and the depth of the
  service's event queues and of their parking queues (``EventQueueWatch``).
* ``OutboxRelayer``: a greenthread relaying the service's outbox.
* ``RetentionPurge``: a worker class's timer deleting the outbox, inbox and
  idempotency keys past their retention (``retention``).
* ``event_handler``: nameko's, with a failed event tried again later a
  bounded number of times, then dead-lettered (or, when even that fails,
  parked on the broker).
* ``handle_event``: parse, dedupe by inbox, apply, commit: once per event id.
* ``EventBatch``: the same for the events a handler's workers hold at once,
  in one transaction.
"""
from __future__ import annotations

import contextvars
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any, Callable, Generic, Sequence, TypeVar

import eventlet
import eventlet.event
import eventlet.semaphore
import kombu
from google.protobuf import json_format
from google.protobuf.message import Message
from nameko.events import EventHandler
from nameko.extensions import DependencyProvider
from nameko.timer import Timer
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from . import metrics, outbox, retention, telemetry
from .config import amqp_tls
from .db import Database, not_reached, transient
from .net import limit_amqp_waits
from .topology import queue_state

log = logging.getLogger(__name__)


class WorkerStore(DependencyProvider):
    """Injects the service's store, built once per container from its config."""

    def __init__(self, store_factory: Callable[[Database], Any], service: str):
        self.store_factory = store_factory
        self.service = service
        self.database: Database | None = None
        self.store = None

    def setup(self):
        from nameko import config

        self.database = Database(config["DATABASE_URL"], max_size=int(config.get("DB_POOL_SIZE", 8)),
                                 name=f"{self.service}-worker",
                                 timeout=float(config.get("DB_POOL_TIMEOUT", 30.0))).open()
        self.store = self.store_factory(self.database)

    def stop(self):
        if self.database is not None:
            self.database.close()

    def get_dependency(self, worker_ctx):
        return self.store


class EventQueueWatch:
    """How many events wait in each of a worker's queues, and how many
    consumers (replicas) read it, as the broker counts them: a passive
    declare per queue. A handler slower than its events shows here first,
    before any saga times out. A queue the broker does not have (yet) or a
    broker out of reach or silent leaves no figure rather than a stale one.

    ``parked``: parking queues (``<queue>.parked``) whose messages it counts
    too (``tuoguan_event_queue_parked_messages``): events that failed their
    last attempt, which stay there until a person acts. A handler declares its
    parking queue only when it first parks; the watch declares it (empty) if
    the broker does not have it, so that nothing parked reads 0."""

    def __init__(self, service: str, amqp_uri: str, queues: Sequence[str], *, parked: Sequence[str] = (),
                 timeout: float = 5.0):
        self.service = service
        self.amqp_uri = amqp_uri
        self.queues = list(queues)
        self.parked = list(parked)
        # For each wait on the broker: one that stopped answering would
        # otherwise hold the watch, and leave its last figures standing, forever.
        self.timeout = timeout

    def poll(self) -> dict[str, tuple[int, int]]:
        """Reads every queue (and parking queue) once; returns queue -> (messages, consumers) of those it
        could read."""
        seen: dict[str, tuple[int, int]] = {}
        conn = kombu.Connection(self.amqp_uri, connect_timeout=self.timeout, ssl=amqp_tls(self.amqp_uri))
        answered = False
        try:
            conn.connect()
            limit_amqp_waits(conn.connection, self.timeout)
            for queue in self.queues:
                state = queue_state(conn, queue)
                if state is not None:
                    seen[queue] = state
            for queue in self.parked:
                state = queue_state(conn, queue, create=True)
                if state is not None:
                    seen[queue] = state
            answered = True
        except (OSError, *conn.connection_errors, *conn.channel_errors) as exc:
            # Refused (a rotated password), unreachable, closed, silent: no figures this time.
            log.warning("event queue depths not read", extra={"error": type(exc).__name__})
        finally:
            if answered:
                conn.release()
            else:
                conn.collect()  # a broker that did not answer is not asked to close either
        for queue in self.queues:
            if queue in seen:
                metrics.EVENT_QUEUE_MESSAGES.labels(self.service, queue).set(seen[queue][0])
                metrics.EVENT_QUEUE_CONSUMERS.labels(self.service, queue).set(seen[queue][1])
            else:
                for gauge in (metrics.EVENT_QUEUE_MESSAGES, metrics.EVENT_QUEUE_CONSUMERS):
                    try:
                        gauge.remove(self.service, queue)
                    except KeyError:
                        pass
        for queue in self.parked:
            if queue in seen:
                metrics.EVENT_QUEUE_PARKED.labels(self.service, queue).set(seen[queue][0])
            else:
                try:
                    metrics.EVENT_QUEUE_PARKED.remove(self.service, queue)
                except KeyError:
                    pass
        return seen


# What tuoguan_events_handled_total counts a handled event as: a handler's
# result when it is one of these, "error" when it raised, else "ok";
# "parked" when it raised on its last attempt and the message was put in its
# queue's parking queue (RetryingEventHandler).
EVENT_OUTCOMES = ("ok", "duplicate", "malformed", "dead_lettered", "parked", "error")


class Observability(DependencyProvider):
    """Traces and measures every worker of the service, and watches the
    depth of its event queues and their parking queues while the container runs."""

    def __init__(self, service: str):
        self.service = service
        self._tracer = telemetry.tracer("tuoguan.nameko")
        self._state: dict[int, tuple] = {}
        self._watching = None

    def start(self):
        from nameko import config

        handlers = [e for e in self.container.entrypoints if isinstance(e, EventHandler)]
        # Every outcome's series from the start, at 0: a series born at 1 (the
        # first dead letter since the worker started) is no rise to increase(),
        # and TuoguanEventsDeadLettered would miss it.
        for entrypoint in handlers:
            for outcome in EVENT_OUTCOMES:
                metrics.EVENTS_HANDLED.labels(self.service, entrypoint.event_type, entrypoint.method_name, outcome)
        queues = sorted(e.queue.name for e in handlers)
        if queues:
            watch = EventQueueWatch(self.service, config["AMQP_URI"], queues,
                                    parked=[queue + PARKED_SUFFIX for queue in queues])
            interval = float(config.get("QUEUE_WATCH_SECONDS", 15.0))
            self._watching = self.container.spawn_managed_thread(lambda: self._watch(watch, interval))

    def _watch(self, watch: EventQueueWatch, interval: float) -> None:
        # Sleep first: dependencies start before the entrypoints, so a first
        # look at once would find the worker's own consumers not attached yet.
        while True:
            eventlet.sleep(interval)
            try:
                watch.poll()
            except Exception as exc:  # noqa: BLE001 - a managed thread that raises kills the container
                log.warning("event queue depths not read", extra={"error": type(exc).__name__})

    def stop(self):
        if self._watching is not None:
            self._watching.kill()
            self._watching = None

    def worker_setup(self, worker_ctx):
        carrier = {k: v for k, v in worker_ctx.context_data.items() if isinstance(v, str)}
        token = otel_context.attach(telemetry.extract(carrier))
        entrypoint = worker_ctx.entrypoint
        span = self._tracer.start_span(
            f"{self.service}.{entrypoint.method_name}", kind=SpanKind.CONSUMER,
        )
        span.set_attribute("messaging.system", "rabbitmq")
        event_type = getattr(entrypoint, "event_type", None)
        if event_type:
            span.set_attribute("messaging.event_type", event_type)
        ctx_token = otel_context.attach(trace.set_span_in_context(span))
        self._state[id(worker_ctx)] = (token, ctx_token, span, time.perf_counter())

    def worker_result(self, worker_ctx, result=None, exc_info=None):
        state = self._state.pop(id(worker_ctx), None)
        if state is None:
            return
        token, ctx_token, span, started = state
        entrypoint = worker_ctx.entrypoint
        handler = entrypoint.method_name
        event_type = getattr(entrypoint, "event_type", None)
        if exc_info is not None:
            span.set_status(Status(StatusCode.ERROR, exc_info[0].__name__))
        span.end()
        otel_context.detach(ctx_token)
        otel_context.detach(token)
        elapsed = time.perf_counter() - started
        if event_type:
            outcome = "error" if exc_info else (result if result in EVENT_OUTCOMES else "ok")
            metrics.EVENTS_HANDLED.labels(self.service, event_type, handler, outcome).inc()
            metrics.EVENT_DURATION.labels(self.service, handler).observe(elapsed)
        else:
            metrics.TIMER_RUNS.labels(self.service, handler, "error" if exc_info else "ok").inc()


class OutboxRelayer(DependencyProvider):
    """Relays the outbox in a greenthread for as long as the container runs."""

    def __init__(self, service: str):
        self.service = service
        self._gt = None
        self._stopping = False

    def start(self):
        from nameko import config

        self.relay = outbox.OutboxRelay(self.service, config["DATABASE_URL"], config["AMQP_URI"])
        self._stopping = False
        self._gt = eventlet.spawn(self.relay.run, lambda: self._stopping, sleep=eventlet.sleep)

    def stop(self):
        self._stopping = True
        if self._gt is not None:
            # The relay's own time limits end its run and its closing well
            # within this; should they not, the container must still stop.
            with eventlet.Timeout(self.relay.run_timeout + 2 * self.relay.io_timeout, False):
                self._gt.wait()
            self._gt.kill()

    def kill(self):
        self._stopping = True
        if self._gt is not None:
            self._gt.kill()

    def get_dependency(self, worker_ctx):
        return self.relay


class RetentionTimer(Timer):
    """nameko's timer, its interval read from the worker's configuration when
    the container starts (``RETENTION_INTERVAL_SECONDS``; 0: it never fires)
    rather than fixed at import. Stopping, it tells the run in progress
    (``stopping``), which ends after the round of batches it is in instead of
    spending its budget."""

    def __init__(self, **kwargs):
        super().__init__(interval=retention.DEFAULT_INTERVAL_SECONDS, **kwargs)
        self.stopping = False

    def setup(self):
        from nameko import config

        super().setup()
        self.interval = float(config.get("RETENTION_INTERVAL_SECONDS", retention.DEFAULT_INTERVAL_SECONDS))

    def start(self):
        if self.interval > 0:
            super().start()
        else:
            log.warning("retention purge off (TUOGUAN_RETENTION_INTERVAL_SECONDS=0): the outbox, inbox and "
                        "idempotency keys grow without limit")

    def stop(self):
        self.stopping = True
        if self.gt is not None:
            super().stop()

    def kill(self):
        self.stopping = True
        if self.gt is not None:
            super().kill()


class RetentionPurger(DependencyProvider):
    """The purge of the worker's own database, as its configuration says
    (``retention.settings_from_env``), for the timer that calls it."""

    def setup(self):
        from nameko import config

        self.database_url = config["DATABASE_URL"]
        self.policy = retention.RetentionPolicy.from_settings(config)
        retention.count_from_zero(self.container.service_name)

    def get_dependency(self, worker_ctx):
        timer = worker_ctx.entrypoint
        return lambda: retention.purge(self.database_url, self.container.service_name, self.policy,
                                       should_stop=lambda: getattr(timer, "stopping", False))


class RetentionPurge:
    """Mixed into a worker class (``class BillingWorker(RetentionPurge)``):
    every ``TUOGUAN_RETENTION_INTERVAL_SECONDS`` (10 minutes) the timer
    ``purge_retention`` deletes the service's sent outbox rows, inbox rows and
    idempotency keys past their retention. A timer like the worker's others:
    tuoguan_timer_runs_total and TuoguanTimerFailing count its runs. Every
    replica runs it; one at a time purges (``retention.purge``)."""

    retention_purger = RetentionPurger()

    @RetentionTimer.decorator
    def purge_retention(self):
        self.retention_purger()


# How many times a worker tries an event that keeps failing transiently
# before it dead-letters it, and the longest wait between two tries (the
# first retry waits RETRY_FIRST_SECONDS, each next one twice as long): with
# these, about 20 s of trying. Workers read TUOGUAN_EVENT_MAX_ATTEMPTS and
# TUOGUAN_EVENT_RETRY_MAX_SECONDS (worker_main.nameko_config).
MAX_ATTEMPTS = 10
RETRY_FIRST_SECONDS = 0.1
RETRY_MAX_SECONDS = 5.0
# The queues are classic ones (no x-delivery-count), and a message nameko
# puts back with basic.reject comes back unchanged: the attempt is counted
# in a header of its own on a copy published again.
ATTEMPT_HEADER = "x-tuoguan-attempt"
# A message still failing on its last attempt goes to ``<queue>.parked`` (a
# durable queue nobody consumes) with the type of its last error in this header;
# the worker's EventQueueWatch reports its depth (tuoguan_event_queue_parked_messages).
PARKED_SUFFIX = ".parked"
ERROR_HEADER = "x-tuoguan-error"
# Set (1) on a copy published again after a failure that never reached the
# database: its attempt is not counted, and it waits the longest delay.
NOT_REACHED_HEADER = "x-tuoguan-db-not-reached"


class DeliveredPayload(dict):
    """An event's payload as its handler receives it from ``event_handler``,
    knowing which attempt at it this is and whether it is the last one
    (``handle_event`` and ``EventBatch`` then dead-letter a transient failure
    instead of raising). A plain dict is a first attempt, never the last."""

    def __init__(self, payload: dict, *, attempt: int, last: bool):
        super().__init__(payload)
        self.attempt = attempt
        self.last = last


def _last_attempt(payload: Any) -> bool:
    return bool(getattr(payload, "last", False))


def attempt_of(message) -> int:
    """Which attempt at its event a delivered message is (1 for the first)."""
    try:
        return max(1, int((message.headers or {}).get(ATTEMPT_HEADER, 1)))
    except (TypeError, ValueError):
        return 1


def retry_delay(attempt: int, longest: float = RETRY_MAX_SECONDS) -> float:
    """How long a worker waits before it tries an event the ``attempt``-th time."""
    return 0.0 if attempt <= 1 else min(longest, RETRY_FIRST_SECONDS * 2 ** (attempt - 2))


class Republisher:
    """One confirmed connection to the broker, kept, for an event handler's
    failed messages published again (or parked).

    A connection of its own per failed message cost ~3 ms of CPU each (11
    times a publish on a kept one), and a TIME_WAIT socket: an event failing
    for many at once (a lock, a bad release) made hundreds a second. Its
    greenthreads take turns (a semaphore: a py-amqp channel is not safe for
    two at once). A connection that breaks is dropped; one kept from before
    (the broker restarted, or dropped it idle meanwhile) is tried once more
    on a new one. Every wait on the broker is limited (``limit_amqp_waits``):
    a silent one must not hold a worker. The consumer's connection is not
    used: it belongs to its greenthread."""

    def __init__(self, amqp_uri: str, timeout: float, *, opened: Callable[[], None] = lambda: None):
        self.amqp_uri = amqp_uri
        self.timeout = timeout
        self.opened = opened  # called for each connection made (tuoguan_event_republish_connections_total)
        self._turn = eventlet.semaphore.Semaphore(1)
        self._connection: kombu.Connection | None = None
        self._producer = None
        self._closed = False

    def publish(self, queue: str, body, *, headers: dict, content_type, content_encoding,
                declare: bool = False) -> None:
        """Publishes ``body`` to ``queue`` (the default exchange), confirmed
        by the broker; ``declare``: declares the queue first (durable)."""
        with self._turn:
            while True:
                kept = self._connection is not None
                try:
                    producer = self._producer if kept else self._connect()
                    if declare:
                        producer.channel.queue_declare(queue, durable=True, auto_delete=False)
                    producer.publish(body, exchange="", routing_key=queue, mandatory=True, delivery_mode=2,
                                     headers=headers, content_type=content_type,
                                     content_encoding=content_encoding, retry=False)
                except BaseException as exc:
                    self._drop()
                    if kept and isinstance(exc, Exception):
                        continue  # a connection that was left broken: once more, on a new one
                    raise
                if self._closed:
                    self._release()  # a worker finishing after the handler stopped keeps nothing open
                return

    def _connect(self):
        connection = kombu.Connection(self.amqp_uri, connect_timeout=self.timeout, ssl=amqp_tls(self.amqp_uri),
                                      transport_options={"confirm_publish": True})
        try:
            connection.connect()
            limit_amqp_waits(connection.connection, self.timeout)
            producer = connection.Producer()
        except BaseException:
            connection.collect()  # a broker that did not answer is not asked to close either
            raise
        self._connection, self._producer = connection, producer
        self.opened()
        return producer

    def _drop(self) -> None:
        if self._connection is not None:
            self._connection.collect()  # broken, or silent: not asked to close
        self._connection = self._producer = None

    def _release(self) -> None:
        if self._connection is not None:
            try:
                self._connection.release()
            except Exception:  # noqa: BLE001 - closing a connection that broke meanwhile
                self._connection.collect()
        self._connection = self._producer = None

    def close(self) -> None:
        """Closes the kept connection; a later publish opens one and closes it after."""
        self._closed = True
        with self._turn:
            self._release()

    def discard(self) -> None:
        """Drops the kept connection at once, without waiting for a publish in progress (a container killed)."""
        self._closed = True
        self._drop()


class RetryingEventHandler(EventHandler):
    """nameko's event handler, with a failed event tried again later, a
    bounded number of times (``requeue_on_error=True``).

    nameko put a failed message straight back on its queue, so an event that
    failed every time came back hundreds of times a second, for ever. Here
    the failed message is published again to its queue with its attempt
    counted (``ATTEMPT_HEADER``) and only then acknowledged; a later attempt
    waits ``retry_delay`` in a greenthread of its own (holding a prefetch
    slot, not a worker) before its handler runs; from the last attempt on,
    the handler's ``DeliveredPayload`` says so, and a transient failure is
    dead-lettered with its reason. Should the copy not be published (the
    broker out of reach), the message is put back after the same wait, and
    the broker redelivers it (its attempt not counted).

    A handler may still raise on its last attempt: the error arose outside
    ``handle_event``/``EventBatch``, or the dead letter itself could not be
    written (a payload with ``\\u0000`` fails the apply and the jsonb insert
    alike, 22P05). Published again, such a message came back every few
    seconds for ever, and was never put aside. It is parked instead: the copy
    goes to ``<queue>.parked`` (durable, no consumers; runbooks
    TuoguanEventsDeadLettered and TuoguanEventsParked) and the handler's
    outcome is "parked".
    """

    # For each wait on the broker while publishing the copy: a silent one must not hold a worker.
    broker_timeout = 15.0

    def setup(self):
        from nameko import config

        super().setup()
        self.max_attempts = int(config.get("EVENT_MAX_ATTEMPTS", MAX_ATTEMPTS))
        self.longest_delay = float(config.get("EVENT_RETRY_MAX_SECONDS", RETRY_MAX_SECONDS))
        connections = metrics.EVENT_REPUBLISH_CONNECTIONS.labels(self.container.service_name, self.method_name)
        self.republisher = Republisher(self.amqp_uri, self.broker_timeout, opened=connections.inc)

    def stop(self):
        super().stop()
        self.republisher.close()

    def kill(self):
        super().kill()
        self.republisher.discard()

    def handle_message(self, body, message):
        attempt = attempt_of(message)
        if isinstance(body, dict):
            body = DeliveredPayload(body, attempt=attempt, last=attempt >= self.max_attempts)
        delay = retry_delay(attempt, self.longest_delay)
        if (message.headers or {}).get(NOT_REACHED_HEADER):
            # The database was out of reach the last time: a first attempt would otherwise come back at once.
            delay = self.longest_delay
        if delay <= 0:
            super().handle_message(body, message)
        else:
            self.container.spawn_managed_thread(
                lambda: self._handle_later(delay, body, message),
                identifier=f"RetryingEventHandler.wait_to_retry[{self.container.service_name}.{self.method_name}]")

    def _handle_later(self, delay: float, body, message) -> None:
        eventlet.sleep(delay)
        if self.consumer.should_stop:
            self.consumer.requeue_message(message)  # stopping: the broker hands it to another worker
        else:
            super().handle_message(body, message)

    def handle_result(self, message, worker_ctx, result=None, exc_info=None):
        # Before the dependencies see the result: a parked message is the
        # worker's outcome "parked" (Observability counts it so), not an error.
        if self.handle_message_processed(message, result, exc_info) == "parked":
            return "parked", None
        return result, exc_info

    def handle_message_processed(self, message, result=None, exc_info=None):
        """Acknowledges, publishes again, parks or puts back the message;
        returns "parked" when it parked it."""
        if exc_info is None or not self.requeue_on_error:
            return super().handle_message_processed(message, result, exc_info)
        attempt = attempt_of(message)
        error = exc_info[0].__name__
        # An outage of the database (a failover, a restart) used up the attempts in ~20 s, and
        # dead-lettered (or parked) events that had nothing wrong: a try that never reached the
        # database is not counted. It is published again as the same attempt, to wait the longest
        # delay, for as long as the outage lasts.
        counted = not not_reached(exc_info[1])
        parking = counted and attempt >= self.max_attempts
        next_attempt = attempt + 1 if counted else attempt
        delay = retry_delay(next_attempt, self.longest_delay) if counted else self.longest_delay
        try:
            if parking:
                self._park(message, error)
            else:
                self._publish_again(message, next_attempt, counted=counted)
        except Exception as exc:  # noqa: BLE001 - the broker's own redelivery still retries it
            log.warning("failed event not published again; put back", extra={
                "queue": self.queue.name, "attempt": attempt, "error": type(exc).__name__})
            eventlet.sleep(delay)  # the redelivery comes at once: it must not come hundreds of times a second
            self.consumer.requeue_message(message)
            return None
        if parking:
            log.error("event parked", extra={
                "queue": self.queue.name, "parked_in": self.queue.name + PARKED_SUFFIX, "attempt": attempt,
                "error": error})
        else:
            log.warning("event failed; tried again later" if counted
                        else "event failed, the database not reached; tried again later, attempt not counted",
                        extra={"queue": self.queue.name, "attempt": attempt, "error": error,
                               "retry_in_seconds": delay})
        self.consumer.ack_message(message)
        return "parked" if parking else None

    def _publish_again(self, message, attempt: int, *, counted: bool = True) -> None:
        self._publish(message, self.queue.name, {ATTEMPT_HEADER: attempt, NOT_REACHED_HEADER: 0 if counted else 1})

    def _park(self, message, error: str) -> None:
        self._publish(message, self.queue.name + PARKED_SUFFIX, {ERROR_HEADER: error}, declare=True)

    def _publish(self, message, queue: str, headers: dict, *, declare: bool = False) -> None:
        # Declared on demand (declare=True for the parking queue), as the worker's EventQueueWatch
        # declares it too: it may have been deleted since. Durable, so that what is parked outlives
        # a broker restart until an operator looks at it.
        self.republisher.publish(queue, message.body, headers={**(message.headers or {}), **headers},
                                 content_type=message.content_type, content_encoding=message.content_encoding,
                                 declare=declare)


# Consumers declare their handlers with this instead of nameko's own:
# ``@event_handler("<source>", "<EventName>", requeue_on_error=True)``.
event_handler = RetryingEventHandler.decorator


def _parse(payload: Any, message_type: type[Message],
           check: Callable[[Message], None] | None = None) -> tuple[str, Message]:
    """The event's id and message, passed through the handler's ``check``; raises MALFORMED's errors."""
    event_id, event = str(uuid.UUID(str(payload["event_id"]))), outbox.parse_event(payload, message_type)
    if check is not None:
        check(event)
    return event_id, event


MALFORMED = (KeyError, TypeError, ValueError, json_format.ParseError)


def require_ids(event: Message, *fields: str) -> None:
    """A handler's ``check``: raises ValueError (malformed) unless each of
    ``fields`` holds an id. Protobuf reads a field the sender left out as
    "": an event without the id its effect is keyed on must not be taken for
    one about nothing in particular (a payment found another way instead)."""
    for field in fields:
        try:
            uuid.UUID(getattr(event, field))
        except ValueError:
            raise ValueError(f"{event.DESCRIPTOR.name}.{field} is not an id") from None


def handle_event(
    database: Database,
    payload: dict[str, Any],
    message_type: type[Message],
    handler: str,
    apply: Callable[[Any, Message], None],
    check: Callable[[Message], None] | None = None,
) -> str:
    """Applies an event once: the inbox row and the effect commit together.
    ``check`` raises ValueError on an event that can never be applied
    (``require_ids``, say): it is dead-lettered as malformed, before any write.

    A transient failure (``db.transient``) raises, and the message goes back
    to its queue to be tried again, until its last attempt, when it is
    dead-lettered. An event that can never be applied (malformed, refused by
    the handler's own rules, or failing the database's in a way that would
    repeat) is kept in ``dead_letters`` and acknowledged, so it cannot loop
    forever in front of the events behind it.
    """
    event_type = message_type.DESCRIPTOR.name
    try:
        event_id, event = _parse(payload, message_type, check)
    except MALFORMED as exc:
        return _dead_letter(database, payload, event_type, handler, exc, "malformed")
    try:
        with database.transaction() as cur:
            if not outbox.first_time(cur, event_id, handler):
                return "duplicate"
            apply(cur, event)
    except Exception as exc:  # noqa: BLE001 - sorted here: tried again, or it would fail the same way every time
        # Not reached: raised even on the last attempt, which then does not count (RetryingEventHandler).
        if transient(exc) and (not _last_attempt(payload) or not_reached(exc)):
            raise
        return _dead_letter(database, payload, event_type, handler, exc, "dead_lettered")
    return "ok"


def _dead_letter(database: Database, payload, event_type: str, handler: str, exc: BaseException, outcome: str) -> str:
    error = type(exc).__name__
    if transient(exc):
        error += f" on attempt {getattr(payload, 'attempt', 1)}, the last"
    with database.transaction() as cur:
        outbox.dead_letter(cur, payload, event_type, handler, error)
    # Only once it is written: a dead letter that could not be (the payload's
    # \u0000 refused by jsonb too) raises, and the message is tried again or parked.
    log.error("event dead-lettered", extra={"event_type": event_type, "handler": handler,
                                            "error": error, "outcome": outcome})
    return outcome


@dataclass(frozen=True)
class Delivery:
    """An event of a batch, with the trace of the worker that received it:
    what the event causes continues that trace, not the batch writer's."""

    event: Message
    trace_carrier: dict


Result = TypeVar("Result")


class EventBatch(Generic[Result]):
    """Concurrent workers of one event handler share one transaction.

    Under load the broker hands a worker process up to its max_workers
    events at once. Each worker submits its event and waits; the first to
    find no batch being written starts a writer, which writes every event
    queued meanwhile (they queue while it waits on the database): one inbox
    statement, the handler's statements for the whole batch, one commit.
    Alone, an event is a batch of one. The writer's ``apply_batch(cursor, deliveries)`` returns
    one result per delivery, in order (every worker of a handler passes the
    same function).

    One per worker process and handler (a module global of the worker):
    the writer uses the database and ``apply_batch`` of the worker that
    started it.

    Once per event id, as ``handle_event``: a redelivered event is a
    duplicate; a transient failure (``db.transient``) raises in every worker
    of the batch, so each message goes back to its queue (an event on its
    last attempt is dead-lettered instead); any other failure applies the
    batch again one event at a time, so only the bad event is dead-lettered.
    """

    def __init__(self, message_type: type[Message], handler: str,
                 check: Callable[[Message], None] | None = None):
        self.message_type = message_type
        self.event_type = message_type.DESCRIPTOR.name
        self.handler = handler
        self.check = check  # as handle_event's
        self._queued: list[tuple[str, Delivery, Any, eventlet.event.Event]] = []
        self._writing = False

    def handle(self, database: Database, payload: dict[str, Any],
               apply_batch: Callable[[Any, Sequence[Delivery]], Sequence[Result]]) -> tuple[str, Result | None]:
        """(outcome, the handler's result or None): outcome as handle_event's."""
        try:
            event_id, event = _parse(payload, self.message_type, self.check)
        except MALFORMED as exc:
            return _dead_letter(database, payload, self.event_type, self.handler, exc, "malformed"), None
        answer = eventlet.event.Event()
        self._queued.append((event_id, Delivery(event, telemetry.inject()), payload, answer))
        if not self._writing:
            # A greenthread of its own writes while events keep coming, so no
            # handler waits for batches that are not its own; it runs in the
            # context of the event that started it (its spans join that trace).
            self._writing = True
            eventlet.spawn_n(contextvars.copy_context().run, self._drain, database, apply_batch)
        try:
            return answer.wait()
        except Exception as exc:
            # The batch failed transiently: on its last attempt, this event
            # is put aside alone, while the others are tried again.
            if transient(exc) and _last_attempt(payload) and not not_reached(exc):
                return _dead_letter(database, payload, self.event_type, self.handler, exc, "dead_lettered"), None
            raise

    def _drain(self, database: Database, apply_batch) -> None:
        batch: list = []
        try:
            while self._queued:
                batch, self._queued = self._queued, []
                self._answer(database, batch, apply_batch)
        except BaseException as exc:
            # Killed (the container stops) or broken: nobody may wait forever.
            # The waiting workers raise, and their messages go back to the queue.
            waiting, self._queued = batch + self._queued, []
            for _, _, _, answer in waiting:
                if not answer.ready():
                    answer.send_exception(exc)
            raise
        finally:
            self._writing = False

    def _answer(self, database: Database, batch: list, apply_batch) -> None:
        try:
            outcomes = self._write(database, batch, apply_batch)
        except Exception as exc:  # noqa: BLE001 - transient: all tried again; else the bad event is found alone
            if transient(exc):
                outcomes = [exc] * len(batch)
            elif len(batch) > 1:
                for item in batch:
                    self._answer(database, [item], apply_batch)
                return
            else:
                try:
                    outcomes = [(_dead_letter(database, batch[0][2], self.event_type, self.handler, exc,
                                              "dead_lettered"), None)]
                except Exception as failure:  # noqa: BLE001 - the worker raises it; the message is requeued
                    outcomes = [failure]
        for (_, _, _, answer), outcome in zip(batch, outcomes):
            if isinstance(outcome, BaseException):
                answer.send_exception(outcome)
            else:
                answer.send(outcome)

    def _write(self, database: Database, batch: list, apply_batch) -> list:
        with database.transaction() as cur:
            fresh = outbox.first_times(cur, [event_id for event_id, _, _, _ in batch], self.handler)
            applying = []
            for i, (event_id, _, _, _) in enumerate(batch):
                if event_id in fresh:
                    fresh.discard(event_id)  # the same event twice in one batch: the second is a duplicate
                    applying.append(i)
            results = list(apply_batch(cur, [batch[i][1] for i in applying])) if applying else []
            if len(results) != len(applying):
                raise RuntimeError(f"{self.handler} gave {len(results)} results for {len(applying)} events")
        outcomes: list = [("duplicate", None)] * len(batch)
        for i, result in zip(applying, results):
            outcomes[i] = ("ok", result)
        return outcomes
