"""Registration's gRPC API: parse the request, check the caller, call the
store, reply. ``python -m registration.api`` runs it."""
from __future__ import annotations

import contextlib
import datetime as dt
import re
import time
from collections.abc import Iterator
from typing import Callable

import grpc
from tuoguan.registration.v1 import registration_pb2 as pb
from tuoguan.registration.v1 import registration_pb2_grpc as pb_grpc
from tuoguan_common import api_main, grpc_server, metrics, paging, telemetry
from tuoguan_common.admission import LatencyAdmission
from tuoguan_common.auth import ADMIN, PATIENT, REGISTRATION_OFFICE, SERVICE, Principal, current_principal
from tuoguan_common.config import Settings
from tuoguan_common.db import Database
from tuoguan_common.errors import TuoguanError, calendar_date, entity_id, idempotency_key, require, text
from tuoguan_common.group_commit import GroupCommit
from tuoguan_common.outbox import as_parsed, utcnow

from . import messages
from .config import RegistrationConfig
from .domain import schedule
from .domain.model import BookingStatus
from .exceptions import HoldsBusy, InvalidArgument, not_found
from .migrate import MIGRATIONS_DIR
from .publishing import publish_schedule
from .store import HoldRequest, Idempotent, Store

OFFICE = (REGISTRATION_OFFICE, ADMIN)
# The longest range of days one ListSlots call may ask for.
MAX_SEARCH_DAYS = 31
# The most of a patient's bookings one ListMyBookings page holds (and gives when asked for no number).
MAX_BOOKINGS_PAGE = 200
# The office's word to the patients of a suspended session: required, since
# it is all they are told of why (spaces alone are none). The portal's form
# allows as many characters (office/session.html).
MAX_REASON_LENGTH = 200
_HH_MM = re.compile(r"^\d{2}:\d{2}$")


def _time(value: str, field: str) -> dt.time:
    value = require(value, field)
    try:
        if _HH_MM.match(value):
            return dt.time(int(value[:2]), int(value[3:]))
    except ValueError:
        pass
    raise InvalidArgument(field, "must be a time of day as HH:MM")



@contextlib.contextmanager
def _counted_hold() -> Iterator[None]:
    """Counts each hold attempt by its outcome (the error's reason code)."""
    try:
        yield
    except TuoguanError as exc:
        metrics.REGISTRATION_HOLDS.labels(exc.reason).inc()
        raise
    metrics.REGISTRATION_HOLDS.labels("held").inc()


def _template_fields(template: pb.SessionTemplate) -> dict:
    fields = {
        "template_id": entity_id(template.template_id, "template.template_id", required=False),
        "doctor_id": entity_id(template.doctor_id, "template.doctor_id"),
        "weekday": template.weekday,
        "period": messages.PERIOD_FROM_PROTO.get(template.period),
        "start_time": _time(template.start_time, "template.start_time"),
        "end_time": _time(template.end_time, "template.end_time"),
        "slot_minutes": template.slot_minutes,
        "capacity_per_slot": template.capacity_per_slot,
        "active": template.active,
    }
    if not 1 <= template.weekday <= 7:
        raise InvalidArgument("template.weekday", "must be an ISO weekday, 1 (Monday) to 7 (Sunday)")
    if fields["period"] is None:
        raise InvalidArgument("template.period", "is required")
    problem = schedule.template_problem(fields["start_time"], fields["end_time"], template.slot_minutes,
                                        template.capacity_per_slot)
    if problem is not None:
        raise InvalidArgument(*problem)
    return fields


class RegistrationServicer(pb_grpc.RegistrationServiceServicer):
    def __init__(self, store: Store, config: RegistrationConfig, clock: Callable[[], dt.datetime] = utcnow):
        self.store = store
        self.config = config
        self.clock = clock
        # The surge's holds share transactions (see the store's hold_slots).
        self.holds: GroupCommit[HoldRequest, pb.HoldSlotResponse] = GroupCommit(
            self._write_holds, max_batch=config.hold_batch_max)
        self.booking_reads: GroupCommit[str, dict | None] = GroupCommit(store.get_bookings,
                                                                        max_batch=config.hold_batch_max)
        # Past capacity, patients are turned away at the hold, before anything
        # is held, rather than at the payment after it.
        self.hold_admission = LatencyAdmission(
            "HoldSlot", config.hold_latency_target, core_wait_limit=config.hold_core_wait_limit,
            core_queue=lambda: grpc_server.core_queue("registration"))

    def _write_holds(self, batch: list[HoldRequest]) -> list:
        metrics.REGISTRATION_HOLDS_PER_TRANSACTION.observe(len(batch))
        return self.store.hold_slots(batch, self.config.booking, self.clock())

    def _today(self) -> dt.date:
        return self.config.release.local_date(self.clock())

    def _booking_for(self, principal: Principal, booking_id: str, *roles: str):
        """The booking, if the caller owns it or has one of the roles."""
        row = self.store.get_booking(booking_id)
        if row is None:
            raise not_found("booking")
        principal.require_owner_or(row["patient_id"], *roles)
        return row

    # Public search.

    def ListDepartments(self, request, context):
        return pb.ListDepartmentsResponse(departments=[messages.department(r) for r in self.store.list_departments()])

    def ListDoctors(self, request, context):
        department_id = entity_id(request.department_id, "department_id", required=False)
        rows = self.store.list_doctors(department_id)
        if not rows:
            self._known(department_id=department_id)
        return pb.ListDoctorsResponse(doctors=[messages.doctor(r) for r in rows])

    def _known(self, *, department_id: str | None = None, doctor_id: str | None = None) -> None:
        """NOT_FOUND for a department or doctor not in the catalogue: a search that found
        nothing says whether there was nothing to find (a mistyped id is no empty day).
        Asked only of an empty answer, so a search that finds something costs nothing more."""
        unknown = self.store.unknown(department_id, doctor_id)
        if unknown:
            raise not_found(unknown)

    def ListSlots(self, request, context):
        department_id = entity_id(request.department_id, "department_id", required=False)
        doctor_id = entity_id(request.doctor_id, "doctor_id", required=False)
        if department_id is None and doctor_id is None:
            raise InvalidArgument("department_id", "give a department_id or a doctor_id")
        first = calendar_date(request.from_date, "from_date") or self._today()
        # Without a to_date, the booking horizon, but no more than one search may
        # cover: a horizon set longer (REGISTRATION_DAYS_AHEAD) must not refuse a
        # search on a field its caller never gave.
        last = calendar_date(request.to_date, "to_date") or first + dt.timedelta(
            days=min(self.config.release.days_ahead, MAX_SEARCH_DAYS - 1))
        if last < first:
            # Without a from_date the search starts today: say so, not name a field never given.
            raise InvalidArgument("to_date", "must not be before from_date" if request.from_date.strip()
                                  else f"must not be before today ({first.isoformat()}) when from_date is not given")
        if (last - first).days >= MAX_SEARCH_DAYS:
            raise InvalidArgument("to_date", f"a search covers at most {MAX_SEARCH_DAYS} days")
        rows = self.store.list_slots(department_id=department_id, doctor_id=doctor_id, first=first, last=last,
                                     now=self.clock(), only_available=request.only_available)
        if not rows:
            self._known(department_id=department_id, doctor_id=doctor_id)
        return pb.ListSlotsResponse(slots=[messages.slot(r) for r in rows])

    # Patients' bookings.

    async def HoldSlot(self, request, context):
        # A coroutine, unlike the other methods: the surge's hot path pays for
        # no thread per call, only one per batch of holds.
        with _counted_hold():
            patient = current_principal().require(PATIENT)
            slot_id = entity_id(request.slot_id, "slot_id")
            key = idempotency_key(request.idempotency_key)
            idem = Idempotent.of("hold", patient.subject, key, as_parsed(request, slot_id=slot_id, idempotency_key=key),
                                 pb.HoldSlotResponse)
            if not self.hold_admission.admit():
                raise HoldsBusy()
            self.hold_admission.started()
            started = time.monotonic()
            try:
                response = await self.holds.submit(HoldRequest(idem, patient.subject, slot_id, telemetry.inject()))
            finally:
                self.hold_admission.finished(time.monotonic() - started)
            # Signed afresh on each answer (a replay gets the same ticket while
            # its booking is held): the answer kept under the key stays what
            # the batch wrote.
            if self.config.payment_tickets is not None and response.booking.status == pb.BOOKING_STATUS_HELD \
                    and (not idem.replayed or await self._still_held(response.booking.booking_id)):
                response.payment_ticket = self.config.payment_tickets.issue(messages.held_booking(response.booking))
            return response

    async def _still_held(self, booking_id: str) -> bool:
        """Whether a replayed hold's booking is held yet. A replay gives the first
        answer, HELD, even once the booking is cancelled; with a ticket, billing
        would take the payment, and the saga refund it. Without one, billing
        asks registration and refuses it."""
        row = await self.booking_reads.submit(booking_id)
        return row is not None and row["status"] == BookingStatus.HELD

    async def GetBooking(self, request, context):
        # A coroutine: billing asks for every booking it is paid for, so in a
        # surge these reads share queries as the holds share transactions.
        principal = current_principal()
        row = await self.booking_reads.submit(entity_id(request.booking_id, "booking_id"))
        if row is None:
            raise not_found("booking")
        principal.require_owner_or(row["patient_id"], *OFFICE, SERVICE)
        return pb.GetBookingResponse(booking=messages.booking(row))

    def ListMyBookings(self, request, context):
        patient = current_principal().require(PATIENT)
        page = paging.page("bookings", request.page_size, request.page_token, default=MAX_BOOKINGS_PAGE,
                           maximum=MAX_BOOKINGS_PAGE)
        rows, next_page_token = self.store.list_patient_bookings(patient.subject, page)
        return pb.ListMyBookingsResponse(bookings=[messages.booking(r) for r in rows], next_page_token=next_page_token)

    def CancelBooking(self, request, context):
        principal = current_principal()
        booking_id = entity_id(request.booking_id, "booking_id")
        key = idempotency_key(request.idempotency_key)
        owner = self._booking_for(principal, booking_id, *OFFICE)["patient_id"]
        by_office = principal.subject != owner
        reason = "registration_office" if by_office else "patient"
        idem = Idempotent.of("cancel", principal.subject, key,
                             as_parsed(request, booking_id=booking_id, idempotency_key=key), pb.CancelBookingResponse)
        # The office is where patients past the cut-off are sent: it is not bound by it.
        response = self.store.cancel_booking(idem, booking_id, reason, self.config.booking, self.clock(),
                                             by_office=by_office)
        if not idem.replayed:
            metrics.REGISTRATION_BOOKINGS_CANCELLED.labels(reason).inc()
        return response

    # The registration office.

    def PutSessionTemplate(self, request, context):
        office = current_principal().require(*OFFICE)
        fields = _template_fields(request.template)
        key = idempotency_key(request.idempotency_key)
        # Fingerprinted as parsed, as every other write: a retry that spells an
        # id in capitals or pads a time is the same request, not a reused key.
        parsed = as_parsed(request, idempotency_key=key)
        parsed.template.template_id = fields["template_id"] or ""
        parsed.template.doctor_id = fields["doctor_id"]
        parsed.template.start_time = fields["start_time"].strftime("%H:%M")
        parsed.template.end_time = fields["end_time"].strftime("%H:%M")
        idem = Idempotent.of("template", office.subject, key, parsed, pb.PutSessionTemplateResponse)
        return self.store.put_template(idem, fields)

    def ListSessionTemplates(self, request, context):
        current_principal().require(*OFFICE)
        doctor_id = entity_id(request.doctor_id, "doctor_id", required=False)
        rows = self.store.list_templates(doctor_id)
        if not rows:
            self._known(doctor_id=doctor_id)
        return pb.ListSessionTemplatesResponse(templates=[messages.template(r) for r in rows])

    def PublishSchedule(self, request, context):
        current_principal().require(*OFFICE)
        if not 0 <= request.days_ahead <= schedule.MAX_DAYS_AHEAD:
            raise InvalidArgument("days_ahead", f"must be between 0 and {schedule.MAX_DAYS_AHEAD}")
        sessions, slots = publish_schedule(self.store, self.config.release, self.clock(),
                                           days_ahead=request.days_ahead, release_now=request.release_now)
        return pb.PublishScheduleResponse(sessions_created=sessions, slots_created=slots)

    def ListSessions(self, request, context):
        current_principal().require(*OFFICE)
        day = calendar_date(request.service_date, "service_date") or self._today()
        department_id = entity_id(request.department_id, "department_id", required=False)
        doctor_id = entity_id(request.doctor_id, "doctor_id", required=False)
        rows = self.store.list_sessions(day, department_id, self.clock(), doctor_id)
        if not rows:
            self._known(department_id=department_id, doctor_id=doctor_id)
        return pb.ListSessionsResponse(sessions=[messages.session(r) for r in rows])

    def ListSessionBookings(self, request, context):
        current_principal().require(*OFFICE)
        found = self.store.session_bookings(entity_id(request.session_id, "session_id"), self.clock())
        if found is None:
            raise not_found("session")
        session, rows = found
        return pb.ListSessionBookingsResponse(session=messages.session(session),
                                              bookings=[messages.booking(r) for r in rows])

    def SuspendSession(self, request, context):
        office = current_principal().require(*OFFICE)
        session_id = entity_id(request.session_id, "session_id")
        reason = text(request.reason, "reason", MAX_REASON_LENGTH)
        key = idempotency_key(request.idempotency_key)
        idem = Idempotent.of("suspend", office.subject, key,
                             as_parsed(request, session_id=session_id, reason=reason, idempotency_key=key),
                             pb.SuspendSessionResponse)
        response = self.store.suspend_session(idem, session_id, reason, self.clock())
        if not idem.replayed and response.cancelled_bookings:
            metrics.REGISTRATION_BOOKINGS_CANCELLED.labels("session_suspended").inc(len(response.cancelled_bookings))
        return response

    def CheckInBooking(self, request, context):
        current_principal().require(*OFFICE)
        row = self.store.check_in(entity_id(request.booking_id, "booking_id"), self._today(), self.clock())
        return pb.CheckInBookingResponse(booking=messages.booking(row))

    def MarkNoShow(self, request, context):
        current_principal().require(*OFFICE)
        row = self.store.mark_no_show(entity_id(request.booking_id, "booking_id"), self.clock())
        return pb.MarkNoShowResponse(booking=messages.booking(row))


SERVICE_NAME = pb.DESCRIPTOR.services_by_name["RegistrationService"].full_name


def register(server: grpc.Server, settings: Settings | None, database: Database,
             config: RegistrationConfig | None = None) -> list[str]:
    """Adds the servicer to ``server``; returns the full service names for health and reflection."""
    servicer = RegistrationServicer(Store(database), config or RegistrationConfig.from_env())
    pb_grpc.add_RegistrationServiceServicer_to_server(servicer, server)
    return [SERVICE_NAME]


def main() -> None:
    api_main.run("registration", register, migrations_dir=MIGRATIONS_DIR)


if __name__ == "__main__":
    main()
