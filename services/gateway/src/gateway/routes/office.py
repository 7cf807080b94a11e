"""The registration office: schedules, sessions, check-in (registration)."""
from __future__ import annotations

import datetime as dt

from fastapi import APIRouter

from tuoguan.registration.v1 import registration_pb2

from ..convert import date_text, fill, to_dict
from . import API_PREFIX
from ..deps import CallerServices, IdempotencyKey
from ..models import (
    Booking, PublishScheduleReply, PublishScheduleRequest, SessionBookingList, SessionList, SessionTemplate,
    SessionTemplateList, Suspend, SuspendSessionReply,
)

router = APIRouter(prefix=API_PREFIX + "/office", tags=["registration office"])


@router.get("/sessions", response_model=SessionList, summary="Sessions of a day, with booked, held and free places")
async def sessions(services: CallerServices, service_date: dt.date | None = None, department_id: str = "",
                   doctor_id: str = ""):
    return to_dict(await services.registration.ListSessions(registration_pb2.ListSessionsRequest(
        service_date=date_text(service_date), department_id=department_id, doctor_id=doctor_id)))


@router.get("/sessions/{session_id}/bookings", response_model=SessionBookingList,
            summary="A session and every booking of it in any status, by slot start and queue number")
async def session_bookings(session_id: str, services: CallerServices):
    return to_dict(await services.registration.ListSessionBookings(
        registration_pb2.ListSessionBookingsRequest(session_id=session_id)))


@router.post("/session-templates", status_code=201, response_model=SessionTemplate,
             summary="Create or change a doctor's weekly session template")
async def put_session_template(body: SessionTemplate, key: IdempotencyKey, services: CallerServices):
    request = registration_pb2.PutSessionTemplateRequest(idempotency_key=key)
    fill(request.template, body.model_dump(mode="json"))
    return to_dict((await services.registration.PutSessionTemplate(request)).template)


@router.get("/session-templates", response_model=SessionTemplateList)
async def session_templates(services: CallerServices, doctor_id: str = ""):
    return to_dict(await services.registration.ListSessionTemplates(
        registration_pb2.ListSessionTemplatesRequest(doctor_id=doctor_id)))


@router.post("/schedule/publish", response_model=PublishScheduleReply,
             summary="Turn templates into dated sessions and slots")
async def publish_schedule(body: PublishScheduleRequest, services: CallerServices):
    request = fill(registration_pb2.PublishScheduleRequest(), body.model_dump(mode="json"))
    return to_dict(await services.registration.PublishSchedule(request))


@router.post("/sessions/{session_id}/suspend", response_model=SuspendSessionReply,
             summary="Suspend a session; its bookings are cancelled and refunds follow")
async def suspend_session(session_id: str, body: Suspend, key: IdempotencyKey, services: CallerServices):
    return to_dict(await services.registration.SuspendSession(registration_pb2.SuspendSessionRequest(
        session_id=session_id, reason=body.reason, idempotency_key=key)))


@router.post("/bookings/{booking_id}/check-in", response_model=Booking)
async def check_in(booking_id: str, services: CallerServices):
    reply = await services.registration.CheckInBooking(registration_pb2.CheckInBookingRequest(booking_id=booking_id))
    return to_dict(reply.booking)


@router.post("/bookings/{booking_id}/no-show", response_model=Booking)
async def no_show(booking_id: str, services: CallerServices):
    reply = await services.registration.MarkNoShow(registration_pb2.MarkNoShowRequest(booking_id=booking_id))
    return to_dict(reply.booking)
