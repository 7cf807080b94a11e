"""How much of one gateway process slow or numerous clients may take, from
the environment (read at start-up, not import).

Every connection costs the process memory, and a request's body is held
whole until it has arrived (body_limit.py): 150 clients each sending a body
just under 1 MiB, and never finishing it, held ~157 MiB, and nothing stopped
more of them or made them finish. Past the caps here a client is turned away
early and cheaply instead, so the patients already being served keep the
process.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from tuoguan_common import metrics
from tuoguan_common.config import env_number

from .body_limit import BODY_TIMEOUT_SECONDS
from .observability import METHODS, UNMATCHED


@dataclass(frozen=True)
class ServerLimits:
    # Connections open at once, idle keep-alive ones included, past which
    # uvicorn answers a request 503 (its own plain-text reply, Connection:
    # close) without running the app; 0: no cap. With bodies of at most
    # 256 KiB, a thousand slow clients hold ~260 MiB at worst.
    concurrency: int = 1000
    # How long an idle keep-alive connection stays open, counted in the cap
    # all the while (uvicorn's default, now stated and settable).
    keep_alive_seconds: int = 5
    # How long a request's whole body may take to arrive, from its headers on
    # (not per chunk: trickling a byte at a time must not reset it); past it
    # the request is answered 408 and its connection closed. 0: no deadline.
    body_timeout_seconds: float = BODY_TIMEOUT_SECONDS
    # How long a request's headers may take to arrive, from the connection's
    # opening or the request's first byte on; past it the connection is
    # closed without a reply. uvicorn has no such deadline: a connection that
    # never sends a whole request would hold its place in the cap forever,
    # and a few hundred of them would shut every patient out. 0: none.
    header_timeout_seconds: float = 10.0

    @classmethod
    def from_env(cls) -> "ServerLimits":
        return cls(
            concurrency=env_number("GATEWAY_LIMIT_CONCURRENCY", cls.concurrency, minimum=0),
            keep_alive_seconds=env_number("GATEWAY_KEEP_ALIVE_SECONDS", cls.keep_alive_seconds, minimum=1),
            body_timeout_seconds=env_number("GATEWAY_BODY_TIMEOUT_SECONDS", cls.body_timeout_seconds, float,
                                            minimum=0),
            header_timeout_seconds=env_number("GATEWAY_HEADER_TIMEOUT_SECONDS", cls.header_timeout_seconds, float,
                                              minimum=0),
        )

    def uvicorn_limit_concurrency(self) -> int | None:
        """uvicorn's ``limit_concurrency`` for this cap. uvicorn refuses a
        request when the open connections, its own counted, are at least its
        limit: a limit of N serves N - 1. One more, so that ``concurrency``
        connections are served and the next one is refused."""
        return self.concurrency + 1 if self.concurrency else None

    def http_protocol(self) -> type[asyncio.Protocol]:
        """uvicorn's HTTP/1.1 protocol (httptools) with this header deadline."""
        return type("GatewayHttpProtocol", (GatewayHttpProtocol,),
                    {"header_timeout_seconds": self.header_timeout_seconds})


# The pod's own: the kubelet's probes and Prometheus' scrape. A liveness probe
# answered 503 by the cap restarts a gateway that is only busy (and drops every
# patient it was serving), and the metrics that show the overload are wanted
# most while it lasts. Both are cheap and read no body.
UNCAPPED_PATHS = frozenset({b"/healthz", b"/metrics"})


class GatewayHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, and three things it lacks.

    A header deadline: a connection whose request headers are not whole
    ``header_timeout_seconds`` (0: never) after it opened, or after the
    request's first byte (the keep-alive timeout covers the wait before it),
    is closed; once they are, the body is BodyLimit's to time.

    UNCAPPED_PATHS are served past the connection cap.

    A request the cap turns away is counted like any reply
    (tuoguan_gateway_http_requests_total, route "unmatched", 503): uvicorn
    answers it without running the app, so RequestTelemetry never sees it,
    and the 5xx ratio must.
    """

    header_timeout_seconds: float = 0.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._header_deadline: asyncio.TimerHandle | None = None
        super().connection_made(transport)
        self._arm_header_deadline()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm_header_deadline()

    def on_headers_complete(self) -> None:
        self._disarm_header_deadline()
        cap = self.limit_concurrency
        if cap is None or (self.parser.should_upgrade() and self._should_upgrade()):
            super().on_headers_complete()
            return
        if httptools.parse_url(self.url).path in UNCAPPED_PATHS:
            over = len(self.connections) >= cap or len(self.tasks) >= cap
            self.limit_concurrency = None
            try:
                super().on_headers_complete()
            finally:
                self.limit_concurrency = cap
            if over:
                # Served past the cap, then closed: a client repeating these
                # requests on kept-alive connections must not hold the cap's
                # places and keep patients out while the probe stays green.
                self.cycle.keep_alive = False
            return
        # uvicorn's own test of its limit (on_headers_complete), made first.
        if len(self.connections) >= cap or len(self.tasks) >= cap:
            method = self.parser.get_method().decode("ascii", "replace")
            metrics.HTTP_REQUESTS.labels(UNMATCHED, method if method in METHODS else "OTHER", "503").inc()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_deadline()
        super().connection_lost(exc)

    def _arm_header_deadline(self) -> None:
        if self._header_deadline is None and self.header_timeout_seconds:
            self._header_deadline = self.loop.call_later(self.header_timeout_seconds, self._headers_too_slow)

    def _disarm_header_deadline(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _headers_too_slow(self) -> None:
        self._header_deadline = None
        # No request yet, so no reply: there is nothing to answer it about.
        if not self.transport.is_closing():
            self.transport.close()
