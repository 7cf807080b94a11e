"""Stand-ins for registration, billing and ticketing with just the RPCs the gateway's
tests call. They authorise the way the real services do (through the same
server interceptor and tuoguan_common.auth), so the gateway's error mapping
is tested against real statuses and trailing metadata. The lead's end-to-end
tests run the real services."""
from __future__ import annotations

import datetime as dt
import itertools
import json

from ticketing.domain.worklog import refuse_before_opening, worklog_grade
from ticketing.exceptions import AssigneeNotAnEngineer, StaffDirectoryUnavailable
from tuoguan.billing.v1 import billing_pb2 as bill
from tuoguan.billing.v1 import billing_pb2_grpc
from tuoguan.registration.v1 import registration_pb2 as reg
from tuoguan.registration.v1 import registration_pb2_grpc
from tuoguan.ticketing.v1 import ticketing_pb2 as tkt
from tuoguan.ticketing.v1 import ticketing_pb2_grpc
from tuoguan_common import auth
from tuoguan_common.roles import GRADES
from tuoguan_common.errors import (AlreadyExists, FailedPrecondition, InvalidArgument, NotFound, PermissionDenied, Unavailable,
                                   entity_id, require)

DEPARTMENTS = [
    reg.Department(department_id="dep-cardio", code="CARD", name="心内科", name_en="Cardiology"),
    reg.Department(department_id="dep-peds", code="PEDS", name="儿科", name_en="Paediatrics"),
]
DOCTORS = [reg.Doctor(doctor_id="doc-wang", department_id="dep-cardio", name="王建华",
                      title=reg.DOCTOR_TITLE_CHIEF, fee_fen=5000, speciality="心律失常", speciality_en="Arrhythmia"),
           # Her standard fee is 10.00, but one of her slots is a free clinic's.
           reg.Doctor(doctor_id="doc-li", department_id="dep-peds", name="李芳",
                      title=reg.DOCTOR_TITLE_ATTENDING, fee_fen=1000)]


class FakeRegistration(registration_pb2_grpc.RegistrationServiceServicer):
    def __init__(self):
        self.bookings: dict[str, reg.Booking] = {}
        # Session ids (as ListSessionBookings is asked them) the office has suspended.
        self.suspended: set[str] = set()
        self.requests: list[tuple[str, object, dict[str, str]]] = []
        self._numbers = itertools.count(1)

    def _seen(self, name, request, context):
        self.requests.append((name, request, dict(context.invocation_metadata())))

    def last(self, name):
        return next(r for r in reversed(self.requests) if r[0] == name)

    def _booking(self, booking_id, *roles):
        booking = self.bookings.get(booking_id)
        if booking is None:
            raise NotFound("no such booking", reason="booking_not_found")
        auth.current_principal().require_owner_or(booking.patient_id, *roles)
        return booking

    def ListDepartments(self, request, context):
        self._seen("ListDepartments", request, context)
        return reg.ListDepartmentsResponse(departments=DEPARTMENTS)

    def ListDoctors(self, request, context):
        if request.department_id not in {d.department_id for d in DEPARTMENTS}:
            raise NotFound("no such department", reason="department_not_found")
        return reg.ListDoctorsResponse(doctors=[d for d in DOCTORS if d.department_id == request.department_id])

    def ListSlots(self, request, context):
        self._seen("ListSlots", request, context)
        day = request.from_date or "2026-12-01"
        if request.doctor_id == "doc-li":
            return reg.ListSlotsResponse(slots=[reg.Slot(
                slot_id=f"slot-li-{n}", doctor_id="doc-li", service_date=day, starts_at=f"{day}T{hour}:00:00+08:00",
                ends_at=f"{day}T{hour}:30:00+08:00", capacity=5, remaining=3, fee_fen=fee, period=reg.PERIOD_MORNING)
                for n, hour, fee in ((1, "08", 1000), (2, "09", 0))])
        return reg.ListSlotsResponse(slots=[reg.Slot(
            slot_id="slot-1", doctor_id="doc-wang", service_date=day, starts_at=f"{day}T08:00:00+08:00",
            ends_at=f"{day}T08:15:00+08:00", capacity=5, remaining=2, fee_fen=5000, period=reg.PERIOD_MORNING)])

    def HoldSlot(self, request, context):
        self._seen("HoldSlot", request, context)
        patient = auth.current_principal().require(auth.PATIENT)
        if request.slot_id.startswith("refuse:"):
            # A rule's refusal with the reason the test names: how the portal words each one.
            raise FailedPrecondition("refused", reason=request.slot_id.removeprefix("refuse:"))
        if request.slot_id == "slot-full":
            raise FailedPrecondition("the slot is full", reason="slot_full")
        if request.slot_id == "slot-down":
            raise Unavailable("the booking database is restarting")
        booking = reg.Booking(
            booking_id=f"bk-{next(self._numbers)}", booking_number=f"R{next(self._numbers):06d}",
            patient_id=patient.subject, slot_id=request.slot_id, status=reg.BOOKING_STATUS_HELD, fee_fen=5000,
            department_id="dep-cardio", department_name="心内科", doctor_id="doc-wang", doctor_name="王医生",
            service_date="2026-12-01", starts_at="2026-12-01T08:00:00+08:00", ends_at="2026-12-01T08:15:00+08:00",
        )
        if request.slot_id == "slot-free":
            # A free clinic's booking: confirmed as it is held, nothing to pay.
            booking.status, booking.queue_number, booking.fee_fen = reg.BOOKING_STATUS_CONFIRMED, 1, 0
        self.bookings[booking.booking_id] = booking
        return reg.HoldSlotResponse(booking=booking, payment_ticket=f"ticket-of-{booking.booking_id}"
                                    if booking.status == reg.BOOKING_STATUS_HELD else "")

    def GetBooking(self, request, context):
        return reg.GetBookingResponse(booking=self._booking(request.booking_id, auth.REGISTRATION_OFFICE))

    # Registration's pages hold 200 bookings; a test sets fewer to follow the portal's older pages.
    bookings_page_size = 200

    def ListMyBookings(self, request, context):
        patient = auth.current_principal()
        mine = [b for b in self.bookings.values() if b.patient_id == patient.subject]
        start = 0
        if request.page_token:
            if not request.page_token.startswith("after-"):
                raise InvalidArgument("page_token", "is not a token this list gave")
            start = int(request.page_token.removeprefix("after-"))
        page = mine[start:start + self.bookings_page_size]
        more = start + len(page) < len(mine)
        return reg.ListMyBookingsResponse(bookings=page, next_page_token=f"after-{start + len(page)}" if more else "")

    def CancelBooking(self, request, context):
        if request.booking_id.startswith("refuse:"):
            raise FailedPrecondition("refused", reason=request.booking_id.removeprefix("refuse:"))
        self._seen("CancelBooking", request, context)
        booking = self._booking(request.booking_id, auth.REGISTRATION_OFFICE)
        by_office = auth.current_principal().subject != booking.patient_id
        booking.refund_due = booking.status == reg.BOOKING_STATUS_CONFIRMED and booking.fee_fen > 0
        booking.status = reg.BOOKING_STATUS_CANCELLED
        booking.cancel_reason = "registration_office" if by_office else "patient"
        return reg.CancelBookingResponse(booking=booking)

    def PutSessionTemplate(self, request, context):
        self._seen("PutSessionTemplate", request, context)
        auth.current_principal().require(auth.REGISTRATION_OFFICE)
        if not request.template.template_id and (request.template.weekday, request.template.period) == (
                2, reg.PERIOD_AFTERNOON):
            # tpl-1's (ListSessionTemplates): a new one there is refused, as registration refuses it.
            raise AlreadyExists("the doctor already has a template for this weekday and period",
                                reason="template_exists")
        if request.template.end_time <= request.template.start_time:
            raise InvalidArgument("template.end_time", "must be after the start time")
        template = reg.SessionTemplate()
        template.CopyFrom(request.template)
        template.template_id = template.template_id or "tpl-1"
        return reg.PutSessionTemplateResponse(template=template)

    def ListSessionTemplates(self, request, context):
        auth.current_principal().require(auth.REGISTRATION_OFFICE)
        return reg.ListSessionTemplatesResponse(templates=[reg.SessionTemplate(
            template_id="tpl-1", doctor_id=request.doctor_id, weekday=2, period=reg.PERIOD_AFTERNOON)])

    def PublishSchedule(self, request, context):
        self._seen("PublishSchedule", request, context)
        auth.current_principal().require(auth.REGISTRATION_OFFICE)
        return reg.PublishScheduleResponse(sessions_created=request.days_ahead * 2, slots_created=request.days_ahead * 20)

    def ListSessions(self, request, context):
        self._seen("ListSessions", request, context)
        auth.current_principal().require(auth.REGISTRATION_OFFICE)
        sessions = [reg.Session(session_id="ses-1", doctor_id="doc-wang", department_id="dep-cardio",
                                service_date=request.service_date,
                                status=reg.SESSION_STATUS_OPEN, capacity=20, booked=3, held=1, free=16)]
        if request.service_date == "2026-12-08":
            # A day with a suspended session: no free places (its checked-in visit stands).
            sessions.append(reg.Session(session_id="ses-2", doctor_id="doc-wang", service_date=request.service_date,
                                        status=reg.SESSION_STATUS_SUSPENDED, capacity=10, booked=1, free=0))
        return reg.ListSessionsResponse(sessions=sessions)

    def ListSessionBookings(self, request, context):
        self._seen("ListSessionBookings", request, context)
        auth.current_principal().require(auth.REGISTRATION_OFFICE, auth.ADMIN)
        if request.session_id == "not-an-id":
            raise InvalidArgument("session_id", "is not a valid id")
        # "ses-1@2026-12-03": ses-1 on the day the test names (a check-in is open on the visit's day only).
        session_id, _, day = request.session_id.partition("@")
        if session_id != "ses-1":
            raise NotFound("no such session", reason="session_not_found")
        status = reg.SESSION_STATUS_SUSPENDED if request.session_id in self.suspended else reg.SESSION_STATUS_OPEN
        session = reg.Session(session_id=request.session_id, doctor_id="doc-wang", service_date=day or "2026-12-01",
                              period=reg.PERIOD_MORNING, status=status, capacity=20, booked=2, held=1, free=17)
        return reg.ListSessionBookingsResponse(session=session, bookings=[
            reg.Booking(booking_id="bk-s1", booking_number="20261201-000002", patient_id="p1", session_id="ses-1",
                        status=reg.BOOKING_STATUS_CHECKED_IN, queue_number=1),
            reg.Booking(booking_id="bk-s2", booking_number="20261201-000001", patient_id="p2", session_id="ses-1",
                        status=reg.BOOKING_STATUS_CONFIRMED, queue_number=2, fee_fen=5000),
            reg.Booking(booking_id="bk-s3", booking_number="20261201-000003", patient_id="p3", session_id="ses-1",
                        status=reg.BOOKING_STATUS_HELD),
            reg.Booking(booking_id="bk-s4", booking_number="20261201-000004", patient_id="p4", session_id="ses-1",
                        status=reg.BOOKING_STATUS_EXPIRED, cancel_reason="expired"),
            # A visit long started and neither checked in nor marked: the office may no longer cancel it.
            reg.Booking(booking_id="bk-s5", booking_number="20200101-000005", patient_id="p5", session_id="ses-1",
                        status=reg.BOOKING_STATUS_CONFIRMED, fee_fen=5000, starts_at="2020-01-01T08:00:00+08:00"),
            # Marked as a no-show: a patient who comes late that day is still checked in.
            reg.Booking(booking_id="bk-s6", booking_number="20261201-000006", patient_id="p6", session_id="ses-1",
                        status=reg.BOOKING_STATUS_NO_SHOW, queue_number=6, fee_fen=5000,
                        starts_at="2020-01-01T08:00:00+08:00"),
        ])

    def SuspendSession(self, request, context):
        self._seen("SuspendSession", request, context)
        auth.current_principal().require(auth.REGISTRATION_OFFICE)
        require(request.reason, "reason")
        # What was cancelled, as the session's id says: "paid:unpaid" counts (none by default).
        paid, _, unpaid = request.session_id.removeprefix("ses-cancels-").partition(":")
        cancelled = []
        if request.session_id.startswith("ses-cancels-"):
            cancelled = [reg.Booking(booking_id=f"bk-paid-{i}", status=reg.BOOKING_STATUS_CANCELLED, fee_fen=5000,
                                     refund_due=True) for i in range(int(paid))]
            cancelled += [reg.Booking(booking_id=f"bk-unpaid-{i}", status=reg.BOOKING_STATUS_CANCELLED)
                          for i in range(int(unpaid))]
        return reg.SuspendSessionResponse(session=reg.Session(
            session_id=request.session_id, status=reg.SESSION_STATUS_SUSPENDED), cancelled_bookings=cancelled)

    def CheckInBooking(self, request, context):
        auth.current_principal().require(auth.REGISTRATION_OFFICE)
        booking = self._booking(request.booking_id, auth.REGISTRATION_OFFICE)
        if booking.status not in (reg.BOOKING_STATUS_CONFIRMED, reg.BOOKING_STATUS_NO_SHOW):
            raise FailedPrecondition("only a confirmed booking checks in", reason="booking_not_confirmed")
        booking.status = reg.BOOKING_STATUS_CHECKED_IN
        return reg.CheckInBookingResponse(booking=booking)

    def MarkNoShow(self, request, context):
        auth.current_principal().require(auth.REGISTRATION_OFFICE)
        booking = self._booking(request.booking_id, auth.REGISTRATION_OFFICE)
        if booking.status not in (reg.BOOKING_STATUS_CONFIRMED, reg.BOOKING_STATUS_NO_SHOW):
            raise FailedPrecondition("only a confirmed booking is a no-show", reason="booking_not_confirmed")
        booking.status = reg.BOOKING_STATUS_NO_SHOW
        return reg.MarkNoShowResponse(booking=booking)


class FakeBilling(billing_pb2_grpc.BillingServiceServicer):
    def __init__(self):
        self.requests: list[tuple[str, object, dict[str, str]]] = []
        self.payments: dict[str, list[bill.Payment]] = {}

    def last(self, name):
        return next(r for r in reversed(self.requests) if r[0] == name)

    def PayRegistrationFee(self, request, context):
        self.requests.append(("PayRegistrationFee", request, dict(context.invocation_metadata())))
        patient = auth.current_principal().require(auth.PATIENT)
        payment = bill.Payment(payment_id=f"pay-{request.idempotency_key}", booking_id=request.booking_id,
                               patient_id=patient.subject, amount_fen=5000, status=bill.PAYMENT_STATUS_PENDING)
        self.payments.setdefault(request.booking_id, []).append(payment)
        return bill.PayRegistrationFeeResponse(payment=payment)

    def ListPayments(self, request, context):
        auth.current_principal()
        return bill.ListPaymentsResponse(payments=self.payments.get(request.booking_id, []))

    def GetLedgerBalances(self, request, context):
        auth.current_principal().require(auth.FINANCE)
        return bill.GetLedgerBalancesResponse(
            balances=[bill.LedgerBalance(account="cash", debit_fen=5000, balance_fen=5000),
                      bill.LedgerBalance(account="fees", credit_fen=5000, balance_fen=-5000)],
            total_debit_fen=5000, total_credit_fen=5000)

    def GetReconciliationReport(self, request, context):
        self.requests.append(("GetReconciliationReport", request, dict(context.invocation_metadata())))
        auth.current_principal().require(auth.FINANCE)
        return bill.GetReconciliationReportResponse(
            business_date=request.business_date, matched=3, captured_fen=10000, refunded_fen=5000,
            lines=[bill.ReconciliationLine(payment_id="pay-1", provider_reference="sbx_ch_1", ledger_fen=5000,
                                           provider_fen=5000, outcome="matched", kind="capture"),
                   # A charge made after its payment failed, and given back.
                   bill.ReconciliationLine(payment_id="pay-late", provider_reference="sbx_ch_2", ledger_fen=5000,
                                           provider_fen=5000, outcome="matched", kind="capture",
                                           reason="charged_after_failure"),
                   bill.ReconciliationLine(payment_id="pay-late", provider_reference="sbx_ch_2", ledger_fen=5000,
                                           provider_fen=5000, outcome="matched", kind="refund",
                                           reason="charged_after_failure")])


class FakeTicketing(ticketing_pb2_grpc.TicketingServiceServicer):
    """Ticketing with a few subsystems and an in-memory lifecycle. Refusals
    are tuoguan_common.errors, as the real service raises them: an unknown
    subsystem code is INVALID_ARGUMENT on subsystem_code, an unknown ticket
    NOT_FOUND ticket_not_found, a step the lifecycle does not allow
    FAILED_PRECONDITION invalid_transition; a ticket id "refuse:<reason>"
    is refused with that reason. A repeated idempotency key returns the
    first answer; confirming a resolution makes its worklogs billable. A
    worklog is recorded at the grade in the caller's token, by ticketing's
    own rule (worklog_grade: another grade is INVALID_ARGUMENT on grade, no
    grade FAILED_PRECONDITION engineer_not_graded), and refused when it starts
    before the minute its ticket was opened (refuse_before_opening); with ``before_grades``
    set, as a ticketing-api pod from before grades did (a rolling upgrade).
    An assignment to an account in ``not_engineers`` (a test puts a clinician's
    there) is refused as the real service refuses one identity does not list as
    an engineer's (AssigneeNotAnEngineer); with ``identity_down`` every
    assignment to an account is StaffDirectoryUnavailable."""

    STAFF = (auth.ENGINEER, auth.DISPATCHER, auth.ADMIN)
    # action: (statuses it starts from, the status it leads to, who may take it; None: the requester)
    LIFECYCLE = {
        tkt.TICKET_ACTION_ASSIGN: ({tkt.TICKET_STATUS_NEW, tkt.TICKET_STATUS_ASSIGNED, tkt.TICKET_STATUS_IN_PROGRESS},
                                   tkt.TICKET_STATUS_ASSIGNED, (auth.DISPATCHER, auth.ADMIN)),
        tkt.TICKET_ACTION_START: ({tkt.TICKET_STATUS_ASSIGNED}, tkt.TICKET_STATUS_IN_PROGRESS, (auth.ENGINEER,)),
        tkt.TICKET_ACTION_PAUSE: ({tkt.TICKET_STATUS_IN_PROGRESS}, tkt.TICKET_STATUS_PENDING, (auth.ENGINEER,)),
        tkt.TICKET_ACTION_RESUME: ({tkt.TICKET_STATUS_PENDING}, tkt.TICKET_STATUS_IN_PROGRESS, (auth.ENGINEER,)),
        tkt.TICKET_ACTION_RESOLVE: ({tkt.TICKET_STATUS_IN_PROGRESS}, tkt.TICKET_STATUS_RESOLVED, (auth.ENGINEER,)),
        tkt.TICKET_ACTION_CONFIRM: ({tkt.TICKET_STATUS_RESOLVED}, tkt.TICKET_STATUS_CLOSED, None),
        tkt.TICKET_ACTION_REOPEN: ({tkt.TICKET_STATUS_RESOLVED}, tkt.TICKET_STATUS_IN_PROGRESS, None),
        tkt.TICKET_ACTION_CLOSE: ({tkt.TICKET_STATUS_RESOLVED}, tkt.TICKET_STATUS_CLOSED, (auth.DISPATCHER, auth.ADMIN)),
    }
    NOW = "2026-11-26T09:00:00Z"
    # When its tickets were opened (midnight in the hospital that day): the tests' worklogs start after it.
    OPENED = "2026-11-25T16:00:00Z"
    # The real service's refusals of who may act (PERMISSION_DENIED); the others are FAILED_PRECONDITION.
    PERMISSION_REASONS = frozenset({"not_requester", "not_assignee", "role_not_allowed", "not_your_ticket"})

    def __init__(self):
        self.requests: list[tuple[str, object, dict[str, str]]] = []
        # A test sets it (monkeypatch) to be a ticketing-api pod from before grades: a worklog's grade is the
        # request's, required (INVALID_ARGUMENT on grade when empty or unknown), and the token's is not read.
        self.before_grades = False
        self.not_engineers: set[str] = set()
        self.identity_down = False
        self.subsystems: dict[str, tkt.Subsystem] = {s.code: s for s in (
            tkt.Subsystem(subsystem_id="sub-his", code="HIS", name="医院信息系统", name_en="Hospital information system",
                          category="clinical", criticality=tkt.CRITICALITY_CRITICAL, team="apps-clinical",
                          vendor="东华软件", service_hours="24x7", active=True),
            tkt.Subsystem(subsystem_id="sub-pacs", code="PACS", name="影像归档和通信系统", name_en="PACS",
                          category="medical-technology", criticality=tkt.CRITICALITY_HIGH, team="imaging", vendor="联影",
                          service_hours="24x7", active=True),
            tkt.Subsystem(subsystem_id="sub-oa", code="OA", name="办公自动化", name_en="Office automation",
                          category="management", criticality=tkt.CRITICALITY_LOW, team="apps-business",
                          service_hours="08:00-12:00,13:30-17:30", active=False),
        )}
        self.tickets: dict[str, tkt.Ticket] = {}
        self.comments: dict[str, list[tkt.Comment]] = {}
        self.worklogs: dict[str, list[tkt.Worklog]] = {}
        self.ever_assigned: dict[str, set[str]] = {}
        self.answers: dict[tuple[str, str, str], object] = {}
        self._numbers = itertools.count(1)

    def _seen(self, name, request, context):
        self.requests.append((name, request, dict(context.invocation_metadata())))

    def last(self, name):
        return next(r for r in reversed(self.requests) if r[0] == name)

    def _once(self, scope, key, make):
        """The first answer for (scope, caller, key); a repeat changes nothing."""
        if not key:
            raise InvalidArgument("idempotency_key", "is required")
        slot = (scope, auth.current_principal().subject, key)
        if slot not in self.answers:
            self.answers[slot] = make()
        return self.answers[slot]

    def _ticket(self, ticket_id):
        if ticket_id.startswith("refuse:"):
            # A refusal with the reason the test names (as the real service words it): how the portal says each one.
            reason = ticket_id.removeprefix("refuse:")
            if reason in self.PERMISSION_REASONS:
                raise PermissionDenied("refused", reason=reason)
            if reason.endswith("_not_found"):
                raise NotFound("refused", reason=reason)
            raise FailedPrecondition("refused", reason=reason)
        ticket = self.tickets.get(ticket_id)
        if ticket is None:
            raise NotFound("no such ticket", reason="ticket_not_found")
        auth.current_principal().require_owner_or(ticket.requester_id, *self.STAFF)
        return ticket

    def _subsystem(self, code):
        subsystem = self.subsystems.get(code)
        if subsystem is None or not subsystem.active:
            raise InvalidArgument("subsystem_code", f"no active subsystem {code!r}")
        return subsystem

    def _new_ticket(self, subsystem, **fields):
        n = next(self._numbers)
        ticket = tkt.Ticket(
            ticket_id=f"tk-{n}", number=f"T20261126-{n:06d}", subsystem_id=subsystem.subsystem_id,
            subsystem_code=subsystem.code, status=tkt.TICKET_STATUS_NEW, created_at=self.OPENED, updated_at=self.NOW,
            sla=tkt.SlaStatus(response_due="2026-11-26T09:15:00Z", resolution_due="2026-11-26T13:00:00Z",
                              resolution_target_seconds=4 * 3600, urgency_seconds=4 * 3600 - n),
            **fields,
        )
        self.tickets[ticket.ticket_id] = ticket
        return ticket

    @staticmethod
    def _priority(impact, urgency, major):
        if major:
            return tkt.PRIORITY_P1
        levels = [level or tkt.LEVEL_MEDIUM for level in (impact, urgency)]
        return {2: tkt.PRIORITY_P1, 3: tkt.PRIORITY_P2, 4: tkt.PRIORITY_P3}.get(sum(levels), tkt.PRIORITY_P4)

    def ListSubsystems(self, request, context):
        self._seen("ListSubsystems", request, context)
        auth.current_principal()
        return tkt.ListSubsystemsResponse(subsystems=[
            s for s in self.subsystems.values() if s.active or request.include_inactive])

    def PutSubsystem(self, request, context):
        self._seen("PutSubsystem", request, context)
        auth.current_principal().require(auth.ADMIN)
        code = require(request.subsystem.code, "subsystem.code")

        def put():
            subsystem = tkt.Subsystem()
            subsystem.CopyFrom(request.subsystem)
            if subsystem.subsystem_id:
                if subsystem.subsystem_id not in {s.subsystem_id for s in self.subsystems.values()}:
                    raise NotFound("no such subsystem", reason="subsystem_not_found")
            else:
                subsystem.subsystem_id = f"sub-{code.lower()}"
            self.subsystems[code] = subsystem
            return tkt.PutSubsystemResponse(subsystem=subsystem)

        return self._once("PutSubsystem", request.idempotency_key, put)

    def OpenTicket(self, request, context):
        self._seen("OpenTicket", request, context)
        caller = auth.current_principal().require(auth.CLINICIAN, *self.STAFF)
        subsystem = self._subsystem(request.subsystem_code)
        title = require(request.title, "title")
        if title == "ticketing-down":
            raise Unavailable("the ticket database is restarting")
        requester = caller.subject
        if request.on_behalf_of:
            caller.require(auth.DISPATCHER, auth.ADMIN, auth.REGISTRATION_OFFICE)
            # An account id, as the real service requires (INVALID_ARGUMENT on on_behalf_of otherwise).
            requester = entity_id(request.on_behalf_of, "on_behalf_of")

        def open_():
            return tkt.OpenTicketResponse(ticket=self._new_ticket(
                subsystem, kind=request.kind or tkt.TICKET_KIND_INCIDENT, title=title,
                description=request.description, impact=request.impact, urgency=request.urgency,
                priority=self._priority(request.impact, request.urgency, request.major_incident),
                major_incident=request.major_incident,
                source=tkt.TICKET_SOURCE_STAFF if request.on_behalf_of else tkt.TICKET_SOURCE_PORTAL,
                requester_id=requester, reported_by_id=caller.subject,
                team=subsystem.team,
            ))

        return self._once("OpenTicket", request.idempotency_key, open_)

    def GetTicket(self, request, context):
        self._seen("GetTicket", request, context)
        ticket = self._ticket(request.ticket_id)
        return tkt.GetTicketResponse(ticket=ticket, comments=self.comments.get(ticket.ticket_id, []),
                                     worklogs=self.worklogs.get(ticket.ticket_id, []))

    def ListTickets(self, request, context):
        self._seen("ListTickets", request, context)
        caller = auth.current_principal()
        tickets = list(self.tickets.values())
        if request.view == tkt.TICKET_VIEW_QUEUE:
            caller.require(auth.ENGINEER)
            tickets = [t for t in tickets if t.assignee_id == caller.subject]
        elif request.view == tkt.TICKET_VIEW_BOARD:
            caller.require(auth.DISPATCHER, auth.ADMIN)
        elif request.view == tkt.TICKET_VIEW_MINE:
            tickets = [t for t in tickets if t.requester_id == caller.subject]
        else:
            raise InvalidArgument("view", "is required")
        if request.view != tkt.TICKET_VIEW_MINE:
            tickets.sort(key=lambda t: t.sla.urgency_seconds)
        if request.open_only:
            tickets = [t for t in tickets if t.status != tkt.TICKET_STATUS_CLOSED]
        if request.subsystem_code:
            tickets = [t for t in tickets if t.subsystem_code == request.subsystem_code]
        return tkt.ListTicketsResponse(tickets=tickets[:request.limit or 100])

    def ChangeTicket(self, request, context):
        self._seen("ChangeTicket", request, context)
        caller = auth.current_principal()
        ticket = self._ticket(request.ticket_id)
        if request.action not in self.LIFECYCLE:
            raise InvalidArgument("action", "is required")
        starts, leads_to, roles = self.LIFECYCLE[request.action]
        if roles is None:
            if caller.subject != ticket.requester_id:
                raise PermissionDenied("only the requester may", reason="not_requester")
        else:
            caller.require(*roles)

        def change():
            if ticket.status not in starts:
                raise FailedPrecondition(
                    f"cannot {tkt.TicketAction.Name(request.action)} a {tkt.TicketStatus.Name(ticket.status)} ticket",
                    reason="invalid_transition")
            if request.action == tkt.TICKET_ACTION_ASSIGN:
                if not (request.assignee_id or request.team):
                    raise InvalidArgument("assignee_id", "an engineer or a team is required")
                # The engineer's account id, as the real service requires.
                assignee = entity_id(request.assignee_id, "assignee_id", required=False) or ""
                if assignee and self.identity_down:
                    raise StaffDirectoryUnavailable()
                if assignee in self.not_engineers:
                    raise AssigneeNotAnEngineer()
                ticket.assignee_id, ticket.team = assignee, request.team or ticket.team
                self.ever_assigned.setdefault(ticket.ticket_id, set()).add(assignee)
            if request.action == tkt.TICKET_ACTION_PAUSE:
                if not request.pause_side:
                    raise InvalidArgument("pause_side", "is required")
                ticket.paused_by = request.pause_side
                ticket.sla.clock_stopped = request.pause_side != tkt.PAUSE_SIDE_CONTRACTOR
                ticket.sla.paused_by = request.pause_side
            if request.action == tkt.TICKET_ACTION_RESUME:
                ticket.paused_by = tkt.PAUSE_SIDE_UNSPECIFIED
                ticket.sla.clock_stopped = False
                ticket.sla.paused_by = tkt.PAUSE_SIDE_UNSPECIFIED
            if request.action == tkt.TICKET_ACTION_RESOLVE:
                ticket.resolution_note, ticket.resolved_at = request.note, self.NOW
            if leads_to == tkt.TICKET_STATUS_CLOSED:
                ticket.closed_at = self.NOW
            if request.action == tkt.TICKET_ACTION_CONFIRM:
                # Confirmed: the time logged on it becomes billable.
                for worklog in self.worklogs.get(ticket.ticket_id, []):
                    worklog.billable = True
            ticket.status = leads_to
            if request.action == tkt.TICKET_ACTION_REOPEN and not ticket.assignee_id:
                # As the real service: a ticket nobody was assigned goes back to the dispatchers.
                ticket.status = tkt.TICKET_STATUS_NEW
            reply = tkt.ChangeTicketResponse()
            reply.ticket.CopyFrom(ticket)
            return reply

        return self._once(f"ChangeTicket:{request.ticket_id}", request.idempotency_key, change)

    def AddComment(self, request, context):
        self._seen("AddComment", request, context)
        caller = auth.current_principal()
        ticket = self._ticket(request.ticket_id)
        body = require(request.body, "body")

        def add():
            comments = self.comments.setdefault(ticket.ticket_id, [])
            comment = tkt.Comment(comment_id=f"cm-{ticket.ticket_id}-{len(comments) + 1}", author_id=caller.subject,
                                  body=body, created_at=self.NOW)
            comments.append(comment)
            return tkt.AddCommentResponse(comment=comment)

        return self._once("AddComment", request.idempotency_key, add)

    def RecordWorklog(self, request, context):
        self._seen("RecordWorklog", request, context)
        engineer = auth.current_principal().require(auth.ENGINEER)
        if self.before_grades:
            grade = request.grade.strip().lower()
            if grade not in GRADES:
                raise InvalidArgument("grade", f"{request.grade!r} is not one of {', '.join(GRADES)}")
        else:
            # The real service's rule, checked before the ticket is read: the grade in the caller's token; the
            # request's may only repeat it.
            grade = worklog_grade(engineer.grade, request.grade).value
        ticket = self._ticket(request.ticket_id)
        if not 0 < request.minutes <= 24 * 60:
            raise InvalidArgument("minutes", "must be 1-1440")
        # The real service's rule, once it holds the ticket: no start before the minute it was opened.
        try:
            started_at = dt.datetime.fromisoformat(request.started_at)
        except ValueError:
            raise InvalidArgument("started_at", "must be an RFC 3339 date and time") from None
        if started_at.tzinfo is None:
            raise InvalidArgument("started_at", "must be a date and time with a time zone")
        refuse_before_opening(started_at, dt.datetime.fromisoformat(ticket.created_at))
        # The real service's rule, on a ticket that has had an engineer (the fake lets the JSON tests log time
        # on one that never had): an engineer who is or was on it.
        on_it = self.ever_assigned.get(ticket.ticket_id, set()) | ({ticket.assignee_id} - {""})
        if on_it and engineer.subject not in on_it:
            raise PermissionDenied("only an engineer who is or was on the ticket logs time on it",
                                   reason="not_assignee")

        def record():
            worklogs = self.worklogs.setdefault(ticket.ticket_id, [])
            worklog = tkt.Worklog(
                worklog_id=f"wl-{ticket.ticket_id}-{len(worklogs) + 1}", ticket_id=ticket.ticket_id,
                engineer_id=engineer.subject, grade=grade, activity=request.activity,
                started_at=request.started_at, minutes=request.minutes, note=request.note, created_at=self.NOW,
            )
            worklogs.append(worklog)
            ticket.worklog_minutes += request.minutes
            return tkt.RecordWorklogResponse(worklog=worklog)

        return self._once("RecordWorklog", request.idempotency_key, record)

    def ListWorklogs(self, request, context):
        self._seen("ListWorklogs", request, context)
        ticket = self._ticket(request.ticket_id)
        return tkt.ListWorklogsResponse(worklogs=self.worklogs.get(ticket.ticket_id, []))

    def ReceiveAlerts(self, request, context):
        """One ticket per fingerprint, on the subsystem of the alert's ``subsystem`` label."""
        self._seen("ReceiveAlerts", request, context)
        device = auth.current_principal().require(auth.DEVICE, auth.ADMIN)
        try:
            alerts = json.loads(request.alertmanager_payload)["alerts"]
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidArgument("alertmanager_payload", "is not an Alertmanager webhook body") from exc
        reply = tkt.ReceiveAlertsResponse()
        for alert in alerts:
            fingerprint = alert["fingerprint"]
            known = next((t for t in self.tickets.values() if t.alert_fingerprint == fingerprint), None)
            if alert["status"] == "resolved":
                if known is None or known.status in (tkt.TICKET_STATUS_RESOLVED, tkt.TICKET_STATUS_CLOSED):
                    continue
                known.status, known.resolved_at = tkt.TICKET_STATUS_RESOLVED, alert.get("endsAt", self.NOW)
                reply.resolved += 1
            elif known is not None:
                known.updated_at = self.NOW
                reply.updated += 1
            else:
                subsystem = self._subsystem(alert["labels"].get("subsystem", "HIS"))
                known = self._new_ticket(
                    subsystem, kind=tkt.TICKET_KIND_INCIDENT, title=alert["labels"].get("alertname", "alert"),
                    description=alert.get("annotations", {}).get("summary", ""), impact=tkt.LEVEL_HIGH,
                    urgency=tkt.LEVEL_HIGH, priority=tkt.PRIORITY_P1, source=tkt.TICKET_SOURCE_ALERT,
                    requester_id=device.subject, reported_by_id=device.subject, alert_fingerprint=fingerprint,
                    team=subsystem.team,
                )
                reply.opened += 1
            reply.ticket_ids.append(known.ticket_id)
        return reply
