"""The headers that keep the portal out of other pages' frames and browsers
from guessing what a reply is, on every reply the gateway sends.

Without them any page could frame the office console or a ticket and have a
signed-in clerk click its one-press forms (check-in, assign, close): the
session cookie's SameSite=Lax keeps it out of other sites' frames, not out of
another host of the hospital's own domain.
"""
from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

EVERY_REPLY = (
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    # Booking and ticket ids are in the portal's addresses: none leaves the site.
    (b"referrer-policy", b"same-origin"),
)
# The portal's pages take their script and styles from /static only; the API's
# documentation pages (Swagger UI, ReDoc) start theirs inline, so they get the
# frame and form rules without the source ones.
PORTAL_POLICY = (b"default-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
                 b"frame-ancestors 'none'")
DOCS_POLICY = b"object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
DOCS_PATHS = ("/docs", "/redoc")


class SecurityHeaders:
    """Pure ASGI middleware: adds the headers as the reply starts, whatever made it."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        policy = DOCS_POLICY if scope["path"].startswith(DOCS_PATHS) else PORTAL_POLICY

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                present = {name.lower() for name, _ in headers}
                headers += [(name, value) for name, value in EVERY_REPLY if name not in present]
                if b"content-security-policy" not in present:
                    headers.append((b"content-security-policy", policy))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
