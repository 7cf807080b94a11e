"""Request bodies have a size limit, checked before anything reads them.

Without one, a 10 MB JSON field travelled to a service and came back as gRPC's
RESOURCE_EXHAUSTED (its 4 MiB message limit): a 429 "try again" quoting gRPC,
to a request no retry could mend, after the gateway had parsed all of it. The
largest request any route takes (a ticket's 10,000-character description,
every character sent as a JSON \\u escape) is about 60 KB; the limit leaves room
for that and stays far under gRPC's. Alertmanager's webhook carries a storm of
alerts and has a limit of its own.
"""
from __future__ import annotations

from typing import Mapping

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import error_response

MAX_BODY_BYTES = 256 * 1024


def too_large(limit: int):
    return error_response(413, "payload_too_large", f"the body is larger than {limit} bytes", "body")


class BodyLimit:
    """Reads a request's body up to its path's limit, then hands it on whole;
    a longer body, declared (Content-Length) or sent (chunked), is answered
    413 payload_too_large on ``body`` and never reaches a route."""

    def __init__(self, app: ASGIApp, *, limit: int = MAX_BODY_BYTES, limits: Mapping[str, int] | None = None):
        self.app, self.limit, self.limits = app, limit, dict(limits or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limits.get(scope["path"], self.limit)
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            await too_large(limit)(scope, receive, send)
            return
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                # The client went away before its body was complete: nobody to answer.
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await too_large(limit)(scope, receive, send)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body, delivered = b"".join(chunks), False

        async def replay() -> Message:
            nonlocal delivered
            if delivered:
                # After the body, what the server says next (a disconnect).
                return await receive()
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)
