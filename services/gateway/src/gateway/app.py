"""The gateway: the one HTTP surface for people. A FastAPI app over grpc.aio
clients to the services."""
from __future__ import annotations

import contextlib

import uvicorn
from fastapi import FastAPI, Response
from fastapi_offline import FastAPIOffline
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from tuoguan_common import metrics
from tuoguan_common.config import env_flag

from . import errors, portal
from .clients import Addresses, Clients
from .models import ERROR_RESPONSES
from .observability import RequestTelemetry
from .portal.settings import PortalSettings
from .body_limit import BodyLimit
from .limits import ServerLimits
from .pod_only import PodOnly
from .routes import accounts, bookings, catalogue, finance, office, tickets
from .security_headers import SecurityHeaders
from .send_guard import SendGuard, SendGuardSettings
from .sign_in_guard import SignInGuard, SignInGuardSettings


def create_app(addresses: Addresses | None = None, portal_settings: PortalSettings | None = None,
               guard_settings: SignInGuardSettings | None = None,
               send_guard_settings: SendGuardSettings | None = None, limits: ServerLimits | None = None,
               webhook_via_proxy: bool | None = None) -> FastAPI:
    """The app; ``addresses`` points it at other servers (tests), else the environment decides.
    ``webhook_via_proxy`` (else ALERTMANAGER_WEBHOOK_VIA_PROXY): Alertmanager's webhook
    answers requests that came through a proxy (pod_only.py)."""
    portal_settings = portal_settings or PortalSettings.from_env()
    guard_settings = guard_settings or SignInGuardSettings.from_env()
    send_guard_settings = send_guard_settings or SendGuardSettings.from_env()
    limits = limits or ServerLimits.from_env()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        # Opened here, not at import: grpc.aio channels belong to the running loop.
        app.state.clients = Clients(addresses or Addresses.from_env())
        # The portal's seams (the Redis client belongs to the running loop, like the channels).
        app.state.portal = portal.PortalState(portal_settings)
        app.state.sign_in_guard = SignInGuard(guard_settings, portal_settings.session_secret)
        # Text messages (codes) asked for per address: a count apart from the failed sign-ins.
        app.state.send_guard = SendGuard(send_guard_settings, portal_settings.session_secret)
        try:
            yield
        finally:
            await app.state.send_guard.close()
            await app.state.sign_in_guard.close()
            await app.state.portal.close()
            await app.state.clients.close()

    # The API's documentation pages take Swagger UI's and ReDoc's scripts from
    # the gateway itself, not a CDN: a hospital intranet reaches no CDN, and
    # the pages were blank there.
    app = FastAPIOffline(
        title="Tuoguan API",
        version="1",
        description="Appointments, payments and registration slips. Sign in, then send "
                    "`Authorization: Bearer <access_token>`; writes take an `Idempotency-Key` header.",
        lifespan=lifespan,
        # FastAPI's own telemetry would open a second server span that records
        # the raw path and query; RequestTelemetry records the route template only.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    # Inside the telemetry, so a refused body is counted and traced like any reply.
    app.add_middleware(BodyLimit, limits=tickets.BODY_LIMITS, timeout=limits.body_timeout_seconds,
                       page=portal.body_refused_page)
    # Outside the body's limit: a path refused through a proxy reads none of its body.
    if webhook_via_proxy is None:
        webhook_via_proxy = env_flag("ALERTMANAGER_WEBHOOK_VIA_PROXY")
    app.add_middleware(PodOnly, paths=frozenset({"/metrics"} if webhook_via_proxy else
                                                {"/metrics", tickets.WEBHOOK_ROUTE}),
                       page=portal.http_error_page)
    app.add_middleware(RequestTelemetry)
    # Outermost: every reply carries them, the refusals of the layers inside included.
    app.add_middleware(SecurityHeaders)
    errors.install(app, page=portal.http_error_page)
    for module in (accounts, catalogue, bookings, office, finance, tickets):
        app.include_router(module.router, responses=ERROR_RESPONSES)
    portal.install(app, portal_settings)

    @app.get("/healthz", tags=["operations"], summary="Liveness")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/metrics", include_in_schema=False)
    async def prometheus_metrics() -> Response:
        # Prometheus scrapes the pod itself; through a proxy PodOnly answers 404.
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    return app


def server(app: FastAPI, *, host: str, port: int, trusted_proxies: str = "127.0.0.1",
           limits: ServerLimits | None = None) -> uvicorn.Server:
    """The uvicorn server the process (and the tests) run. Behind
    ``trusted_proxies`` (addresses and networks, comma-separated: the
    ingress), a request's client is the right-most address of its
    X-Forwarded-For that is not one of them; otherwise it is the peer.
    ``limits`` (else the environment's) caps its connections and their
    keep-alive; the app's body deadline is create_app's."""
    limits = limits or ServerLimits.from_env()
    uvicorn_server = uvicorn.Server(uvicorn.Config(
        app, host=host, port=port, proxy_headers=True, forwarded_allow_ips=trusted_proxies,
        # The plain asyncio loop: grpc.aio's poller is built and tested against it.
        loop="asyncio",
        # Logs go through the JSON root logger; the access log is replaced by the
        # telemetry middleware's line, which names the route, not the client's address.
        log_config=None, access_log=False,
        lifespan="on",
        http=limits.http_protocol(),
        limit_concurrency=limits.uvicorn_limit_concurrency(),
        timeout_keep_alive=limits.keep_alive_seconds,
    ))
    # Read when scraped: one server per process (the tests' last one wins).
    state = uvicorn_server.server_state
    metrics.GATEWAY_OPEN_CONNECTIONS.set_function(lambda: len(state.connections))
    return uvicorn_server
