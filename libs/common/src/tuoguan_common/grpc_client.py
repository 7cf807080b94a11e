"""gRPC channels to other services (on the caller's event loop: the gateway's,
an api's), carrying the trace context and the caller's token in metadata."""
from __future__ import annotations

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
