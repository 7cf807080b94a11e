"""One server span and the RED metrics for every HTTP request.

Labels and span attributes name the route template
(``/api/v1/bookings/{booking_id}``), never the raw path, the query or the
client's address: no personal data and no unbounded label values. The span
is current while the route runs, so the gRPC client interceptor puts its
traceparent into every call to the services.
"""
from __future__ import annotations

import logging
import time

from opentelemetry.trace import SpanKind, Status, StatusCode
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tuoguan_common import metrics, telemetry

log = logging.getLogger(__name__)

UNMATCHED = "unmatched"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def route_template(scope: Scope) -> str:
    route = scope.get("route")
    return getattr(route, "path", None) or UNMATCHED


CLIENT_CLOSED_REQUEST = 499


class RequestTelemetry:
    def __init__(self, app: ASGIApp):
        self.app = app
        self.tracer = telemetry.tracer("tuoguan.gateway")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = scope["method"] if scope["method"] in METHODS else "OTHER"
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", ())}
        status: int | None = None

        async def remember_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        started = time.perf_counter()
        # The status says a request failed; OpenTelemetry's own record of the
        # exception would export its text, which may quote what was sent.
        with self.tracer.start_as_current_span(
            f"HTTP {method}", context=telemetry.extract(headers), kind=SpanKind.SERVER,
            record_exception=False, set_status_on_exception=False,
        ) as span:
            failed = True
            try:
                await self.app(scope, receive, remember_status)
                failed = False
            finally:
                if status is None:
                    # No reply began: the app failed (500), or the client left
                    # before its request was whole (499, nginx's "client closed
                    # request": no fault of ours, and no 5xx for the alerts).
                    status = 500 if failed else CLIENT_CLOSED_REQUEST
                elapsed = time.perf_counter() - started
                route = route_template(scope)
                span.update_name(f"{method} {route}")
                span.set_attribute("http.request.method", method)
                span.set_attribute("http.route", route)
                span.set_attribute("http.response.status_code", status)
                if status >= 500:
                    span.set_status(Status(StatusCode.ERROR))
                metrics.HTTP_REQUESTS.labels(route, method, str(status)).inc()
                metrics.HTTP_DURATION.labels(route, method).observe(elapsed)
                log.info("http request", extra={
                    "route": route, "method": method, "status": status, "duration_ms": round(elapsed * 1000, 1),
                })
