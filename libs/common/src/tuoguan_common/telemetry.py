"""OpenTelemetry tracing: one trace from the HTTP request through gRPC, SQL,
the outbox and every event handler. W3C traceparent travels in gRPC metadata
and in AMQP headers."""
from __future__ import annotations

import json
import threading
from typing import Mapping, MutableMapping

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter, SpanExportResult

_configured = False


class JsonLinesSpanExporter(SpanExporter):
    """Appends finished spans to a file, one JSON object a line (tests, laptops)."""

    def __init__(self, path: str):
        self._path = path
        self._lock = threading.Lock()

    def export(self, spans: "list[ReadableSpan]") -> SpanExportResult:
        lines = []
        for span in spans:
            ctx = span.get_span_context()
            lines.append(json.dumps({
                "name": span.name,
                "service": span.resource.attributes.get("service.name"),
                "trace_id": format(ctx.trace_id, "032x"),
                "span_id": format(ctx.span_id, "016x"),
                "parent_id": format(span.parent.span_id, "016x") if span.parent else None,
                "kind": span.kind.name,
                "attributes": dict(span.attributes or {}),
            }))
        with self._lock, open(self._path, "a", encoding="utf-8") as out:
            out.write("\n".join(lines) + "\n")
        return SpanExportResult.SUCCESS


def setup_tracing(
    service_name: str, *, otlp_endpoint: str | None = None, trace_file: str | None = None, record: bool = False,
) -> None:
    """Installs the SDK tracer provider when spans have somewhere to go
    (an OTLP collector, a file) or when ``record`` asks for it (tests add
    their own span processors)."""
    global _configured
    if _configured or not (otlp_endpoint or trace_file or record):
        # Nowhere to send spans: the no-op provider stays, so requests do not
        # pay for spans nobody will read. Trace context is still propagated,
        # so a traced caller's trace continues downstream.
        return
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    if otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=otlp_endpoint, insecure=True)))
    if trace_file:
        provider.add_span_processor(SimpleSpanProcessor(JsonLinesSpanExporter(trace_file)))
    trace.set_tracer_provider(provider)
    _configured = True


def tracer(name: str = "tuoguan") -> trace.Tracer:
    return trace.get_tracer(name)


# W3C trace context only: baggage from a client would otherwise travel into
# every service, the outbox and stored payments, with whatever it carries.
_PROPAGATOR = TraceContextTextMapPropagator()


def inject(carrier: MutableMapping[str, str] | None = None) -> dict[str, str]:
    carrier = {} if carrier is None else carrier
    _PROPAGATOR.inject(carrier)
    return dict(carrier)


def extract(carrier: Mapping[str, str]) -> otel_context.Context:
    return _PROPAGATOR.extract(carrier)


def current_trace_ids() -> tuple[str | None, str | None]:
    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return None, None
    return format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")
