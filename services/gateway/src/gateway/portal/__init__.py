"""The web portal served by the gateway: the patients' pages, the
registration office's console and the O&M ticket pages, server-rendered (Jinja2, Babel catalogues) on
top of the same gRPC services as the JSON API."""
from __future__ import annotations

from importlib import resources

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.middleware.sessions import SessionMiddleware

from . import office, patient, tickets
from .settings import PortalSettings
from .web import SESSION_COOKIE, PortalState, body_refused_page, http_error_page, server_busy_page

__all__ = ["PortalSettings", "PortalState", "body_refused_page", "http_error_page", "install", "server_busy_page"]

# A session outlives its access token (15 min): it keeps the language and the queue ticket.
SESSION_MAX_AGE_SECONDS = 8 * 3600


def install(app: FastAPI, settings: PortalSettings) -> None:
    app.add_middleware(SessionMiddleware, secret_key=settings.session_secret, session_cookie=SESSION_COOKIE,
                       max_age=SESSION_MAX_AGE_SECONDS, same_site="lax", https_only=settings.secure_cookies)
    static = resources.files(__package__).joinpath("static")
    app.mount("/static", StaticFiles(directory=str(static)), name="static")
    app.include_router(patient.router)
    app.include_router(office.router)
    app.include_router(tickets.router)
