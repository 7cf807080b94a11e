"""The registration office's console: the day view, a session's bookings
(check in, no-show, cancel), suspending a session, session templates and publishing."""
from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from tuoguan.registration.v1 import registration_pb2 as reg
from tuoguan_common.errors import InvalidArgument, calendar_date

from .i18n import OFFICE_BOOKING_REASONS, hospital_today
from .web import (
    PortalRoute, call, check_field_text, flash, form_key, formatter, gettext, has_role, portal_state, posted_form,
    redirect, render, safe_next, services, sign_in_redirect, signed_in, translate,
)

router = APIRouter(prefix="/office", route_class=PortalRoute, include_in_schema=False,
                   default_response_class=HTMLResponse)
OFFICE_ROLES = ("registration_office", "admin")
# The furthest a publication reaches: registration's limit (schedule.MAX_DAYS_AHEAD; tests/test_copied_limits.py
# keeps the two equal), the form's max.
MAX_DAYS_AHEAD = 60


def _refused(request: Request) -> HTMLResponse | None:
    """Sign-in for strangers, a clear 403 for patients; None for the office."""
    if not signed_in(request):
        return sign_in_redirect(request)
    if not has_role(request, *OFFICE_ROLES):
        return render(request, "error.html", status_code=403,
                      message=translate(request, "This page is for the registration office."))
    return None


@router.get("")
async def day_view(request: Request, date: str = "", department_id: str = ""):
    if (refusal := _refused(request)) is not None:
        return refusal
    try:
        # The dates registration accepts (a typo like 9999-12-31 would overflow the day links).
        day = calendar_date(date, "date") or hospital_today()
    except InvalidArgument:
        day = hospital_today()
    registration = services(request).registration
    departments = (await registration.ListDepartments(reg.ListDepartmentsRequest())).departments
    sessions = (await registration.ListSessions(reg.ListSessionsRequest(
        service_date=day.isoformat(), department_id=department_id))).sessions
    by_department = {d.department_id: d for d in departments}
    # The places the day offers: a suspended session takes no bookings, so
    # none of its capacity counts (registration reports it 0 free).
    open_sessions = [s for s in sessions if s.status != reg.SESSION_STATUS_SUSPENDED]
    totals = {k: sum(getattr(s, k) for s in open_sessions) for k in ("capacity", "booked", "held", "free")}
    return render(request, "office/day.html", day=day, departments=departments, department_id=department_id,
                  sessions=sorted(sessions, key=lambda s: (s.department_id, s.starts_at, s.doctor_name)),
                  by_department=by_department, totals=totals,
                  previous_day=(day - dt.timedelta(days=1)).isoformat(), next_day=(day + dt.timedelta(days=1)).isoformat())


@router.get("/sessions/{session_id}")
async def session_page(request: Request, session_id: str):
    if (refusal := _refused(request)) is not None:
        return refusal
    reply = await services(request).registration.ListSessionBookings(
        reg.ListSessionBookingsRequest(session_id=session_id))
    # Registration checks a visit in on its day only (the hospital's date) and never in a suspended
    # session, marks a no-show only once the visit has started, and lets the office cancel only before
    # it: a button it would always refuse is not offered.
    today = hospital_today().isoformat()
    now = dt.datetime.now(dt.timezone.utc)
    bookings = list(reply.bookings)
    return render(request, "office/session.html", session=reply.session, bookings=bookings,
                  key=form_key(), check_in_open=reply.session.service_date == today
                  and reply.session.status != reg.SESSION_STATUS_SUSPENDED,
                  no_show_open=reply.session.service_date <= today,
                  started={b.booking_id for b in bookings if b.starts_at and dt.datetime.fromisoformat(b.starts_at) <= now})


@router.post("/sessions/{session_id}/suspend")
async def suspend(request: Request, session_id: str):
    if (refusal := _refused(request)) is not None:
        return refusal
    form = await posted_form(request)
    reply = await call(request, f"/office/sessions/{session_id}", services(request).registration.SuspendSession(
        reg.SuspendSessionRequest(session_id=session_id, reason=str(form.get("reason", "")),
                                  idempotency_key=str(form.get("key", "")))))
    portal_state(request).availability.forget(("slots", reply.session.doctor_id))
    _ = gettext(request)
    # Only a paid booking is refunded: an unpaid hold, or a free clinic's booking, has nothing to give back.
    cancelled = len(reply.cancelled_bookings)
    refunded = sum(1 for b in reply.cancelled_bookings if b.refund_due)
    if not cancelled:
        told = _("The session is suspended. It had no bookings to cancel.")
    elif refunded:
        told = _("The session is suspended. Bookings cancelled: {count}, of which {refunded} paid: their fees are "
                 "being refunded.").format(count=cancelled, refunded=refunded)
    else:
        told = _("The session is suspended. Bookings cancelled: {count}; none was paid, so nothing is refunded.") \
            .format(count=cancelled)
    flash(request, told, "success")
    return redirect(f"/office/sessions/{session_id}")


@router.post("/bookings/{booking_id}/{action}")
async def booking_action(request: Request, booking_id: str, action: str):
    if (refusal := _refused(request)) is not None:
        return refusal
    form = await posted_form(request)
    back = safe_next(form.get("back"), "/office")
    registration = services(request).registration
    _ = gettext(request)
    if action == "check-in":
        reply = await call(request, back, registration.CheckInBooking(reg.CheckInBookingRequest(booking_id=booking_id)),
                           OFFICE_BOOKING_REASONS)
        flash(request, _("Booking {number} checked in.").format(number=reply.booking.booking_number), "success")
    elif action == "cancel":
        # The window where patients past the online cut-off are sent: registration
        # lets the office cancel until the visit is checked in or marked as a no-show.
        reply = await call(request, back, registration.CancelBooking(reg.CancelBookingRequest(
            booking_id=booking_id, idempotency_key=str(form.get("key", "")))), OFFICE_BOOKING_REASONS)
        portal_state(request).availability.forget(("slots", reply.booking.doctor_id))
        if reply.booking.refund_due:
            flash(request, _("Booking {number} is cancelled: its fee of {amount} is being refunded.").format(
                number=reply.booking.booking_number, amount=formatter(request).money(reply.booking.fee_fen)),
                "success")
        else:
            flash(request, _("Booking {number} is cancelled.").format(number=reply.booking.booking_number),
                  "success")
    elif action == "no-show":
        reply = await call(request, back, registration.MarkNoShow(reg.MarkNoShowRequest(booking_id=booking_id)),
                           OFFICE_BOOKING_REASONS)
        flash(request, _("Booking {number} marked as a no-show.").format(number=reply.booking.booking_number),
              "success")
    else:
        return render(request, "error.html", status_code=404, message=_("We could not find that."))
    return redirect(back)


@router.get("/templates")
async def templates_page(request: Request, department_id: str = ""):
    if (refusal := _refused(request)) is not None:
        return refusal
    registration = services(request).registration
    departments = list((await registration.ListDepartments(reg.ListDepartmentsRequest())).departments)
    department_id = department_id or (departments[0].department_id if departments else "")
    doctors = list((await registration.ListDoctors(reg.ListDoctorsRequest(department_id=department_id))).doctors)
    templates = list((await registration.ListSessionTemplates(reg.ListSessionTemplatesRequest())).templates)
    ours = {d.doctor_id for d in doctors}
    return render(request, "office/templates.html", departments=departments, department_id=department_id,
                  doctors=doctors, doctor_names={d.doctor_id: d.name for d in doctors},
                  templates=sorted((t for t in templates if t.doctor_id in ours),
                                   key=lambda t: (t.doctor_id, t.weekday, t.period)),
                  key=form_key(), MAX_DAYS_AHEAD=MAX_DAYS_AHEAD)


@router.post("/templates")
async def save_template(request: Request):
    if (refusal := _refused(request)) is not None:
        return refusal
    form = await posted_form(request)
    _ = gettext(request)
    back = f"/office/templates?department_id={form.get('department_id', '')}"
    try:
        template = reg.SessionTemplate(
            template_id=str(form.get("template_id", "")), doctor_id=str(form.get("doctor_id", "")),
            weekday=int(form.get("weekday") or 0), period=int(form.get("period") or 0),
            start_time=str(form.get("start_time", "")), end_time=str(form.get("end_time", "")),
            slot_minutes=int(form.get("slot_minutes") or 0), capacity_per_slot=int(form.get("capacity_per_slot") or 0),
            active=form.get("active") == "on")
    except ValueError:
        flash(request, _("Please enter whole numbers for the slot length and the capacity."), "error")
        return redirect(back)
    await call(request, back, services(request).registration.PutSessionTemplate(reg.PutSessionTemplateRequest(
        template=template, idempotency_key=str(form.get("key", "")))))
    flash(request, _("The session template is saved. Publish the schedule to open its slots."), "success")
    return redirect(back)


@router.post("/schedule/publish")
async def publish(request: Request):
    if (refusal := _refused(request)) is not None:
        return refusal
    form = await posted_form(request)
    back = safe_next(form.get("back"), "/office/templates")
    try:
        # Not a whole number, or one too large for the proto's int32: ValueError either way.
        days_ahead = int(form.get("days_ahead") or 14)
        # Registration reads 0 as its configured horizon (a typed 0 published 14 days), and refuses more
        # than its limit: only what the form offers is sent.
        if not 1 <= days_ahead <= MAX_DAYS_AHEAD:
            raise ValueError(days_ahead)
        publishing = reg.PublishScheduleRequest(days_ahead=days_ahead, release_now=form.get("release_now") == "on")
    except ValueError:
        flash(request, check_field_text(request, "days_ahead"), "error")
        return redirect(back)
    reply = await call(request, back, services(request).registration.PublishSchedule(publishing))
    flash(request, translate(request, "Published: {sessions} new sessions with {slots} slots.").format(
        sessions=reply.sessions_created, slots=reply.slots_created), "success")
    return redirect(back)
