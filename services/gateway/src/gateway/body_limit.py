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

A body that nests arrays and objects more than ``MAX_NESTING`` deep is 422
on ``body`` before anything decodes it (see tuoguan_common.json_nesting:
FastAPI's decoder, and the webhook's whatever the body says it is, would
recurse to the interpreter's limit). Only multipart bodies are not measured
(none is JSON, and a file may hold any bytes); a browser's urlencoded form
encodes its brackets, so it never nests.

The size and time refusals are the API's JSON error; a browser's form post to the portal
(any path outside /api/, from a client that accepts HTML) gets ``page``'s
answer instead: a patient would otherwise be shown raw JSON.
"""
from __future__ import annotations

import asyncio
from typing import Callable, Mapping

from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tuoguan_common.json_nesting import MAX_NESTING, nested_too_deeply

from .errors import error_response

MAX_BODY_BYTES = 256 * 1024
# Time enough for the largest body a person sends (~60 KB) over a poor mobile
# link; see limits.py (GATEWAY_BODY_TIMEOUT_SECONDS).
BODY_TIMEOUT_SECONDS = 30.0


def too_large(limit: int):
    return error_response(413, "payload_too_large", f"the body is larger than {limit} bytes", "body")


def too_slow(timeout: float):
    return error_response(408, "request_timeout", f"the body did not arrive within {timeout:g} seconds", "body")


def too_deep():
    return error_response(422, "invalid_argument",
                          f"the body nests arrays and objects more than {MAX_NESTING} deep", "body")


def _measured(scope: Scope) -> bool:
    """Whether the body may be read as JSON: all but multipart. FastAPI reads
    a body with no Content-Type as JSON too, and the webhook reads its body
    whatever it says. The header as Starlette reads it: the first one."""
    content_type = Headers(scope=scope).get("content-type", "").lower()
    return not content_type.startswith("multipart/")


# What _read answers for a body over its limit (None: the client left).
_TOO_LARGE = object()

# A page for a refused body: (the request's scope, 408 or 413) -> the reply.
Page = Callable[[Scope, int], Response]
_HTML_TYPES = ("text/html", "application/xhtml+xml")


def wants_a_page(scope: Scope) -> bool:
    """Outside the API, from a client that takes HTML (every browser's
    navigation and form post says so; curl's and scripts' */* does not)."""
    path = scope["path"]
    if path == "/api" or path.startswith("/api/"):
        return False
    for part in Headers(scope=scope).get("accept", "").lower().split(","):
        media, *params = [piece.strip() for piece in part.split(";")]
        if media in _HTML_TYPES and not any(_declined(param) for param in params):
            return True
    return False


def _declined(param: str) -> bool:
    """``q=0``: the client says it does not want that type."""
    name, _, value = param.partition("=")
    try:
        return name.strip() == "q" and float(value) == 0
    except ValueError:
        return False


class BodyLimit:
    """Reads a request's body up to its path's limit, then hands it on whole;
    a longer body, declared (Content-Length) or sent (chunked), is answered
    413 payload_too_large on ``body`` and never reaches a route. A body not
    whole within ``timeout`` seconds (0: no deadline) is answered 408
    request_timeout on ``body``, and its connection closed. Where
    ``wants_a_page``, ``page`` answers them instead, with the same status."""

    def __init__(self, app: ASGIApp, *, limit: int = MAX_BODY_BYTES, limits: Mapping[str, int] | None = None,
                 timeout: float = BODY_TIMEOUT_SECONDS, page: Page | None = None):
        self.app, self.limit, self.limits, self.timeout = app, limit, dict(limits or {}), timeout
        self.page = page

    def _refusal(self, scope: Scope, reply: Response) -> Response:
        """``reply`` (too_large's, too_slow's), or the page with its status
        where ``wants_a_page``; either closes the connection."""
        if self.page is not None and wants_a_page(scope):
            reply = self.page(scope, reply.status_code)
        # The rest of the body is not read and may still be on its way: left
        # open, the connection would go on taking it (each chunk restarting
        # uvicorn's keep-alive timer, no deadline of ours left) and hold its
        # place in the cap for as long as it trickled.
        reply.headers["Connection"] = "close"
        return reply

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limits.get(scope["path"], self.limit)
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            await self._refusal(scope, too_large(limit))(scope, receive, send)
            return
        try:
            async with asyncio.timeout(self.timeout or None):
                body = await self._read(receive, limit)
        except TimeoutError:
            await self._refusal(scope, too_slow(self.timeout))(scope, receive, send)
            return
        if body is None:
            # The client went away before its body was complete: nobody to answer.
            return
        if body is _TOO_LARGE:
            await self._refusal(scope, too_large(limit))(scope, receive, send)
            return
        if body and _measured(scope) and nested_too_deeply(body):
            await too_deep()(scope, receive, send)
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
