"""Request bodies have a size limit, checked before anything reads them.

Without one, a 10 MB JSON field travelled to a service and came back as gRPC's
RESOURCE_EXHAUSTED (its 4 MiB message limit): a 429 "try again" quoting gRPC,
to a request no retry could mend, after the gateway had parsed all of it. The
largest request any route takes (a ticket's 10,000-character description,
every character sent as a JSON \\u escape) is about 60 KB; the limit leaves room
for that and stays far under gRPC's. Alertmanager's webhook carries a storm of
alerts and has a limit of its own.

A body also has a deadline: held until it is whole, a body trickled a byte at
a time kept its connection and its bytes forever (a slowloris). The deadline
covers the whole body, from the request's headers on, so no pace of
trickling resets it.
"""
from __future__ import annotations

import asyncio
from typing import Mapping

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import error_response

MAX_BODY_BYTES = 256 * 1024
# Time enough for the largest body a person sends (~60 KB) over a poor mobile
# link; see limits.py (GATEWAY_BODY_TIMEOUT_SECONDS).
BODY_TIMEOUT_SECONDS = 30.0


def too_large(limit: int):
    return error_response(413, "payload_too_large", f"the body is larger than {limit} bytes", "body")


def too_slow(timeout: float):
    reply = error_response(408, "request_timeout", f"the body did not arrive within {timeout:g} seconds", "body")
    # The rest of the body may still be on its way: the connection cannot carry
    # another request, and is closed rather than left to the trickle.
    reply.headers["Connection"] = "close"
    return reply


# What _read answers for a body over its limit (None: the client left).
_TOO_LARGE = object()


class BodyLimit:
    """Reads a request's body up to its path's limit, then hands it on whole;
    a longer body, declared (Content-Length) or sent (chunked), is answered
    413 payload_too_large on ``body`` and never reaches a route. A body not
    whole within ``timeout`` seconds (0: no deadline) is answered 408
    request_timeout on ``body``, and its connection closed."""

    def __init__(self, app: ASGIApp, *, limit: int = MAX_BODY_BYTES, limits: Mapping[str, int] | None = None,
                 timeout: float = BODY_TIMEOUT_SECONDS):
        self.app, self.limit, self.limits, self.timeout = app, limit, dict(limits or {}), timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limits.get(scope["path"], self.limit)
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            await too_large(limit)(scope, receive, send)
            return
        try:
            async with asyncio.timeout(self.timeout or None):
                body = await self._read(receive, limit)
        except TimeoutError:
            await too_slow(self.timeout)(scope, receive, send)
            return
        if body is None:
            # The client went away before its body was complete: nobody to answer.
            return
        if body is _TOO_LARGE:
            await too_large(limit)(scope, receive, send)
            return
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if delivered:
                # After the body, what the server says next (a disconnect).
                return await receive()
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    @staticmethod
    async def _read(receive: Receive, limit: int) -> bytes | object | None:
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                return _TOO_LARGE
            chunks.append(chunk)
            more = message.get("more_body", False)
        return b"".join(chunks)
