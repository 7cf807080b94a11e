"""Stand-ins for registration and billing with just the RPCs the gateway's
tests call. They authorise the way the real services do (through the same
server interceptor and tuoguan_common.auth), so the gateway's error mapping
is tested against real statuses and trailing metadata. The lead's end-to-end
tests run the real services."""
from __future__ import annotations

import itertools

from tuoguan.billing.v1 import billing_pb2 as bill
from tuoguan.billing.v1 import billing_pb2_grpc
from tuoguan.registration.v1 import registration_pb2 as reg
from tuoguan.registration.v1 import registration_pb2_grpc
from tuoguan_common import auth
from tuoguan_common.errors import FailedPrecondition, InvalidArgument, NotFound, Unavailable

DEPARTMENTS = [
    reg.Department(department_id="dep-cardio", code="CARD", name="心内科", name_en="Cardiology"),
    reg.Department(department_id="dep-peds", code="PEDS", name="儿科", name_en="Paediatrics"),
]
DOCTORS = [reg.Doctor(doctor_id="doc-wang", department_id="dep-cardio", name="王建华",
                      title=reg.DOCTOR_TITLE_CHIEF, fee_fen=5000)]


class FakeRegistration(registration_pb2_grpc.RegistrationServiceServicer):
    def __init__(self):
        self.bookings: dict[str, reg.Booking] = {}
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
        return reg.ListSlotsResponse(slots=[reg.Slot(slot_id="slot-1", doctor_id="doc-wang", capacity=5,
                                                     remaining=2, fee_fen=5000, period=reg.PERIOD_MORNING)])

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
        )
        self.bookings[booking.booking_id] = booking
        return reg.HoldSlotResponse(booking=booking)

    def GetBooking(self, request, context):
        return reg.GetBookingResponse(booking=self._booking(request.booking_id, auth.REGISTRATION_OFFICE))

    def ListMyBookings(self, request, context):
        patient = auth.current_principal()
        return reg.ListMyBookingsResponse(bookings=[b for b in self.bookings.values() if b.patient_id == patient.subject])

    def CancelBooking(self, request, context):
        if request.booking_id.startswith("refuse:"):
            raise FailedPrecondition("refused", reason=request.booking_id.removeprefix("refuse:"))
        booking = self._booking(request.booking_id)
        booking.status = reg.BOOKING_STATUS_CANCELLED
        return reg.CancelBookingResponse(booking=booking)

    def PutSessionTemplate(self, request, context):
        self._seen("PutSessionTemplate", request, context)
        auth.current_principal().require(auth.REGISTRATION_OFFICE)
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
        return reg.ListSessionsResponse(sessions=[reg.Session(
            session_id="ses-1", doctor_id="doc-wang", service_date=request.service_date,
            status=reg.SESSION_STATUS_OPEN, capacity=20, booked=3, held=1, free=16)])

    def ListSessionBookings(self, request, context):
        self._seen("ListSessionBookings", request, context)
        auth.current_principal().require(auth.REGISTRATION_OFFICE, auth.ADMIN)
        if request.session_id == "not-an-id":
            raise InvalidArgument("session_id", "is not a valid id")
        if request.session_id != "ses-1":
            raise NotFound("no such session", reason="session_not_found")
        session = reg.Session(session_id="ses-1", doctor_id="doc-wang", service_date="2026-12-01",
                              period=reg.PERIOD_MORNING, status=reg.SESSION_STATUS_OPEN, capacity=20, booked=2, held=1,
                              free=17)
        return reg.ListSessionBookingsResponse(session=session, bookings=[
            reg.Booking(booking_id="bk-s1", booking_number="20261201-000002", patient_id="p1", session_id="ses-1",
                        status=reg.BOOKING_STATUS_CHECKED_IN, queue_number=1),
            reg.Booking(booking_id="bk-s2", booking_number="20261201-000001", patient_id="p2", session_id="ses-1",
                        status=reg.BOOKING_STATUS_CONFIRMED, queue_number=2),
            reg.Booking(booking_id="bk-s3", booking_number="20261201-000003", patient_id="p3", session_id="ses-1",
                        status=reg.BOOKING_STATUS_HELD),
            reg.Booking(booking_id="bk-s4", booking_number="20261201-000004", patient_id="p4", session_id="ses-1",
                        status=reg.BOOKING_STATUS_EXPIRED, cancel_reason="expired"),
        ])

    def SuspendSession(self, request, context):
        self._seen("SuspendSession", request, context)
        auth.current_principal().require(auth.REGISTRATION_OFFICE)
        return reg.SuspendSessionResponse(session=reg.Session(
            session_id=request.session_id, status=reg.SESSION_STATUS_SUSPENDED))

    def CheckInBooking(self, request, context):
        auth.current_principal().require(auth.REGISTRATION_OFFICE)
        booking = self._booking(request.booking_id, auth.REGISTRATION_OFFICE)
        if booking.status != reg.BOOKING_STATUS_CONFIRMED:
            raise FailedPrecondition("only a confirmed booking checks in", reason="booking_not_confirmed")
        booking.status = reg.BOOKING_STATUS_CHECKED_IN
        return reg.CheckInBookingResponse(booking=booking)

    def MarkNoShow(self, request, context):
        auth.current_principal().require(auth.REGISTRATION_OFFICE)
        booking = self._booking(request.booking_id, auth.REGISTRATION_OFFICE)
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
        return bill.GetReconciliationReportResponse(business_date=request.business_date, matched=1, captured_fen=5000)
