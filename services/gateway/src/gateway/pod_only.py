"""Paths for the cluster's own callers only, never through the ingress:
Prometheus' scrape (``/metrics``) and, unless the deployment says otherwise,
Alertmanager's webhook.

Both call the pod directly. Through the ingress, ``/metrics`` would show the
internet the sign-in guard's counts (a password sprayer would pace itself under
its limit); the webhook takes 1 MiB bodies, read whole (body_limit.py) before
its caller's token is checked, so a thousand anonymous clients posting to it
would hold a gigabyte of a gateway limited to 768 MiB. A request that came
through a proxy (every ingress controller adds ``X-Forwarded-For`` or
``Forwarded``) is answered 404 ``not_found``, as an unknown path, before any
of its body is read.

An Alertmanager outside the cluster, reaching the gateway through the ingress,
needs ``ALERTMANAGER_WEBHOOK_VIA_PROXY=true`` (the memory risk above is then
the ingress's to bound: its body size and per-client connection limits).
"""
from __future__ import annotations

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from .errors import Page, error_response


def came_through_a_proxy(headers: Headers) -> bool:
    return "x-forwarded-for" in headers or "forwarded" in headers


class PodOnly:
    """Answers a request to one of ``paths`` that came through a proxy 404
    ``not_found``, reading none of its body: the answer to any unknown path,
    ``page``'s for the clients it makes one for (a browser's), else the JSON
    error, so that the path cannot be told from one that does not exist."""

    def __init__(self, app: ASGIApp, *, paths: frozenset[str], page: Page | None = None):
        self.app, self.paths, self.page = app, paths, page

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in self.paths:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if not came_through_a_proxy(headers):
            await self.app(scope, receive, send)
            return
        reply = self.page(Request(scope), 404) if self.page else None
        if reply is None:
            reply = error_response(404, "not_found", "Not Found")
        if "transfer-encoding" in headers or headers.get("content-length", "0") != "0":
            # Its body is not read: left open, the connection would go on taking
            # it with no deadline (BodyLimit's is not reached) and keep its place.
            reply.headers["Connection"] = "close"
        await reply(scope, receive, send)
