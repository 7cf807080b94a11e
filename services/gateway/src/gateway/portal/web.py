"""What every portal page shares: the signed session cookie, the language,
rendering, CSRF, flashed messages and the services as the signed-in person.

The session cookie (Starlette's, signed with itsdangerous, HttpOnly, SameSite
Lax) holds the access token, the account's name and roles, the language, a
CSRF token and the waiting-room ticket: nothing else, since its content is
signed, not encrypted.
"""
from __future__ import annotations

import functools
import re
import secrets
import time
import uuid
from collections.abc import Awaitable, Mapping
from typing import Any, TypeVar
from urllib.parse import quote, urlencode, urlsplit

import grpc
from fastapi import Request
from fastapi.routing import APIRoute
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.routing import Match
from starlette.types import Scope

from ..body_limit import wants_a_page
from ..clients import Services
from ..errors import http_status
from ..grpc_trailers import first_value
from tuoguan_common.grpc_server import FIELD_KEY, REASON_KEY
from . import i18n
from .availability import TtlCache
from .settings import PortalSettings
from .waiting_room import WaitingRoom

T = TypeVar("T")

SESSION_COOKIE = "tuoguan_session"
# Sign in again a little before the token runs out, rather than fail mid-booking.
TOKEN_MARGIN_SECONDS = 30


class PortalState:
    """The portal's seams, built at start-up: the waiting room and the caches."""

    def __init__(self, settings: PortalSettings):
        self.settings = settings
        self.waiting_room = WaitingRoom(
            settings.redis_url, capacity=settings.waiting_room_capacity,
            claim_seconds=settings.waiting_room_claim_seconds, pass_seconds=settings.waiting_room_pass_seconds,
            namespace=settings.waiting_room_namespace,
            new_tickets_per_address=settings.waiting_room_new_tickets_per_address,
            address_secret=settings.session_secret)
        self.catalogue = TtlCache("catalogue", settings.catalogue_cache_seconds)
        self.availability = TtlCache("availability", settings.availability_cache_seconds)

    async def close(self) -> None:
        await self.waiting_room.close()


# Where each role lands after signing in (the first role that has a page of its own).
HOME_PAGES = (("registration_office", "/office"), ("dispatcher", "/tickets/board"), ("engineer", "/tickets/queue"),
              ("clinician", "/tickets"))
# The hospital's staff and the O&M team: every one of them reports problems (ticketing accepts their tickets).
STAFF_ROLES = ("registration_office", "admin", "clinician", "engineer", "dispatcher", "finance", "consultant")


def home_page(roles: list[str]) -> str:
    return next((page for role, page in HOME_PAGES if role in roles), "/")


def header(account: Mapping[str, Any] | None) -> dict[str, Any]:
    """The header's site name and links for the signed-in account's roles (kept in the session since sign-in):
    patients and visitors book; staff get their own pages and the O&M pages (every one of them reports
    problems), and not the patients' links, which are no use to them."""
    roles = (account or {}).get("roles", ())
    staff = any(role in roles for role in STAFF_ROLES)
    links: list[tuple[str, str]] = []
    if not staff or "patient" in roles:
        links.append(("/", i18n.N_("Book")))
        if account:
            links.append(("/bookings", i18n.N_("My bookings")))
    if "registration_office" in roles or "admin" in roles:
        links.append(("/office", i18n.N_("Office")))
    if any(role in roles for role in ("clinician", "engineer", "dispatcher", "admin")):
        # Their tickets' page, whose own links include the report form.
        links.append(("/tickets/board" if "dispatcher" in roles or "admin" in roles
                      else "/tickets/queue" if "engineer" in roles else "/tickets", i18n.N_("Tickets")))
    elif staff:
        # The office, finance: they report problems too, and reach their tickets from the form's page.
        links.append(("/tickets/new", i18n.N_("Report a problem")))
    if staff and "patient" not in roles:
        return {"home": home_page(roles), "name": i18n.N_("Staff services"), "links": links}
    return {"home": "/", "name": i18n.N_("Appointments"), "links": links}


def portal_state(request: Request) -> PortalState:
    return request.app.state.portal


@functools.cache
def environment(language: str) -> Environment:
    env = Environment(
        loader=PackageLoader("gateway.portal", "templates"),
        autoescape=select_autoescape(["html"]),
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True, lstrip_blocks=True,
    )
    env.install_gettext_translations(i18n.translations(language), newstyle=True)
    env.globals.update(
        fmt=i18n.Formatter(language), LANGUAGES=i18n.LANGUAGES, PERIODS=i18n.PERIODS, TITLES=i18n.TITLES,
        BOOKING_STATUSES=i18n.BOOKING_STATUSES, END_REASONS=i18n.END_REASONS, SESSION_STATUSES=i18n.SESSION_STATUSES, WEEKDAYS=i18n.WEEKDAYS,
        TICKET_STATUSES=i18n.TICKET_STATUSES, PRIORITIES=i18n.PRIORITIES, TICKET_KINDS=i18n.TICKET_KINDS,
        TICKET_KIND_HELP=i18n.TICKET_KIND_HELP, LEVELS=i18n.LEVELS, IMPACT_HELP=i18n.IMPACT_HELP,
        URGENCY_HELP=i18n.URGENCY_HELP, PAUSE_SIDES=i18n.PAUSE_SIDES, PAUSE_SIDE_HELP=i18n.PAUSE_SIDE_HELP,
        CLOCK_STOPPED=i18n.CLOCK_STOPPED, TICKET_SOURCES=i18n.TICKET_SOURCES, WORKLOG_GRADES=i18n.WORKLOG_GRADES,
        WORKLOG_ACTIVITIES=i18n.WORKLOG_ACTIVITIES, SUBSYSTEM_CATEGORIES=i18n.SUBSYSTEM_CATEGORIES, TEAMS=i18n.TEAMS,
        department_name=functools.partial(i18n.department_name, language=language), header=header,
        speciality=functools.partial(i18n.speciality, language=language),
    )
    return env


def language(request: Request) -> str:
    return i18n.choose_language(request.query_params.get("lang"), request.session.get("lang"),
                                request.headers.get("accept-language"))


def formatter(request: Request) -> i18n.Formatter:
    return i18n.Formatter(language(request))


def gettext(request: Request):
    return i18n.translations(language(request)).gettext


def translate(request: Request, message: str) -> str:
    """``message`` in the request's language (Babel extracts the second argument)."""
    return i18n.translations(language(request)).gettext(message)


def csrf_token(request: Request) -> str:
    token = request.session.get("csrf")
    if not token:
        token = request.session["csrf"] = secrets.token_urlsafe(24)
    return token


def csrf_ok(request: Request, form: Any) -> bool:
    sent = form.get("csrf") or ""
    # Compared as bytes: compare_digest refuses a str that is not ASCII (and a file part is no token).
    return isinstance(sent, str) and bool(sent) and secrets.compare_digest(
        sent.encode(), request.session.get("csrf", "").encode())


def flash(request: Request, message: str, kind: str = "info") -> None:
    request.session.setdefault("flash", []).append({"kind": kind, "text": message})


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    lang = language(request)
    messages = request.session.pop("flash", [])
    html = environment(lang).get_template(template).render(
        # A session whose sign-in ran out is signed out: the header must not offer "My bookings" and
        # "Sign out" over the sign-in form as if nothing had happened.
        request=request, account=request.session.get("account") if signed_in(request) else None,
        csrf=csrf_token(request),
        flashes=messages, current_language=lang, path=request.url.path, here=_page_here(request, context), **context)
    return HTMLResponse(html, status_code=status_code, headers={"Cache-Control": "no-store"})


# What a portal page says of a refusal the gateway made before any route ran.
REFUSED_BY_THE_GATEWAY = {
    404: i18n.N_("There is no page at this address. It may have moved, or the address may be mistyped."),
    405: i18n.N_("This address is for sending a form, and cannot be opened by itself. Please start again from "
                 "the first page."),
    408: i18n.N_("The form took too long to reach us (the connection may be slow), and nothing was saved. "
                 "Please go back and try again."),
    413: i18n.N_("The form was too large to send, and nothing was saved. Please go back, shorten what you "
                 "entered and try again."),
}


def _refused_page(request: Request, status: int) -> HTMLResponse:
    return render(request, "error.html", status_code=status,
                  message=translate(request, REFUSED_BY_THE_GATEWAY[status]))


def body_refused_page(scope: Scope, status: int) -> HTMLResponse:
    """The page for a form BodyLimit refused (408: too slow, 413: too large),
    in the visitor's language. No route ran: nothing the form asked for was
    done, and the page says so, so that the patient sends it again rather
    than wonder whether a booking or a reset went through."""
    return _refused_page(Request(scope), status)


# How long a browser turned away by the connection cap waits before asking
# again by itself: longer than the cap's Retry-After, since every patient
# refused in the burst reloads on the same beat.
BUSY_TRY_AGAIN_SECONDS = 5


def server_busy_page(language: str, reload: bool) -> HTMLResponse:
    """The page for a browser the gateway's connection cap turned away (limits.py,
    which makes it once per language and kind, and sends it before the
    request's session is read). A page asked for
    (``reload``, a GET) tries again by itself; a form sent is not sent again
    behind the patient's back, so that page says to send it again."""
    html = environment(language).get_template("busy.html").render(
        account=None, csrf="", flashes=[], current_language=language, path="/", here="/",
        try_again_seconds=BUSY_TRY_AGAIN_SECONDS if reload else None)
    return HTMLResponse(html, status_code=503, headers={"Cache-Control": "no-store"})


def http_error_page(request: Request, status: int) -> HTMLResponse | None:
    """The page for an address the gateway has nothing at (404) or takes no
    such request at (405: a form's address opened again, as a reload or a
    bookmark does), for a browser outside the API; None for anyone else, who
    gets the API's JSON error."""
    if status not in (404, 405) or not wants_a_page(request.scope):
        return None
    return _refused_page(request, status)


# What a form's page takes back from the step a form of it rendered: the language switch and the
# sign-in link of a page rendered by a POST (the code step of a sign-up or a reset, a refused
# sign-in) lead there, with the page the patient was going to. Never what identifies someone (the
# phone number typed): an address stays in the browser's history, a kiosk's too, and in proxies' logs.
PAGE_KEEPS = {"/signup": ("next",), "/signin": ("next",)}


def _page_here(request: Request, context: Mapping[str, Any]) -> str:
    """The address of the page shown, for links that come back to it (the language switch, the sign-in
    link). A page rendered by a POST has no address of its own a browser can open (it would get the 405
    page): the page of its form stands in, with what it takes of the form (PAGE_KEEPS)."""
    if request.method in ("GET", "HEAD"):
        return _here(request)
    page = page_of(request, request.url.path)
    keep = {name: context[name] for name in PAGE_KEEPS.get(page, ())
            if isinstance(context.get(name), str) and context[name] not in ("", "/")}
    return page + (f"?{urlencode(keep)}" if keep else "")


def _here(request: Request) -> str:
    return request.url.path + (f"?{request.url.query}" if request.url.query else "")


def redirect(url: str) -> RedirectResponse:
    # 303: after a form's POST the browser GETs the next page (no resubmission on reload).
    return RedirectResponse(url, status_code=303)


# Browsers read a backslash in a URL as a slash and drop tabs and newlines: a next
# of /\evil.example or /<TAB>/evil.example would leave the site for //evil.example.
# No path of this site has a control character either.
_NOT_IN_A_NEXT = re.compile(r"[\\\x00-\x1f\x7f-\x9f]")


def safe_next(url: str | None, default: str = "/") -> str:
    """Only a path on this site: never a redirect elsewhere."""
    if not url:
        return default
    parts = urlsplit(url)
    if (parts.scheme or parts.netloc or not url.startswith("/") or url.startswith("//")
            or _NOT_IN_A_NEXT.search(url)):
        return default
    return url


# Why the sign-in page comes up. A form sent once the sign-in has run out was not acted on: the
# patient must know, or they take the booking for cancelled, the hold for made.
SIGN_IN_TIMED_OUT = i18n.N_("Your sign-in has timed out. Please sign in again.")
SESSION_ENDED = i18n.N_("Your session has ended. Please sign in again.")
NOT_DONE_TIMED_OUT = i18n.N_("Your sign-in had timed out, so what you just asked for was not done. Please sign "
                             "in again, then try it once more.")
NOT_DONE_ENDED = i18n.N_("Your session had ended, so what you just asked for was not done. Please sign in "
                         "again, then try it once more.")
NOT_DONE_SIGNED_OUT = i18n.N_("Please sign in first. What you asked for was not done: try it again once you "
                              "are signed in.")


def _is_page(request: Request, path: str) -> bool:
    """Whether a browser can open ``path`` of the portal (a GET page), not only send a form to it."""
    scope = {"type": "http", "method": "GET", "path": path, "root_path": "", "headers": [], "query_string": b""}
    return any(route.matches(scope)[0] == Match.FULL for route in request.app.router.routes)


def page_of(request: Request, url: str) -> str:
    """``url`` if a browser can open it, else the page nearest it that one can: a form's address
    (POST only) gives its own page, /bookings/<id>/cancel gives /bookings/<id>, /signup/code gives
    /signup, /reset/confirm gives /reset, /holds gives /."""
    path = urlsplit(url).path
    if _is_page(request, path):
        return url
    parts = path.rstrip("/").split("/")
    while len(parts) > 1:
        parts.pop()
        candidate = "/".join(parts) or "/"
        if _is_page(request, candidate):
            return candidate
    return "/"


def form_came_from(request: Request, back: str | None = None) -> str:
    """The page a form was sent from: its ``back`` field, else the Referer when it is a page of this
    site, else the page nearest the form's address. Never the form's address itself, which a
    browser cannot open (a 405)."""
    for url in (back, _same_site_referer(request)):
        if url and safe_next(url, ""):
            return page_of(request, url)
    return page_of(request, request.url.path)


def _same_site_referer(request: Request) -> str | None:
    referer = urlsplit(request.headers.get("referer", ""))
    if not referer.netloc or referer.netloc != request.headers.get("host") or referer.scheme not in ("http", "https"):
        return None
    return referer.path + (f"?{referer.query}" if referer.query else "")


def sign_in_redirect(request: Request, back: str | None = None, *, ended: bool = False) -> RedirectResponse:
    """To the sign-in page, which then returns to the page asked for or, for a form (its
    address takes no GET), to the page the form was sent from (``back`` if it says),
    saying why: a sign-in that ran out (``ended``: one a service refused) and, for a
    form, that nothing was done."""
    had_token = bool(request.session.pop("token", None))
    request.session.pop("token_expires", None)
    if ended or had_token:
        request.session.pop("account", None)
    if request.method in ("GET", "HEAD"):
        message, target = (SESSION_ENDED if ended else SIGN_IN_TIMED_OUT if had_token else None), _here(request)
    else:
        message = NOT_DONE_ENDED if ended else NOT_DONE_TIMED_OUT if had_token else NOT_DONE_SIGNED_OUT
        target = form_came_from(request, back)
    if message:
        flash(request, translate(request, message), "info" if request.method in ("GET", "HEAD") else "error")
    return redirect(f"/signin?next={quote(target)}")


def signed_in(request: Request) -> bool:
    token = request.session.get("token")
    return bool(token) and request.session.get("token_expires", 0) > time.time() + TOKEN_MARGIN_SECONDS


def start_session(request: Request, token: str, expires_in: int, account: dict[str, Any]) -> None:
    lang, ticket, visitor = request.session.get("lang"), request.session.get("ticket"), request.session.get("visitor")
    request.session.clear()
    # A new CSRF token at sign-in: one planted before it is worth nothing.
    request.session.update({"token": token, "token_expires": time.time() + expires_in, "account": account})
    if lang:
        request.session["lang"] = lang
    # The waiting-room place goes on: taken before sign-in (the session's, "visitor"), it becomes
    # the account's; another account's, it is worth nothing to this one (patient._room_owner).
    if ticket:
        request.session["ticket"] = ticket
    if visitor:
        request.session["visitor"] = visitor


# Identity's device cookie for the login last signed in (or reset) in this
# browser: with it, strangers' wrong passwords for that login do not lock the
# owner out here. Kept apart from the session, which signing out clears.
DEVICE_COOKIE = "tuoguan_device"
DEVICE_COOKIE_MAX_AGE = 180 * 24 * 3600


def device_cookie(request: Request) -> str:
    return request.cookies.get(DEVICE_COOKIE, "")


def remember_device(request: Request, response: Response, value: str) -> Response:
    if value:
        response.set_cookie(DEVICE_COOKIE, value, max_age=DEVICE_COOKIE_MAX_AGE, httponly=True, samesite="lax",
                            secure=portal_state(request).settings.secure_cookies)
    return response


def services(request: Request) -> Services:
    token = request.session.get("token") if signed_in(request) else None
    return request.app.state.clients.for_caller(token)


def public_services(request: Request) -> Services:
    """The services as nobody in particular, for what anyone may see. The portal's caches
    load with these: a load is shared by everyone who asks meanwhile, so it must not carry
    (and fail with) one person's token, or a token a service refuses would sign them all out."""
    return request.app.state.clients.for_caller(None)


def has_role(request: Request, *roles: str) -> bool:
    account = request.session.get("account") or {}
    return any(role in account.get("roles", ()) for role in roles)


def form_key() -> str:
    """An idempotency key for a form: sent with it, so a double click writes once."""
    return uuid.uuid4().hex


def refusal_status(exc: grpc.aio.AioRpcError) -> int:
    """The HTTP status of a form page a service refused: 503 when the service could not answer (down, too
    slow), so that monitors and proxies see an outage, not a user's mistake; 400 otherwise."""
    return 503 if exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED) else 400


def refusal_text(request: Request, exc: grpc.aio.AioRpcError, reasons: Mapping[str, str] | None = None) -> str:
    """What a service's refusal means, in the patient's language; never a code or a trace.
    ``reasons`` words some codes as one form means them (i18n.REASONS words the rest)."""
    _ = gettext(request)
    reason = first_value(exc.trailing_metadata(), REASON_KEY) or ""
    if reasons and reason in reasons:
        return _(reasons[reason])
    if reason in i18n.REASONS:
        return _(i18n.REASONS[reason])
    status = http_status(exc.code())
    if status == 422:
        field = first_value(exc.trailing_metadata(), FIELD_KEY) or ""
        return check_field_text(request, field) if field else _(i18n.GENERAL_REFUSAL)
    if status == 429:
        return _(i18n.REASONS["resource_exhausted"])
    if status >= 500:
        return _(i18n.REASONS["unavailable"])
    return _(i18n.GENERAL_REFUSAL)


def check_field_text(request: Request, field: str) -> str:
    """Asks for another look at one field of a form, by its label where the form has one."""
    _ = gettext(request)
    return _("Please check the field: {field}.").format(field=_(i18n.FIELDS[field]) if field in i18n.FIELDS else field)


def refusal_field(exc: grpc.aio.AioRpcError) -> str | None:
    return first_value(exc.trailing_metadata(), FIELD_KEY)


def refusal_reason(exc: grpc.aio.AioRpcError) -> str | None:
    return first_value(exc.trailing_metadata(), REASON_KEY)


class GoBack(Exception):
    """A form was refused: its message is flashed, the person goes back to ``url``."""

    def __init__(self, url: str):
        super().__init__(url)
        self.url = url


class FormExpired(Exception):
    """A form posted without this session's CSRF token."""


class SignInFirst(Exception):
    """A page or form for signed-in people only, and the session has none; ``back``: the
    form's own word on the page it was sent from."""

    def __init__(self, back: str | None = None):
        super().__init__(back)
        self.back = back


async def posted_form(request: Request, *, sign_in: bool = True):
    """The form of a POST, after the CSRF check (and the sign-in check), each
    field as text: a file part (anyone can send one; no portal form asks for
    one) reads as empty rather than failing the page that reads it."""
    form = {name: value if isinstance(value, str) else "" for name, value in (await request.form()).items()}
    if not csrf_ok(request, form):
        raise FormExpired()
    if sign_in and not signed_in(request):
        raise SignInFirst(form.get("back"))
    return form


async def call(request: Request, back: str, rpc: Awaitable[T], reasons: Mapping[str, str] | None = None) -> T:
    """A service call made for a form: a refusal goes back with its message
    (``reasons``: the form's own wording of some codes, see refusal_text)."""
    try:
        return await rpc
    except grpc.aio.AioRpcError as exc:
        if exc.code() == grpc.StatusCode.UNAUTHENTICATED:
            raise
        flash(request, refusal_text(request, exc, reasons), "error")
        raise GoBack(back) from exc


class PortalRoute(APIRoute):
    """A page route: a service's refusal nobody expected becomes a page in the
    patient's language (or the sign-in page when the session ran out), not JSON."""

    def get_route_handler(self):
        handler = super().get_route_handler()

        async def page(request: Request):
            try:
                return await handler(request)
            except GoBack as back:
                return redirect(back.url)
            except SignInFirst as first:
                return sign_in_redirect(request, first.back)
            except FormExpired:
                return render(request, "error.html", status_code=403, message=translate(
                    request, "This form has expired. Please go back, reload the page and try again."))
            except grpc.aio.AioRpcError as exc:
                if exc.code() == grpc.StatusCode.UNAUTHENTICATED:
                    # Refused by a service (signed out elsewhere, a new password, a
                    # new grade): without a word the sign-in page would look like a fault.
                    return sign_in_redirect(request, ended=True)
                return render(request, "error.html", status_code=http_status(exc.code()),
                              message=refusal_text(request, exc))

        return page
