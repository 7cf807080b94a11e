"""gRPC channels to other services, carrying the trace context and the
caller's token in metadata."""
from __future__ import annotations

import grpc
from grpc import aio

from . import telemetry

_OPTIONS = [
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.enable_retries", 1),
    # Spread calls, not connections: with a target that resolves to every
    # replica (the chart's dns:///<api>-headless addresses) each call goes to
    # the next one. With one address it behaves as the default would.
    ("grpc.lb_policy_name", "round_robin"),
]


def _metadata_with_trace(metadata) -> list[tuple[str, str]]:
    items = list(metadata or ())
    items.extend(telemetry.inject().items())
    return items


class _TraceClientInterceptor(grpc.UnaryUnaryClientInterceptor):
    def intercept_unary_unary(self, continuation, client_call_details, request):
        details = client_call_details._replace(metadata=_metadata_with_trace(client_call_details.metadata)) \
            if hasattr(client_call_details, "_replace") else _Details(client_call_details)
        return continuation(details, request)


class _Details(grpc.ClientCallDetails):
    def __init__(self, base):
        self.method = base.method
        self.timeout = base.timeout
        self.metadata = _metadata_with_trace(base.metadata)
        self.credentials = base.credentials
        self.wait_for_ready = getattr(base, "wait_for_ready", None)
        self.compression = getattr(base, "compression", None)


def channel(target: str) -> grpc.Channel:
    return grpc.intercept_channel(grpc.insecure_channel(target, options=_OPTIONS), _TraceClientInterceptor())


class _AioTraceInterceptor(aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(self, continuation, client_call_details, request):
        details = aio.ClientCallDetails(
            method=client_call_details.method,
            timeout=client_call_details.timeout,
            metadata=aio.Metadata(*_metadata_with_trace(client_call_details.metadata)),
            credentials=client_call_details.credentials,
            wait_for_ready=client_call_details.wait_for_ready,
        )
        return await continuation(details, request)


def aio_channel(target: str) -> aio.Channel:
    return aio.insecure_channel(target, options=_OPTIONS, interceptors=[_AioTraceInterceptor()])
