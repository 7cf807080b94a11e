"""The gRPC server every api process runs: grpc.aio on an event loop thread
of its own, health, reflection, and one interceptor that authenticates,
traces, measures and maps errors.

A servicer's method may be a coroutine (the surge's hot path: no thread per
call) or a plain function, which runs in the server's thread pool with the
caller's context (principal, token, trace) copied in. Code outside drives the
server as it would grpcio's threaded one: ``start()``, ``stop(grace).wait()``.
"""
from __future__ import annotations

import asyncio
import contextvars
import inspect
import json
import logging
import signal
import threading
import time
from concurrent import futures
from typing import Any, Callable, Iterable, NamedTuple

import grpc
from grpc import aio
from grpc._cython import cygrpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from google.protobuf.message import DecodeError
from grpc_reflection.v1alpha import reflection
from opentelemetry import context as otel_context
from opentelemetry.trace import SpanKind, Status, StatusCode

from . import auth, metrics, telemetry
from .config import DEFAULT_LISTEN_HOST, host_port
from .errors import InvalidArgument, TuoguanError, Unauthenticated
from .db import unreachable

log = logging.getLogger(__name__)

REASON_KEY = "tuoguan-reason"
FIELD_KEY = "tuoguan-field"
# A refusal that ends after a known wait (an error with retry_after_seconds), in
# whole seconds: the gateway\'s Retry-After.
RETRY_AFTER_KEY = "tuoguan-retry-after"

_token: contextvars.ContextVar[str | None] = contextvars.ContextVar("tuoguan_token", default=None)


def current_token() -> str | None:
    """The caller's bearer token, to forward when this call needs another service."""
    return _token.get()


# Answered past the cap on calls in flight: the kubelet's probes must hear
# that a busy api is alive and serving, or it would take it out of service
# (and restart it) in the very surge its shedding is there to ride out.
UNCAPPED_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")
# No wait named: the gateway's load-shedding Retry-After applies.
SHED_TRAILER = ((REASON_KEY, "resource_exhausted"),)


class PlatformInterceptor(aio.ServerInterceptor):
    """Authentication, tracing, RED metrics, error-to-status mapping and the
    cap on calls in flight, once."""

    def __init__(self, service: str, verifier: auth.TokenVerifier | None, executor: futures.Executor,
                 max_in_flight: int | None = None):
        self.service = service
        self.verifier = verifier
        self.executor = executor
        # Past this many calls in flight a call is answered RESOURCE_EXHAUSTED
        # at once instead of queueing: in a surge, callers learn to back off
        # while the calls already admitted still finish in time. Counted here,
        # not by grpcio's maximum_concurrent_rpcs, which refused health checks
        # too and whose refusals no metric saw. Only the event loop's thread
        # touches the count.
        self.max_in_flight = max_in_flight
        self.in_flight = 0
        # Calls inside the handlers (every unary method, capped or not): what
        # gRPC core has begun and not finished, less these, waits in core.
        self.handling = 0
        self._tracer = telemetry.tracer("tuoguan.grpc")
        # A method's handler never changes once the server runs: wrap it once,
        # not on every call (in a surge, per-call wrapping was measurable).
        self._wrapped: dict[str, grpc.RpcMethodHandler] = {}

    async def intercept_service(self, continuation, handler_call_details):
        method = handler_call_details.method
        wrapped = self._wrapped.get(method)
        if wrapped is not None:
            return wrapped
        handler = await continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        wrapped = self._wrap(method, handler)
        if self.max_in_flight is not None and not method.startswith(UNCAPPED_PREFIXES):
            wrapped = self._capped(method, wrapped)
        self._wrapped[method] = wrapped
        return wrapped

    def _capped(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        shed = metrics.GRPC_HANDLED.labels(self.service, method.rsplit("/", 1)[-1], "RESOURCE_EXHAUSTED")
        inner, limit = handler.unary_unary, self.max_in_flight

        async def capped(request: bytes, context: aio.ServicerContext):
            if self.in_flight >= limit:
                shed.inc()
                context.set_trailing_metadata(SHED_TRAILER)
                await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                                    "the service has too many calls in flight: try again shortly")
            self.in_flight += 1
            try:
                return await inner(request, context)
            finally:
                self.in_flight -= 1

        return grpc.unary_unary_rpc_method_handler(
            capped, request_deserializer=None, response_serializer=handler.response_serializer,
        )

    def _wrap(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        short = method.rsplit("/", 1)[-1]
        span_name = method.lstrip("/")
        duration = metrics.GRPC_DURATION.labels(self.service, short)
        inner = handler.unary_unary
        executor = self.executor
        # The request is read here, not by grpcio: bytes it cannot read (a text
        # field that is not UTF-8) failed there as UNKNOWN with a traceback in
        # the log, uncounted and untraced. Read here, they are bad input like any other.
        parse = handler.request_deserializer

        if inspect.iscoroutinefunction(inner):
            run = inner
        else:
            async def run(request, context):
                # The principal, token and trace set below travel into the thread.
                call = contextvars.copy_context().run
                return await asyncio.get_running_loop().run_in_executor(executor, call, inner, request, context)

        async def wrapped(request: bytes, context: aio.ServicerContext):
            metadata = dict(context.invocation_metadata() or ())
            token = otel_context.attach(telemetry.extract(metadata))
            started = time.perf_counter()
            code = grpc.StatusCode.OK
            # (message, trailing metadata) of the status to end the call with.
            failure: tuple[str, tuple] | None = None
            principal_token = auth_token = None
            self.handling += 1
            try:
                with self._tracer.start_as_current_span(span_name, kind=SpanKind.SERVER) as span:
                    span.set_attribute("rpc.system", "grpc")
                    span.set_attribute("rpc.method", short)
                    try:
                        bearer = metadata.get("authorization", "")
                        principal = None
                        if bearer.startswith("Bearer ") and self.verifier is not None:
                            try:
                                principal = self.verifier.verify(bearer[len("Bearer "):])
                                auth_token = _token.set(bearer[len("Bearer "):])
                            except Unauthenticated as refused:
                                # An expired or revoked token must not stop what needs none
                                # (signing in again, a public search): the refusal waits
                                # for a method that asks who calls.
                                principal = refused
                        principal_token = auth.set_current_principal(principal)
                        return await run(_read(parse, request), context)
                    except TuoguanError as exc:
                        code = exc.code if isinstance(exc.code, grpc.StatusCode) else grpc.StatusCode[exc.code]
                        span.set_status(Status(StatusCode.ERROR, exc.reason))
                        trailing = ((REASON_KEY, exc.reason),)
                        # The field at fault: every InvalidArgument's, and any other refusal's that names
                        # one (a FAILED_PRECONDITION about what a field refers to, e.g. ticketing's assignee).
                        field = exc.field if isinstance(exc, InvalidArgument) else getattr(exc, "field", None)
                        if field:
                            trailing += ((FIELD_KEY, field),)
                        retry_after = getattr(exc, "retry_after_seconds", None)
                        if retry_after:
                            trailing += ((RETRY_AFTER_KEY, str(int(retry_after))),)
                        failure = (exc.message, trailing)
                    except grpc.RpcError as exc:
                        # A call this method made to another service failed: pass its status on.
                        code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
                        if code in (None, grpc.StatusCode.OK):
                            code = grpc.StatusCode.UNKNOWN
                        span.set_status(Status(StatusCode.ERROR, code.name))
                        failure = (exc.details() or code.name, tuple(exc.trailing_metadata() or ()))
                    except Exception as exc:
                        if unreachable(exc):
                            # Not this call's fault, and worth trying again (a restarting
                            # database, a pool with no connection free in time): say so.
                            code = grpc.StatusCode.UNAVAILABLE
                            log.warning("database unreachable", extra={"method": short, "error": type(exc).__name__})
                            failure = ("the service cannot reach its database: try again shortly",
                                       ((REASON_KEY, "database_unavailable"),))
                        else:
                            code = grpc.StatusCode.INTERNAL
                            log.exception("unhandled error", extra={"method": short})
                            failure = ("internal error", ())
                        span.set_status(Status(StatusCode.ERROR, code.name.lower()))
                    finally:
                        if principal_token is not None:
                            auth.reset_current_principal(principal_token)
                        if auth_token is not None:
                            _token.reset(auth_token)
            finally:
                # Counted before the caller hears the answer, so a caller that
                # reads /metrics next sees its own call.
                metrics.GRPC_HANDLED.labels(self.service, short, code.name).inc()
                duration.observe(time.perf_counter() - started)
                otel_context.detach(token)
                self.handling -= 1
            message, trailing = failure
            context.set_trailing_metadata(trailing)
            await context.abort(code, message)

        return grpc.unary_unary_rpc_method_handler(
            wrapped, request_deserializer=None, response_serializer=handler.response_serializer,
        )


def _read(parse: Callable[[bytes], Any] | None, request: bytes) -> Any:
    """The request as its method takes it; bytes that are not that message are InvalidArgument."""
    if parse is None:
        return request
    try:
        return parse(request)
    except DecodeError as exc:
        # protobuf's own words name the message type and what is wrong, never the bytes.
        raise InvalidArgument("request", f"cannot be read: {exc}") from None


class _Stopping:
    """What ``PlatformServer.stop`` returns: ``wait()`` as grpcio's threaded server's event has."""

    def __init__(self, future: "futures.Future[None]"):
        self._future = future

    def wait(self, timeout: float | None = None) -> bool:
        try:
            self._future.result(timeout)
        except futures.TimeoutError:
            return False
        return True


# gRPC core's channelz, read as grpcio-channelz reads it. Not public API: a
# grpcio that moves it leaves the calls waiting uncounted (and says so at
# start) rather than an api that cannot start.
_channelz_get_servers = getattr(cygrpc, "channelz_get_servers", None)
_channelz_get_server = getattr(cygrpc, "channelz_get_server", None)


def _channelz_server_ids() -> set[int]:
    ids: set[int] = set()
    if _channelz_get_servers is None or _channelz_get_server is None:
        return ids
    while True:  # channelz answers a page at a time
        page = json.loads(_channelz_get_servers(max(ids, default=-1) + 1))
        ids.update(int(server["ref"]["serverId"]) for server in page.get("server", ()))
        if page.get("end", True) or not page.get("server"):
            return ids


class CoreQueue(NamedTuple):
    waiting: int  # calls core has received that no handler has taken
    taken: int  # calls grpc.aio has taken from core since the server started


# Each service's queue in core, set when its server is built (one server per
# api process): what registration's hold admission reads.
_CORE_QUEUES: dict[str, Callable[[], CoreQueue]] = {}


def core_queue(service: str) -> CoreQueue:
    """``service``'s queue in gRPC core in this process (empty before its
    server is built, or when core gave it no channelz id)."""
    read = _CORE_QUEUES.get(service)
    return read() if read is not None else CoreQueue(0, 0)


def calls_waiting(service: str) -> int:
    return core_queue(service).waiting


def core_queue_of(server_id: int, handling: int) -> CoreQueue:
    """The calls that reached the server (gRPC core's channelz id ``server_id``)
    and wait inside core for grpc.aio to take them (begun, not finished, not
    in a handler), and those it has taken.

    grpc.aio takes a method's next call from core only after the last one has
    gone through several turns of the event loop, so a busy process takes calls
    at a bounded rate and the rest wait in core, unseen by the handlers' own
    duration, the cap on calls in flight and admission (README, where a hold
    waits above capacity). Core's channelz counts a call from its arrival.
    An open streaming call (reflection, a health Watch) counts too: the
    platform makes none, and the kubelet's probe is a unary Check."""
    try:
        data = json.loads(_channelz_get_server(server_id))["server"].get("data", {})
    except (ValueError, KeyError):
        return CoreQueue(0, 0)  # the server has stopped
    begun = int(data.get("callsStarted", 0))
    finished = int(data.get("callsSucceeded", 0)) + int(data.get("callsFailed", 0))
    # A call ends in its handler a moment before core counts it finished.
    waiting = max(0, begun - finished - handling)
    return CoreQueue(waiting, begun - waiting)


class PlatformServer:
    """A grpc.aio server on an event loop thread of its own, with its health
    servicer and the thread pool its plain-function methods run in."""

    def __init__(self, service: str, executor: futures.ThreadPoolExecutor):
        self.service = service
        self.executor = executor
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=f"{service}-grpc-loop", daemon=True)
        self._thread.start()
        self._server: aio.Server | None = None
        self._health: Any = None

    def _run(self, coroutine, timeout: float | None = 30.0):
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    def build(self, *, register, interceptor: PlatformInterceptor, address: str, options) -> int:
        self.interceptor = interceptor

        async def build() -> int:
            earlier = _channelz_server_ids()
            self._server = aio.server(interceptors=[interceptor], options=options)
            # Core's id for this server, for its count of calls waiting; none if
            # another server began in the same instant (the count then reads 0).
            created = _channelz_server_ids() - earlier
            self.channelz_id = created.pop() if len(created) == 1 else None
            if self.channelz_id is None:
                log.warning("gRPC core's channelz names no server of this process: calls waiting in core "
                            "are not counted, and registration's holds are not turned away for them")
            names = list(register(self._server))
            self._health = health.aio.HealthServicer()
            health_pb2_grpc.add_HealthServicer_to_server(self._health, self._server)
            for name in names + [""]:
                await self._health.set(name, health_pb2.HealthCheckResponse.SERVING)
            reflection.enable_server_reflection(names + [health.SERVICE_NAME, reflection.SERVICE_NAME], self._server)
            return self._server.add_insecure_port(address)

        return self._run(build())

    def start(self) -> None:
        assert self._server is not None
        self._run(self._server.start())

    def enter_graceful_shutdown(self) -> None:
        """Health answers NOT_SERVING from now on, so load balancers stop sending calls."""
        self._run(self._health.enter_graceful_shutdown())

    def stop(self, grace: float | None) -> _Stopping:
        async def stop() -> None:
            try:
                if self._server is not None:
                    await self._server.stop(grace)
            finally:
                self.executor.shutdown(wait=False)
                self._loop.call_soon(self._loop.stop)

        return _Stopping(asyncio.run_coroutine_threadsafe(stop(), self._loop))


def build_server(
    *,
    service: str,
    register: Callable[[aio.Server], Iterable[str]],
    verifier: auth.TokenVerifier | None,
    port: int,
    workers: int = 16,
    host: str = DEFAULT_LISTEN_HOST,
    max_concurrent_rpcs: int | None = None,
    reuse_port: bool = False,
) -> tuple[PlatformServer, int]:
    """Builds (does not start) a server; ``register`` adds servicers and returns
    their full names. Returns the server and the port it listens on."""
    executor = futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"{service}-grpc")
    server = PlatformServer(service, executor)
    bound = server.build(
        register=register,
        interceptor=PlatformInterceptor(service, verifier, executor, max_in_flight=max_concurrent_rpcs),
        address=host_port(host, port),
        # A second process on a taken port fails loudly, unless replicas on one
        # machine share it on purpose.
        options=[
            ("grpc.so_reuseport", 1 if reuse_port else 0),
            # Clients reconnect every few minutes (calls in flight finish), so
            # they resolve the replicas again and new pods get their share.
            ("grpc.max_connection_age_ms", 300_000),
            ("grpc.max_connection_age_grace_ms", 30_000),
        ],
    )
    if bound == 0:
        server.stop(0)
        raise SystemExit(f"{service}: cannot listen on {host_port(host, port)}")
    if server.channelz_id is not None:
        _CORE_QUEUES[service] = lambda: core_queue_of(server.channelz_id, server.interceptor.handling)
        metrics.GRPC_CALLS_WAITING.labels(service).set_function(lambda: calls_waiting(service))
    return server, bound


def serve_forever(server: PlatformServer, *, grace: float = 3.0) -> None:
    """Starts the server and stops it gracefully on SIGTERM or SIGINT.

    The grace period lets calls in flight finish; it stays under the few
    seconds supervisors (honcho, Kubernetes' default 30 s) wait before SIGKILL.
    """
    stopped = threading.Event()
    stopping = threading.Event()

    def stop(signum, _frame):
        if stopping.is_set():
            return
        stopping.set()
        log.info("stopping", extra={"signal": signum})
        server.enter_graceful_shutdown()
        threading.Thread(target=lambda: (server.stop(grace).wait(), stopped.set()), daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    server.start()
    stopped.wait()
