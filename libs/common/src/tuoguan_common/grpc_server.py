"""The grpcio server every api process runs: thread pool, health, reflection,
and one interceptor that authenticates, traces, measures and maps errors."""
from __future__ import annotations

import contextvars
import logging
import signal
import threading
import time
from concurrent import futures
from typing import Callable, Iterable

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from opentelemetry import context as otel_context
from opentelemetry.trace import SpanKind, Status, StatusCode

from . import auth, metrics, telemetry
from .errors import InvalidArgument, TuoguanError

log = logging.getLogger(__name__)

REASON_KEY = "tuoguan-reason"
FIELD_KEY = "tuoguan-field"

_token: contextvars.ContextVar[str | None] = contextvars.ContextVar("tuoguan_token", default=None)


def current_token() -> str | None:
    """The caller's bearer token, to forward when this call needs another service."""
    return _token.get()


class PlatformInterceptor(grpc.ServerInterceptor):
    """Authentication, tracing, RED metrics and error-to-status mapping, once."""

    def __init__(self, service: str, verifier: auth.TokenVerifier | None):
        self.service = service
        self.verifier = verifier
        self._tracer = telemetry.tracer("tuoguan.grpc")

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        method = handler_call_details.method
        short = method.rsplit("/", 1)[-1]
        inner = handler.unary_unary

        def wrapped(request, context: grpc.ServicerContext):
            metadata = dict(context.invocation_metadata())
            parent = telemetry.extract(metadata)
            token = otel_context.attach(parent)
            started = time.perf_counter()
            code = grpc.StatusCode.OK
            principal_token = auth_token = None
            try:
                with self._tracer.start_as_current_span(method.lstrip("/"), kind=SpanKind.SERVER) as span:
                    span.set_attribute("rpc.system", "grpc")
                    span.set_attribute("rpc.method", short)
                    try:
                        bearer = metadata.get("authorization", "")
                        principal = None
                        if bearer.startswith("Bearer ") and self.verifier is not None:
                            principal = self.verifier.verify(bearer[len("Bearer "):])
                            auth_token = _token.set(bearer[len("Bearer "):])
                        principal_token = auth.set_current_principal(principal)
                        return inner(request, context)
                    except TuoguanError as exc:
                        code = exc.code if isinstance(exc.code, grpc.StatusCode) else grpc.StatusCode[exc.code]
                        span.set_status(Status(StatusCode.ERROR, exc.reason))
                        trailing = [(REASON_KEY, exc.reason)]
                        if isinstance(exc, InvalidArgument):
                            trailing.append((FIELD_KEY, exc.field))
                        context.set_trailing_metadata(trailing)
                        context.abort(code, exc.message)
                    except grpc.RpcError as exc:
                        # A call this method made to another service failed: pass its status on.
                        code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
                        if code in (None, grpc.StatusCode.OK):
                            code = grpc.StatusCode.UNKNOWN
                        span.set_status(Status(StatusCode.ERROR, code.name))
                        context.set_trailing_metadata(exc.trailing_metadata() or ())
                        context.abort(code, exc.details() or code.name)
                    except Exception:
                        if context.code() not in (None, grpc.StatusCode.OK):
                            code = context.code()
                            raise
                        code = grpc.StatusCode.INTERNAL
                        span.set_status(Status(StatusCode.ERROR, "internal"))
                        log.exception("unhandled error", extra={"method": short})
                        context.abort(grpc.StatusCode.INTERNAL, "internal error")
                    finally:
                        if principal_token is not None:
                            auth.reset_current_principal(principal_token)
                        if auth_token is not None:
                            _token.reset(auth_token)
            finally:
                metrics.GRPC_HANDLED.labels(self.service, short, code.name).inc()
                metrics.GRPC_DURATION.labels(self.service, short).observe(time.perf_counter() - started)
                otel_context.detach(token)

        return grpc.unary_unary_rpc_method_handler(
            wrapped, request_deserializer=handler.request_deserializer, response_serializer=handler.response_serializer,
        )


def build_server(
    *,
    service: str,
    register: Callable[[grpc.Server], Iterable[str]],
    verifier: auth.TokenVerifier | None,
    port: int,
    workers: int = 16,
    host: str = "0.0.0.0",
    max_concurrent_rpcs: int | None = None,
    reuse_port: bool = False,
) -> tuple[grpc.Server, int, health.HealthServicer]:
    """Builds (does not start) a server; ``register`` adds servicers and returns their full names."""
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"{service}-grpc"),
        interceptors=[PlatformInterceptor(service, verifier)],
        # A second process on a taken port fails loudly, unless replicas on one
        # machine share it on purpose.
        options=[("grpc.so_reuseport", 1 if reuse_port else 0)],
        # Past this many calls in flight the server answers RESOURCE_EXHAUSTED at
        # once instead of queueing: in a surge, callers learn to back off while
        # the calls already admitted still finish in time.
        maximum_concurrent_rpcs=max_concurrent_rpcs,
    )
    names = list(register(server))
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for name in names + [""]:
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    reflection.enable_server_reflection(names + [health.SERVICE_NAME, reflection.SERVICE_NAME], server)
    bound = server.add_insecure_port(f"{host}:{port}")
    if bound == 0:
        raise SystemExit(f"{service}: cannot listen on {host}:{port}")
    return server, bound, health_servicer


def serve_forever(server: grpc.Server, health_servicer: health.HealthServicer, *, grace: float = 3.0) -> None:
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
        health_servicer.enter_graceful_shutdown()
        threading.Thread(target=lambda: (server.stop(grace).wait(), stopped.set()), daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    server.start()
    stopped.wait()
