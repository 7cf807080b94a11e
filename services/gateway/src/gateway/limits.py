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
from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from tuoguan_common import metrics
from tuoguan_common.config import env_number

from . import portal
from .body_limit import BODY_TIMEOUT_SECONDS, wants_a_page
from .errors import error_response
from .portal.i18n import choose_language
from .observability import METHODS, UNMATCHED


@dataclass(frozen=True)
class ServerLimits:
    # Connections open at once, idle keep-alive ones included, past which a
    # request is answered 503 server_busy (Retry-After, Connection: close)
    # without running the app; 0: no cap. With bodies of at most 256 KiB, a
    # thousand slow clients hold ~260 MiB at worst.
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
    # How long the connection's writing may stay paused (the client not
    # reading: its window and the kernel's buffers full, then ours past its
    # high-water mark) with none of the waiting answer taken, before the
    # connection is dropped. uvicorn waits forever: a client that asks and
    # never reads holds its place in the cap, and the answer's bytes, for
    # good. A slow reader is not cut off: the pause may last as long as it
    # takes (an answer written at once stays paused until nearly all of it is
    # read), so long as each period takes some of it. 0: none.
    write_timeout_seconds: float = 30.0

    @classmethod
    def from_env(cls) -> "ServerLimits":
        return cls(
            concurrency=env_number("GATEWAY_LIMIT_CONCURRENCY", cls.concurrency, minimum=0),
            keep_alive_seconds=env_number("GATEWAY_KEEP_ALIVE_SECONDS", cls.keep_alive_seconds, minimum=1),
            body_timeout_seconds=env_number("GATEWAY_BODY_TIMEOUT_SECONDS", cls.body_timeout_seconds, float,
                                            minimum=0),
            header_timeout_seconds=env_number("GATEWAY_HEADER_TIMEOUT_SECONDS", cls.header_timeout_seconds, float,
                                              minimum=0),
            write_timeout_seconds=env_number("GATEWAY_WRITE_TIMEOUT_SECONDS", cls.write_timeout_seconds, float,
                                             minimum=0),
        )

    def uvicorn_limit_concurrency(self) -> int | None:
        """uvicorn's ``limit_concurrency`` for this cap. uvicorn refuses a
        request when the open connections, its own counted, are at least its
        limit: a limit of N serves N - 1. One more, so that ``concurrency``
        connections are served and the next one is refused."""
        return self.concurrency + 1 if self.concurrency else None

    def http_protocol(self) -> type[asyncio.Protocol]:
        """uvicorn's HTTP/1.1 protocol (httptools) with these header and write deadlines."""
        return type("GatewayHttpProtocol", (GatewayHttpProtocol,),
                    {"header_timeout_seconds": self.header_timeout_seconds,
                     "write_timeout_seconds": self.write_timeout_seconds})


HEADER_TIMEOUT, WRITE_TIMEOUT = "header_timeout", "write_timeout"
# Both series from the start, at 0: a rate over a counter that appears only at
# its first close misses that close.
for _reason in (HEADER_TIMEOUT, WRITE_TIMEOUT):
    metrics.GATEWAY_CONNECTIONS_CLOSED.labels(_reason)


# How long a client turned away by the cap should wait. Places free as
# connections end: a request takes milliseconds, an idle keep-alive connection
# goes within GATEWAY_KEEP_ALIVE_SECONDS (5), so one is usually free again a
# moment later. Not 0: the clients refused together in a burst would all come
# straight back into the same full cap; not more: a patient would wait for
# nothing.
SERVER_BUSY_RETRY_AFTER_SECONDS = 2


class ServerBusy:
    """The cap's refusal (an ASGI app): the gateway's JSON error, or for a
    browser outside the API (``wants_a_page``) the portal's page in the
    language its Accept-Language asks for (the session is not read at the
    cap). uvicorn's own is plain text without Retry-After, which a client
    could neither parse like any other refusal nor tell when to try again by,
    and which a patient would be shown raw. Every answer is built once: it is
    sent when the process is at its busiest."""

    def __init__(self) -> None:
        self._json = self._closing(error_response(
            503, "server_busy", "this server has as many connections open as it takes; try again in a moment",
            retry_after=str(SERVER_BUSY_RETRY_AFTER_SECONDS)))
        self._pages: dict[tuple[str, bool], Response] = {}

    @staticmethod
    def _closing(response: Response) -> Response:
        # The refused request's body, if any, is never read: the connection cannot carry another request.
        response.headers["Connection"] = "close"
        response.headers["Retry-After"] = str(SERVER_BUSY_RETRY_AFTER_SECONDS)
        return response

    def page(self, language: str, reload: bool) -> Response:
        page = self._pages.get((language, reload))
        if page is None:
            page = self._pages[language, reload] = self._closing(portal.server_busy_page(language, reload))
        return page

    def answer(self, scope: Scope) -> Response:
        if not wants_a_page(scope):
            return self._json
        language = choose_language(None, None, Headers(scope=scope).get("accept-language"))
        return self.page(language, scope["method"] in ("GET", "HEAD"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.answer(scope)(scope, receive, send)


server_busy = ServerBusy()


# The pod's own: the kubelet's probes and Prometheus' scrape. A liveness probe
# answered 503 by the cap restarts a gateway that is only busy (and drops every
# patient it was serving), and the metrics that show the overload are wanted
# most while it lasts. Both are cheap and read no body.
UNCAPPED_PATHS = frozenset({b"/healthz", b"/metrics"})


class GatewayHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, and four things it lacks.

    A header deadline: a connection whose request headers are not whole
    ``header_timeout_seconds`` (0: never) after it opened, or after the
    request's first byte (the keep-alive timeout covers the wait before it),
    is closed; once they are, the body is BodyLimit's to time.

    A write deadline: a connection whose transport stays paused for writing
    (asyncio's pause_writing, until resume_writing) for ``write_timeout_seconds``
    (0: never) is aborted. Both deadlines' closes are counted
    (tuoguan_gateway_connections_closed_total, by reason).

    UNCAPPED_PATHS are served past the connection cap.

    A request the cap turns away is answered ``server_busy`` (above) in place
    of uvicorn's plain text, and counted like any reply
    (tuoguan_gateway_http_requests_total, route "unmatched", 503): it never
    reaches the app, so RequestTelemetry never sees it, and the 5xx ratio must.
    """

    header_timeout_seconds: float = 0.0
    write_timeout_seconds: float = 0.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._header_deadline: asyncio.TimerHandle | None = None
        self._write_deadline: asyncio.TimerHandle | None = None
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
            # uvicorn's line, which the runbook (TuoguanGateway5xxRatioHigh) names.
            self.logger.warning("Exceeded concurrency limit.")
            # uvicorn answers with its own app past its limit; below it, with
            # self.app: the request runs as one under the cap, on server_busy.
            app, self.app, self.limit_concurrency = self.app, server_busy, None
            try:
                super().on_headers_complete()
            finally:
                self.app, self.limit_concurrency = app, cap
            return
        super().on_headers_complete()

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._write_deadline is None and self.write_timeout_seconds:
            self._arm_write_deadline()

    def _arm_write_deadline(self) -> None:
        # What is still to be sent now: at the deadline, less means the client read some.
        self._unsent_when_armed = self.transport.get_write_buffer_size()
        self._write_deadline = self.loop.call_later(self.write_timeout_seconds, self._writes_too_slow)

    def resume_writing(self) -> None:
        super().resume_writing()
        self._disarm_write_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_deadline()
        self._disarm_write_deadline()
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
            metrics.GATEWAY_CONNECTIONS_CLOSED.labels(HEADER_TIMEOUT).inc()
            self.transport.close()

    def _disarm_write_deadline(self) -> None:
        if self._write_deadline is not None:
            self._write_deadline.cancel()
            self._write_deadline = None

    def _writes_too_slow(self) -> None:
        self._write_deadline = None
        if self.transport.is_closing():
            return
        if self.transport.get_write_buffer_size() < self._unsent_when_armed:
            # Still paused, but the client took some of the answer meanwhile:
            # slow, not stalled. Another period, from here.
            self._arm_write_deadline()
            return
        metrics.GATEWAY_CONNECTIONS_CLOSED.labels(WRITE_TIMEOUT).inc()
        # Not close(): it waits for the buffer to drain, which is what this
        # client is not letting happen. abort() drops the buffer and the
        # connection now (connection_lost frees the place in the cap).
        self.transport.abort()
