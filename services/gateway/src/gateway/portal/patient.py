"""The patients' pages: find a slot, hold it, pay, the confirmation, my
bookings, cancel, the slip; sign-up, sign-in and the password reset."""
from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Annotated
from urllib.parse import quote

import grpc
from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse

from tuoguan.billing.v1 import billing_pb2
from tuoguan.identity.v1 import identity_pb2
from tuoguan.registration.v1 import registration_pb2 as reg

from .. import slip
from ..convert import enum_name, to_dict
from ..deps import token_subject
from ..errors import ApiError
from ..address_guard import AddressLimited
from ..send_guard import TooManyCodes
from ..sign_in_guard import RESET_MISSES, SIGN_UP_MISSES, AddressRefused, client_address
from . import i18n
from .waiting_room import PAID_PLACE_SECONDS, Standing, account_owner, visitor_owner
from .web import (
    FormExpired, GoBack, PortalRoute, call, csrf_ok, device_cookie, flash, form_key, formatter, gettext, home_page, language, portal_state, posted_form,
    public_services, redirect, refusal_field, refusal_reason, refusal_status, refusal_text, render, safe_next, services,
    sign_in_redirect, signed_in,
    remember_device, start_session, translate,
)

log = logging.getLogger(__name__)

router = APIRouter(route_class=PortalRoute, include_in_schema=False, default_response_class=HTMLResponse)

BOOKING_DAYS_AHEAD = 14
ACTIVE = frozenset({reg.BOOKING_STATUS_HELD, reg.BOOKING_STATUS_CONFIRMED})
# A payment under way or made: the hold it pays for is not to be paid again, released or called expired.
PAID_OR_PAYING = frozenset({billing_pb2.PAYMENT_STATUS_PENDING, billing_pb2.PAYMENT_STATUS_UNKNOWN,
                            billing_pb2.PAYMENT_STATUS_CAPTURED})
# The sandbox cashier's cards: what a tester picks to see each outcome.
SANDBOX_METHODS = (
    ("tok_ok", i18n.N_("Test card: payment approved")),
    ("tok_decline", i18n.N_("Test card: declined by the bank")),
    ("tok_insufficient_funds", i18n.N_("Test card: insufficient funds")),
)
ROLE_NAMES = {v.number: v.name.removeprefix("ROLE_").lower() for v in identity_pb2.Role.DESCRIPTOR.values}


# ---- the catalogue -------------------------------------------------------------------------------

async def _departments(request: Request) -> list[reg.Department]:
    state = portal_state(request)
    reply = await state.catalogue.get(("departments",), lambda: public_services(request).registration.ListDepartments(
        reg.ListDepartmentsRequest()))
    return list(reply.departments)


async def _department_names(request: Request) -> dict[str, str]:
    """Departments' names in the page's language, by id, for pages of bookings: a booking
    carries the name it was made under, in Chinese."""
    if language(request) != "en":
        return {}
    return {d.department_id: d.name_en for d in await _departments(request) if d.name_en}


async def _doctors(request: Request, department_id: str) -> list[reg.Doctor]:
    state = portal_state(request)
    reply = await state.catalogue.get(
        ("doctors", department_id), lambda: public_services(request).registration.ListDoctors(
            reg.ListDoctorsRequest(department_id=department_id)))
    return list(reply.doctors)


async def _slots(request: Request, doctor_id: str) -> list[reg.Slot]:
    state = portal_state(request)
    today = i18n.hospital_today()
    reply = await state.availability.get(("slots", doctor_id), lambda: public_services(request).registration.ListSlots(
        reg.ListSlotsRequest(doctor_id=doctor_id, from_date=today.isoformat(),
                             to_date=(today + dt.timedelta(days=BOOKING_DAYS_AHEAD)).isoformat())))
    return list(reply.slots)


@router.get("/")
async def home(request: Request):
    return render(request, "home.html", departments=await _departments(request))


@router.get("/language")
async def choose_language(request: Request, to: str = "", next: str = "/"):
    if to in i18n.LANGUAGES:
        request.session["lang"] = to
    return redirect(safe_next(next))


@router.get("/departments/{department_id}")
async def department(request: Request, department_id: str):
    departments = {d.department_id: d for d in await _departments(request)}
    if department_id not in departments:
        return render(request, "error.html", status_code=404, message=translate(request, i18n.REASONS["not_found"]))
    return render(request, "department.html", department=departments[department_id],
                  doctors=await _doctors(request, department_id))


def _room_owner(request: Request) -> tuple[str, str]:
    """Whom the session's waiting-room ticket is bound to, and whom it may pass from. Signed in: the
    account (its token's subject; the cookie is the gateway's signed one and the token identity's),
    also once the token has lapsed, so a patient who waits longer than a token lasts keeps the place
    (and signs in again as the same account). Before sign-in: the session itself, by a random id it
    keeps; its ticket passes to the first account to sign in with it, and to no other."""
    visitor = request.session.get("visitor") or secrets.token_urlsafe(16)
    request.session["visitor"] = visitor
    subject = token_subject(request.session.get("token"))
    if subject:
        return account_owner(subject), visitor_owner(visitor)
    return visitor_owner(visitor), ""


async def _check_room(request: Request) -> Standing:
    owner, claimable_from = _room_owner(request)
    standing = await portal_state(request).waiting_room.check(request.session.get("ticket"), owner,
                                                              claimable_from=claimable_from,
                                                              address=client_address(request))
    request.session["ticket"] = standing.ticket
    return standing


async def _leave_room(request: Request, ticket: int | None) -> None:
    await portal_state(request).waiting_room.leave(ticket, _room_owner(request)[0])


async def _admitted(request: Request):
    """None when the patient may use the booking pages now; else the waiting room."""
    standing = await _check_room(request)
    if standing.admitted:
        return None
    if standing.outcome == "missed_turn":
        # The turn (or the pass it gave) ran out while the patient was away: a new ticket. The queue
        # page says so only if the patient really waits again; one admitted at once hears nothing.
        request.session.pop("ticket", None)
        request.session["requeued"] = True
    return redirect(f"/queue?next={quote(request.url.path + ('?' + request.url.query if request.url.query else ''))}")


@router.get("/departments/{department_id}/doctors/{doctor_id}")
async def doctor(request: Request, department_id: str, doctor_id: str, date: str = ""):
    queue = await _admitted(request)
    if queue is not None:
        return queue
    # Set by a hold refused for this page: the booking that stands in the way (shown once).
    same_day = request.session.pop("same_day", None) or {}
    departments = {d.department_id: d for d in await _departments(request)}
    # The department first: registration refuses a search of one it does not know.
    doctors = {d.doctor_id: d for d in await _doctors(request, department_id)} if department_id in departments else {}
    if doctor_id not in doctors:
        return render(request, "error.html", status_code=404, message=translate(request, i18n.REASONS["not_found"]))
    slots = await _slots(request, doctor_id)
    days = [(day, list(group)) for day, group in itertools.groupby(
        sorted(slots, key=lambda s: (s.service_date, s.starts_at)), key=lambda s: s.service_date)]
    chosen = date if any(day == date for day, _ in days) else next(
        (day for day, group in days if any(s.remaining > 0 for s in group)), days[0][0] if days else "")
    # A session may charge its own fee (a free clinic charges nothing): each time shows its own, and the
    # doctor's fee is stated, as the standard one, only when no time open to booking charges another.
    standard_fee = all(s.fee_fen == doctors[doctor_id].fee_fen for s in slots)
    return render(request, "doctor.html", department=departments[department_id], doctor=doctors[doctor_id],
                  standard_fee=standard_fee,
                  days=[(day, sum(s.remaining for s in group)) for day, group in days], chosen=chosen,
                  slots=next((group for day, group in days if day == chosen), []), key=form_key(),
                  signed_in=signed_in(request), same_day=same_day if same_day.get("page") == request.url.path else None)


# ---- the waiting room ----------------------------------------------------------------------------

@router.get("/queue")
async def queue(request: Request, next: str = "/"):
    standing = await _check_room(request)
    requeued = request.session.pop("requeued", False)
    if standing.admitted:
        return redirect(safe_next(next))
    if standing.outcome == "address_limited":
        # No ticket yet: the page asks again by itself once the address's minute is over, and keeps
        # the word that the patient's turn had lapsed for the page that gives the new place.
        request.session["requeued"] = requeued
        page = render(request, "queue.html", status_code=429, standing=standing, next=safe_next(next),
                      refresh_seconds=standing.retry_after)
        page.headers["Retry-After"] = str(standing.retry_after)
        return page
    if requeued and standing.position > 0:
        flash(request, translate(request, "You were away for a long time, so your turn to book has lapsed. "
                                          "You have been given a new place in the queue."))
    return render(request, "queue.html", standing=standing, next=safe_next(next))


@router.get("/queue/status.json")
async def queue_status(request: Request):
    """What the queue page's script polls."""
    standing = await _check_room(request)
    return JSONResponse({"admitted": standing.admitted, "position": standing.position},
                        headers={"Cache-Control": "no-store"})


# ---- holding, paying, the booking ----------------------------------------------------------------

@router.post("/holds")
async def hold(request: Request):
    form = await posted_form(request, sign_in=False)
    back = safe_next(form.get("back"), "/")
    if not signed_in(request):
        return sign_in_redirect(request, back)
    queue = await _admitted(request)
    if queue is not None:
        return queue
    try:
        reply = await call(request, back, services(request).registration.HoldSlot(reg.HoldSlotRequest(
            slot_id=str(form.get("slot_id", "")), idempotency_key=str(form.get("key", "")))))
    except GoBack as back_to:
        # The figures this patient acted on were stale (full, suspended): the page they
        # go back to shows the slot as it is now, not the cached view.
        portal_state(request).availability.forget(("slots", str(form.get("doctor_id", ""))))
        if isinstance(back_to.__cause__, grpc.aio.AioRpcError) and refusal_reason(
                back_to.__cause__) == "one_per_department_per_day":
            await _point_to_same_day_booking(request, form, back)
        raise
    portal_state(request).availability.forget(("slots", reply.booking.doctor_id))
    if reply.booking.status == reg.BOOKING_STATUS_HELD:
        # Kept (signed, in the session cookie) for the payment of this hold: billing then need not ask registration.
        request.session["payment_ticket"] = [reply.booking.booking_id, reply.payment_ticket]
        # Noted with the admission too: the API's read of it confirmed (one account, one ticket in both)
        # frees the place as this session's booking page does.
        await portal_state(request).waiting_room.booked(request.session.get("ticket"), _room_owner(request)[0],
                                                        reply.booking.booking_id)
    else:
        # A free clinic's booking is confirmed as it is held: nothing to pay, the next patient may come in.
        await _leave_room(request, request.session.pop("ticket", None))
    return redirect(f"/bookings/{reply.booking.booking_id}")


async def _point_to_same_day_booking(request: Request, form: dict, back: str) -> None:
    """A hold refused one_per_department_per_day: the page the patient goes back to links the booking
    that stands in the way (a hold of theirs they may release, or wait out)."""
    department_id, day = str(form.get("department_id", "")), str(form.get("service_date", ""))
    if not department_id or not day:
        return
    bookings = (await services(request).registration.ListMyBookings(reg.ListMyBookingsRequest())).bookings
    found = next((b for b in reversed(bookings) if b.status in ACTIVE and b.department_id == department_id
                  and b.service_date == day), None)
    if found is not None:
        request.session["same_day"] = {"booking_id": found.booking_id, "page": back.split("?")[0],
                                       "held": found.status == reg.BOOKING_STATUS_HELD,
                                       "hold_expires_at": found.hold_expires_at}


async def _booking(request: Request, booking_id: str) -> reg.Booking:
    return (await services(request).registration.GetBooking(reg.GetBookingRequest(booking_id=booking_id))).booking


def _hold_lapsed(booking: reg.Booking) -> bool:
    """A hold whose time is up: registration's worker releases it a moment later, and until then it
    still reads HELD. Shown as ended, so that no page offers to pay for it."""
    return (booking.status == reg.BOOKING_STATUS_HELD and bool(booking.hold_expires_at)
            and dt.datetime.fromisoformat(booking.hold_expires_at) <= dt.datetime.now(dt.timezone.utc))


@router.get("/bookings/{booking_id}")
async def booking_page(request: Request, booking_id: str):
    if not signed_in(request):
        return sign_in_redirect(request)
    booking = await _booking(request, booking_id)
    # Always read, a hold included: billing answers a payment pending and tells registration
    # later, so right after paying the booking is still HELD and knows no payment yet.
    payments = list((await services(request).billing.ListPayments(
        billing_pb2.ListPaymentsRequest(booking_id=booking_id))).payments)
    pending = any(p.status in (billing_pb2.PAYMENT_STATUS_PENDING, billing_pb2.PAYMENT_STATUS_UNKNOWN)
                  for p in payments)
    # A hold whose payment is captured waits only for registration to confirm it: paid, not to pay.
    paid = any(p.status in PAID_OR_PAYING for p in payments)
    # A failed payment ends the hold (billing tells registration, which releases it a moment
    # later): the page says so, and why, from the moment billing knows, not "expired".
    failed = [p for p in payments if p.status == billing_pb2.PAYMENT_STATUS_FAILED]
    payment_failed = bool(failed) and not paid and (
        booking.status == reg.BOOKING_STATUS_HELD or booking.cancel_reason == "payment_failed")
    # A paid hold waits for its confirmation, whatever the clock says; an unpaid one past its time is over.
    ended = payment_failed or (not paid and _hold_lapsed(booking))
    shown_status = reg.BOOKING_STATUS_EXPIRED if ended else booking.status
    if booking.status == reg.BOOKING_STATUS_CONFIRMED and (request.session.get("payment_ticket") or ("",))[0] == booking_id:
        # The hold this session paid for is confirmed: done with the booking pages, the next patient
        # in the queue gets this place (not before: a declined card must not cost the patient theirs).
        request.session.pop("payment_ticket", None)
        await _leave_room(request, request.session.pop("ticket", None))
    refunded = sum(p.refunded_fen for p in payments)
    # A charge that reached the provider after billing failed the payment, and was given back.
    given_back = sum(p.refunded_after_failure_fen for p in payments)
    return render(request, "booking.html", booking=booking, booking_dict=to_dict(booking), pending=pending,
                  refunded_fen=refunded, given_back_fen=given_back, department_names=await _department_names(request),
                  status=enum_name(reg.BookingStatus.DESCRIPTOR, shown_status), shown_status=shown_status,
                  payment_failed=payment_failed, key=form_key(),
                  failure=i18n.PAYMENT_FAILURES.get(failed[-1].failure_reason, i18n.PAYMENT_FAILED) if failed else "",
                  payment_failed_next=i18n.PAYMENT_FAILED_NEXT, payment_not_completed=i18n.PAYMENT_NOT_COMPLETED,
                  # Keep refreshing while the payment's confirmation is on its way.
                  waiting_for_confirmation=booking.status == reg.BOOKING_STATUS_HELD and paid)


@router.get("/bookings/{booking_id}/pay")
async def cashier(request: Request, booking_id: str):
    if not signed_in(request):
        return sign_in_redirect(request)
    booking = await _booking(request, booking_id)
    if booking.status != reg.BOOKING_STATUS_HELD or _hold_lapsed(booking):
        return redirect(f"/bookings/{booking_id}")
    return render(request, "pay.html", booking=booking, methods=SANDBOX_METHODS, key=form_key(),
                  department_names=await _department_names(request))


@router.post("/bookings/{booking_id}/pay")
async def pay(request: Request, booking_id: str):
    form = await posted_form(request)
    held, ticket = request.session.get("payment_ticket") or ("", "")
    await call(request, f"/bookings/{booking_id}", services(request).billing.PayRegistrationFee(
        billing_pb2.PayRegistrationFeeRequest(booking_id=booking_id, payment_method_token=str(form.get("method", "")),
                                              idempotency_key=str(form.get("key", "")),
                                              payment_ticket=ticket if held == booking_id else "")))
    # Whatever billing answered (a failed payment too), the booking page says how it stands. The
    # waiting-room place is kept a little while only: a payment answered pending may still be
    # declined, and the patient then books again with another card without queueing again; but a
    # patient who paid and closed the tab must not hold the next one's place for the whole pass.
    # It goes at once when the booking page shows the booking confirmed.
    await portal_state(request).waiting_room.shorten(request.session.get("ticket"), PAID_PLACE_SECONDS,
                                                     _room_owner(request)[0])
    return redirect(f"/bookings/{booking_id}")


async def _paid_or_paying(request: Request, booking_id: str) -> bool:
    """Whether a hold has a payment under way or made: registration reads it HELD until billing tells
    it, a moment or (in a surge) seconds later."""
    payments = (await services(request).billing.ListPayments(billing_pb2.ListPaymentsRequest(
        booking_id=booking_id))).payments
    return any(p.status in PAID_OR_PAYING for p in payments)


async def _releasable(request: Request, booking_id: str) -> bool:
    """A hold with no payment under way or made: releasing it costs and refunds nothing."""
    if (await _booking(request, booking_id)).status != reg.BOOKING_STATUS_HELD:
        return False
    return not await _paid_or_paying(request, booking_id)


@router.post("/bookings/{booking_id}/cancel")
async def cancel(request: Request, booking_id: str):
    form = await posted_form(request)
    _ = gettext(request)
    release = form.get("release") == "1"
    if release and not await _releasable(request, booking_id):
        # "Release" promised nothing charged: a hold paid (or ended) since its page was loaded is
        # not cancelled by it; the booking page shows where it stands now.
        flash(request, _("This time is no longer a hold awaiting payment, so it was not released. "
                         "The page shows where it stands now."), "error")
        return redirect(f"/bookings/{booking_id}")
    reply = await call(request, f"/bookings/{booking_id}", services(request).registration.CancelBooking(
        reg.CancelBookingRequest(booking_id=booking_id, idempotency_key=str(form.get("key", "")))))
    portal_state(request).availability.forget(("slots", reply.booking.doctor_id))
    await portal_state(request).waiting_room.cancelled(request.session.get("ticket"), _room_owner(request)[0],
                                                       reply.booking)
    if reply.booking.refund_due:
        flash(request, _("Your booking is cancelled. The fee of {amount} is being refunded to your payment method.")
              .format(amount=formatter(request).money(reply.booking.fee_fen)), "success")
    elif release:
        flash(request, _("The time has been released. You can choose another time."), "success")
    else:
        flash(request, _("Your booking is cancelled."), "success")
    return redirect(f"/bookings/{booking_id}")


@router.get("/bookings/{booking_id}/slip.pdf")
async def slip_download(request: Request, booking_id: str):
    if not signed_in(request):
        return sign_in_redirect(request)
    try:
        return slip.pdf_response(*await slip.slip_pdf(services(request), booking_id))
    except ApiError as refused:
        # A page gone out of date (the booking was cancelled meanwhile): the patient's language and the
        # booking as it is now, not the API's English JSON.
        flash(request, translate(request, i18n.REASONS.get(refused.reason, i18n.GENERAL_REFUSAL)), "error")
        return redirect(f"/bookings/{booking_id}")


@router.get("/bookings")
async def my_bookings(request: Request, older: str = ""):
    """The patient's bookings, a page (registration's) at a time: ``older`` is the page token of the
    bookings before the page shown, so a patient treated for years finds every visit, not the last 200."""
    if not signed_in(request):
        return sign_in_redirect(request)
    try:
        reply = await services(request).registration.ListMyBookings(reg.ListMyBookingsRequest(page_token=older))
    except grpc.aio.AioRpcError as exc:
        if not older or exc.code() != grpc.StatusCode.INVALID_ARGUMENT:
            raise
        # A link mangled or from before an upgrade: the first page, not an error page.
        return redirect("/bookings")
    bookings = list(reply.bookings)
    now = dt.datetime.now(dt.timezone.utc)
    # A hold paid reads HELD until billing tells registration: its confirmation is on its way, as its
    # own page says. One call a hold, and a patient has a few at most (the active-booking cap).
    holds = [b.booking_id for b in bookings if b.status == reg.BOOKING_STATUS_HELD]
    confirming = {booking_id for booking_id, paid in zip(holds, await asyncio.gather(
        *(_paid_or_paying(request, booking_id) for booking_id in holds))) if paid}
    # A hold past its time and not paid is over, though registration's worker has not released it yet.
    lapsed = {b.booking_id for b in bookings if _hold_lapsed(b) and b.booking_id not in confirming}
    upcoming = [b for b in bookings if b.status in ACTIVE and b.booking_id not in lapsed
                and dt.datetime.fromisoformat(b.ends_at) > now]
    past = [b for b in bookings if b not in upcoming]
    upcoming.sort(key=lambda b: b.starts_at)
    return render(request, "bookings.html", upcoming=upcoming, past=past, lapsed=lapsed, confirming=confirming,
                  department_names=await _department_names(request), older_page=bool(older),
                  older=reply.next_page_token)


# ---- accounts ------------------------------------------------------------------------------------

@router.get("/signin")
async def sign_in_page(request: Request, next: str = "/"):
    return render(request, "signin.html", next=safe_next(next))


@router.post("/signin")
async def sign_in(request: Request, login: Annotated[str, Form()] = "", password: Annotated[str, Form()] = "",
                  next: Annotated[str, Form()] = "/", csrf: Annotated[str, Form()] = ""):
    if not csrf_ok(request, {"csrf": csrf}):
        raise FormExpired()
    try:
        reply = await request.app.state.sign_in_guard.attempt(client_address(request), lambda: services(
            request).identity.SignIn(identity_pb2.SignInRequest(login=login, password=password,
                                                                device_cookie=device_cookie(request))))
    except grpc.aio.AioRpcError as exc:
        return render(request, "signin.html", status_code=refusal_status(exc), next=safe_next(next), login=login,
                      error=refusal_text(request, exc))
    except AddressRefused as refused:
        return _refused_page(request, "signin.html", refused, translate(
            request, "Too many failed sign-ins from your network. Please try again in %(minutes)s min."),
            next=safe_next(next), login=login)
    account = {"account_id": reply.account.account_id, "display_name": reply.account.display_name,
               "roles": [ROLE_NAMES.get(r, "") for r in reply.account.roles]}
    start_session(request, reply.access_token, reply.expires_in_seconds, account)
    default = home_page(account["roles"])
    return remember_device(request, redirect(safe_next(next, default) if next != "/" else default),
                           reply.device_cookie)


def _refused_page(request: Request, template: str, refused: AddressLimited, message: str, **context):
    """The form again, saying its network must wait (the sign-in or the send guard refused its address)."""
    page = render(request, template, status_code=429, error=message % {"minutes": refused.minutes}, **context)
    page.headers["Retry-After"] = str(refused.retry_after)
    return page


# A code asked for again within its resend wait: the last one is still good, so
# the form to enter it comes next, not a refusal.
CODE_STILL_ON_ITS_WAY = "reset_too_soon"


def _too_many_failures(request: Request) -> str:
    return translate(request, "Too many failed attempts from your network. Please try again in %(minutes)s min.")


def _too_many_codes(request: Request) -> str:
    return translate(request, "Too many verification codes have been requested from your network. "
                              "Please try again in %(minutes)s min.")


@router.post("/signout")
async def sign_out(request: Request):
    await posted_form(request, sign_in=False)
    await _leave_room(request, request.session.get("ticket"))
    token = request.session.get("token")
    if token and request.session.get("token_expires", 0) > time.time():
        # The token goes on the revocation list, so a copy of this cookie is
        # worth nothing either. If identity cannot take it now, the patient is
        # still signed out of this browser; the token lapses with its 15 minutes.
        # Also in the token's last seconds, which the portal's pages no longer
        # use (signed_in's margin): a copy is good until the token's very end.
        try:
            await request.app.state.clients.for_caller(token).identity.SignOut(identity_pb2.SignOutRequest())
        except grpc.aio.AioRpcError as exc:
            log.warning("sign-out not recorded by identity", extra={"code": exc.code().name})
    lang = request.session.get("lang")
    request.session.clear()
    if lang:
        request.session["lang"] = lang
    flash(request, translate(request, "You have signed out."), "success")
    return redirect("/")


@router.get("/signup")
async def sign_up_page(request: Request, next: str = "/"):
    return render(request, "signup.html", next=safe_next(next))


async def _ask_for_code(request: Request, ask: Callable[[], Awaitable[object]], *, form: str, confirm: str,
                       sent: str, sent_before: str, **context) -> HTMLResponse:
    """The first step of a sign-up or a reset: ``ask`` makes identity text a code (under the
    address's send limit), and the form to enter it comes next, also when a code was sent a
    moment ago (a second click, the page sent again: that code stands). Any other refusal
    shows ``form`` again."""
    try:
        await request.app.state.send_guard.attempt(client_address(request), ask)
    except grpc.aio.AioRpcError as exc:
        if refusal_reason(exc) != CODE_STILL_ON_ITS_WAY:
            return render(request, form, status_code=refusal_status(exc), error=refusal_text(request, exc),
                          field=refusal_field(exc), **context)
        flash(request, translate(request, sent_before), "info")
    except TooManyCodes as refused:
        return _refused_page(request, form, refused, _too_many_codes(request), **context)
    else:
        flash(request, translate(request, sent), "info")
    return render(request, confirm, key=form_key(), **context)


@router.post("/signup/code")
async def request_sign_up_code(request: Request, phone: Annotated[str, Form()] = "",
                               next: Annotated[str, Form()] = "/", csrf: Annotated[str, Form()] = ""):
    """The first step: a code to the phone, the same answer whether or not it has an account (its text says)."""
    if not csrf_ok(request, {"csrf": csrf}):
        raise FormExpired()
    return await _ask_for_code(
        request, lambda: services(request).identity.RequestSignUpCode(identity_pb2.RequestSignUpCodeRequest(
            phone=phone)),
        form="signup.html", confirm="signup_confirm.html", next=safe_next(next), phone=phone,
        sent=i18n.N_("A verification code is on its way to this number."),
        sent_before=i18n.N_("A code was sent to this number a moment ago: enter it below."))


@router.post("/signup")
async def sign_up(request: Request, phone: Annotated[str, Form()] = "", code: Annotated[str, Form()] = "",
                  password: Annotated[str, Form()] = "", display_name: Annotated[str, Form()] = "",
                  key: Annotated[str, Form()] = "", next: Annotated[str, Form()] = "/",
                  csrf: Annotated[str, Form()] = ""):
    if not csrf_ok(request, {"csrf": csrf}):
        raise FormExpired()
    identity = services(request).identity
    again = {"next": safe_next(next), "key": key or form_key(), "phone": phone, "display_name": display_name}
    try:
        await request.app.state.sign_in_guard.attempt(client_address(request), lambda: identity.SignUpPatient(
            identity_pb2.SignUpPatientRequest(phone=phone, code=code, password=password, display_name=display_name,
                                              idempotency_key=key)), misses=SIGN_UP_MISSES)
        reply = await identity.SignIn(identity_pb2.SignInRequest(login=phone, password=password))
    except grpc.aio.AioRpcError as exc:
        if refusal_reason(exc) == "phone_taken":
            # Only the phone's holder gets here (with its code): the number has an account, and the
            # code they were texted sets a new password.
            flash(request, translate(request, "This number already has an account. Choose a new password with "
                                              "the code you received, or sign in."), "info")
            return render(request, "reset_confirm.html", phone=phone, code=code, key=form_key())
        return render(request, "signup_confirm.html", status_code=refusal_status(exc), error=refusal_text(request, exc),
                      field=refusal_field(exc), **again)
    except AddressRefused as refused:
        return _refused_page(request, "signup_confirm.html", refused, _too_many_failures(request), **again)
    start_session(request, reply.access_token, reply.expires_in_seconds,
                  {"display_name": reply.account.display_name, "roles": ["patient"]})
    flash(request, translate(request, "Welcome! Your account is ready."), "success")
    return remember_device(request, redirect(safe_next(next)), reply.device_cookie)


@router.get("/reset")
async def reset_page(request: Request):
    return render(request, "reset_request.html")


@router.post("/reset")
async def request_reset(request: Request, phone: Annotated[str, Form()] = "", csrf: Annotated[str, Form()] = ""):
    if not csrf_ok(request, {"csrf": csrf}):
        raise FormExpired()
    return await _ask_for_code(
        request, lambda: services(request).identity.RequestPasswordReset(identity_pb2.RequestPasswordResetRequest(
            phone=phone)),
        form="reset_request.html", confirm="reset_confirm.html", phone=phone,
        sent=i18n.N_("If an account uses this number, a verification code is on its way."),
        sent_before=i18n.N_("If an account uses this number, a code was sent to it a moment ago: enter it below."))


@router.post("/reset/confirm")
async def confirm_reset(request: Request, phone: Annotated[str, Form()] = "", code: Annotated[str, Form()] = "",
                        new_password: Annotated[str, Form()] = "", key: Annotated[str, Form()] = "",
                        csrf: Annotated[str, Form()] = ""):
    if not csrf_ok(request, {"csrf": csrf}):
        raise FormExpired()
    try:
        reset = await request.app.state.sign_in_guard.attempt(
            client_address(request), lambda: services(request).identity.ResetPassword(
                identity_pb2.ResetPasswordRequest(phone=phone, code=code, new_password=new_password,
                                                  idempotency_key=key)), misses=RESET_MISSES)
    except grpc.aio.AioRpcError as exc:
        # The same key again: a refused reset left it free.
        return render(request, "reset_confirm.html", status_code=refusal_status(exc), phone=phone, key=key or form_key(),
                      error=refusal_text(request, exc), field=refusal_field(exc))
    except AddressRefused as refused:
        return _refused_page(request, "reset_confirm.html", refused, _too_many_failures(request), phone=phone,
                             key=key or form_key())
    flash(request, translate(request, "Your password has been changed. Please sign in."), "success")
    return remember_device(request, redirect("/signin"), reset.device_cookie)
