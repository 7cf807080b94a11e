"""Search, cancellation and the registration office's work through the gRPC
API against the real PostgreSQL."""
from __future__ import annotations

import datetime as dt
import time

import grpc
import pytest
from registration.domain.rules import CapturedPayment
from registration.store import Idempotent
from registration_testkit import (SHANGHAI, hold, key, local, outbox_events, reason_of, refused, slot_counters,
                                  tomorrow)
from tuoguan.registration.v1 import registration_pb2 as pb
from tuoguan_common import auth
from tuoguan_common.outbox import utcnow

pytestmark = pytest.mark.integration


def confirm(store, booking: pb.Booking, payment_id: str = "pay-1") -> None:
    """What the worker does when billing's PaymentCaptured arrives."""
    with store.db.transaction() as cur:
        store.apply_payments_captured(
            cur, [(booking.booking_id, CapturedPayment(payment_id, booking.patient_id, booking.fee_fen), None)], utcnow())


def template(doctor_id: str, **overrides) -> pb.SessionTemplate:
    fields = dict(doctor_id=doctor_id, weekday=1, period=pb.PERIOD_MORNING, start_time="08:00", end_time="11:00",
                  slot_minutes=30, capacity_per_slot=4, active=True)
    fields.update(overrides)
    return pb.SessionTemplate(**fields)


def put_template(stub, md, tpl: pb.SessionTemplate, idempotency_key: str | None = None) -> pb.SessionTemplate:
    return stub.PutSessionTemplate(pb.PutSessionTemplateRequest(template=tpl, idempotency_key=idempotency_key or key()),
                                   metadata=md).template


def test_public_search_lists_departments_doctors_and_released_slots(stub, clinic, people):
    departments = stub.ListDepartments(pb.ListDepartmentsRequest()).departments
    assert [(d.code, d.name, d.name_en) for d in departments][0] == ("BRST", "乳腺外科", "Breast Surgery")
    doctors = stub.ListDoctors(pb.ListDoctorsRequest(department_id=clinic.thoracic)).doctors
    assert {(d.name, d.title, d.fee_fen) for d in doctors} == {
        ("陈建国", pb.DOCTOR_TITLE_CHIEF, 5000), ("林晓东", pb.DOCTOR_TITLE_ATTENDING, 2000)}
    assert {(d.speciality, d.speciality_en) for d in doctors} == {
        ("肺癌微创手术", "Lung cancer surgery"), ("oesophageal cancer", "")}

    day = tomorrow()
    open_slots = clinic.session(clinic.chen, [local(day, 9), local(day, 9, 30)], capacity=1)
    clinic.slot(clinic.lin, local(day, 15), released_at=utcnow() + dt.timedelta(hours=2))
    listed = stub.ListSlots(pb.ListSlotsRequest(department_id=clinic.thoracic)).slots
    assert [s.slot_id for s in listed] == open_slots  # the unreleased one is invisible
    assert listed[0].starts_at == local(day, 9).isoformat().replace("+00:00", "Z")

    hold(stub, people.patient()[1], open_slots[0])
    available = stub.ListSlots(pb.ListSlotsRequest(department_id=clinic.thoracic, only_available=True)).slots
    assert [s.slot_id for s in available] == open_slots[1:]
    later = stub.ListSlots(pb.ListSlotsRequest(doctor_id=clinic.chen, from_date=(day + dt.timedelta(days=1))
                                               .isoformat())).slots
    assert list(later) == []


def test_search_rejects_bad_input(stub):
    cases = [
        (pb.ListSlotsRequest(), "department_id"),
        (pb.ListSlotsRequest(department_id="thoracic"), "department_id"),
        (pb.ListSlotsRequest(doctor_id="6d1b0c6e-0000-4000-8000-000000000000", from_date="2026/12/01"), "from_date"),
        (pb.ListSlotsRequest(doctor_id="6d1b0c6e-0000-4000-8000-000000000000", from_date="2026-12-05",
                             to_date="2026-12-01"), "to_date"),
        (pb.ListSlotsRequest(doctor_id="6d1b0c6e-0000-4000-8000-000000000000", from_date="2026-12-01",
                             to_date="2027-03-01"), "to_date"),
        # An ISO week date is ten characters too; the calendar's last day has no span after it (was INTERNAL).
        (pb.ListSlotsRequest(doctor_id="6d1b0c6e-0000-4000-8000-000000000000", from_date="2026-W48-4"), "from_date"),
        (pb.ListSlotsRequest(doctor_id="6d1b0c6e-0000-4000-8000-000000000000", from_date="9999-12-31"), "from_date"),
    ]
    for request, field in cases:
        with pytest.raises(grpc.RpcError) as caught:
            stub.ListSlots(request)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert dict(caught.value.trailing_metadata())["tuoguan-field"] == field
    # A to_date in the past without a from_date: the search starts today, and the error says so
    # (it named from_date, which the caller had not given).
    with pytest.raises(grpc.RpcError) as caught:
        stub.ListSlots(pb.ListSlotsRequest(doctor_id="6d1b0c6e-0000-4000-8000-000000000000", to_date="2020-01-01"))
    assert dict(caught.value.trailing_metadata())["tuoguan-field"] == "to_date"
    assert "today" in caught.value.details() and "from_date is not given" in caught.value.details()


def test_cancel_a_held_booking_gives_the_place_back_without_refund(stub, clinic, people, store):
    slot_id = clinic.slot(clinic.chen, local(tomorrow(), 9), capacity=2)
    _, md = people.patient()
    booking = hold(stub, md, slot_id)
    cancelled = stub.CancelBooking(pb.CancelBookingRequest(booking_id=booking.booking_id, idempotency_key=key()),
                                   metadata=md).booking
    assert cancelled.status == pb.BOOKING_STATUS_CANCELLED and not cancelled.refund_due
    assert cancelled.cancel_reason == "patient"
    assert slot_counters(store, slot_id)["held"] == 0
    (event,) = outbox_events(store, "BookingCancelled")
    assert event["booking_id"] == booking.booking_id and event["refund_due"] is False


def test_cancel_a_confirmed_booking_asks_billing_to_refund_and_repeats_are_harmless(stub, clinic, people, store):
    slot_id = clinic.slot(clinic.chen, local(tomorrow(), 9), capacity=2)
    _, md = people.patient()
    booking = hold(stub, md, slot_id)
    confirm(store, booking, "pay-42")
    assert slot_counters(store, slot_id)["booked"] == 1
    request = pb.CancelBookingRequest(booking_id=booking.booking_id, idempotency_key=key())
    first = stub.CancelBooking(request, metadata=md).booking
    assert first.refund_due and first.payment_id == "pay-42"
    assert stub.CancelBooking(request, metadata=md).booking == first
    (event,) = outbox_events(store, "BookingCancelled")
    assert (event["refund_due"], event["payment_id"], int(event["fee_fen"])) == (True, "pay-42", 5000)
    counters = slot_counters(store, slot_id)
    assert (counters["booked"], counters["held"]) == (0, 0)
    again = pb.CancelBookingRequest(booking_id=booking.booking_id, idempotency_key=key())
    assert refused(stub.CancelBooking, again, metadata=md) == (grpc.StatusCode.FAILED_PRECONDITION,
                                                                "booking_not_cancellable")


def test_cancel_is_refused_after_the_cutoff(stub, clinic, people, store):
    soon = utcnow() + dt.timedelta(minutes=90)
    slot_id = clinic.slot(clinic.chen, soon, service_date=SHANGHAI.local_date(soon))
    _, md = people.patient()
    booking = hold(stub, md, slot_id)
    confirm(store, booking)
    request = pb.CancelBookingRequest(booking_id=booking.booking_id, idempotency_key=key())
    assert refused(stub.CancelBooking, request, metadata=md) == (grpc.StatusCode.FAILED_PRECONDITION,
                                                                  "cancel_cutoff_passed")
    assert stub.GetBooking(pb.GetBookingRequest(booking_id=booking.booking_id), metadata=md).booking.status == \
        pb.BOOKING_STATUS_CONFIRMED
    assert outbox_events(store, "BookingCancelled") == []


def test_the_patient_releases_an_unpaid_hold_past_the_cutoff(stub, clinic, people, store):
    # A slot 90 minutes away may be held, inside the 120-minute cut-off: its patient may let it go unpaid (the
    # place comes back at once, not when the hold expires), while a paid booking there is the desk's to cancel.
    soon = utcnow() + dt.timedelta(minutes=90)
    slot_id = clinic.slot(clinic.chen, soon, service_date=SHANGHAI.local_date(soon))
    _, md = people.patient()
    booking = hold(stub, md, slot_id)
    released = stub.CancelBooking(pb.CancelBookingRequest(booking_id=booking.booking_id, idempotency_key=key()),
                                  metadata=md).booking
    assert released.status == pb.BOOKING_STATUS_CANCELLED and not released.refund_due
    assert slot_counters(store, slot_id)["held"] == 0
    (event,) = outbox_events(store, "BookingCancelled")
    assert event["booking_id"] == booking.booking_id and event["refund_due"] is False


def test_the_office_cancels_past_the_cutoff_and_the_fee_is_refunded(stub, clinic, people, store):
    """Patients past the cut-off are sent to the registration window: the office
    cancels there, until the visit is checked in or marked as a no-show."""
    soon = utcnow() + dt.timedelta(minutes=30)
    # Today's, even in the half hour before midnight: check-in below opens on the visit's day only.
    slot_id = clinic.slot(clinic.chen, soon, service_date=SHANGHAI.local_date(utcnow()), capacity=2)
    _, md = people.patient()
    booking = hold(stub, md, slot_id)
    confirm(store, booking, "pay-late")
    office = people.office()
    request = pb.CancelBookingRequest(booking_id=booking.booking_id, idempotency_key=key())
    cancelled = stub.CancelBooking(request, metadata=office).booking
    assert (cancelled.status, cancelled.cancel_reason, cancelled.refund_due) == (
        pb.BOOKING_STATUS_CANCELLED, "registration_office", True)
    (event,) = outbox_events(store, "BookingCancelled")
    assert (event["booking_id"], event["refund_due"], event["payment_id"]) == (booking.booking_id, True, "pay-late")
    counters = slot_counters(store, slot_id)
    assert (counters["booked"], counters["held"]) == (0, 0)

    # A visit checked in is no longer the office's to cancel, past the cut-off or not.
    _, other = people.patient()
    checked = hold(stub, other, slot_id)
    confirm(store, checked, "pay-seen")
    stub.CheckInBooking(pb.CheckInBookingRequest(booking_id=checked.booking_id), metadata=office)
    assert refused(stub.CancelBooking, pb.CancelBookingRequest(booking_id=checked.booking_id, idempotency_key=key()),
                   metadata=office) == (grpc.StatusCode.FAILED_PRECONDITION, "booking_not_cancellable")


def test_patients_see_and_change_only_their_own_bookings(stub, clinic, people):
    slot_id = clinic.slot(clinic.chen, local(tomorrow(), 9))
    _, owner = people.patient()
    _, stranger = people.patient()
    booking = hold(stub, owner, slot_id)
    get = pb.GetBookingRequest(booking_id=booking.booking_id)
    assert refused(stub.GetBooking, get, metadata=stranger)[0] == grpc.StatusCode.PERMISSION_DENIED
    assert refused(stub.CancelBooking, pb.CancelBookingRequest(booking_id=booking.booking_id, idempotency_key=key()),
                   metadata=stranger)[0] == grpc.StatusCode.PERMISSION_DENIED
    for roles in ([auth.REGISTRATION_OFFICE], [auth.ADMIN], [auth.SERVICE]):
        assert stub.GetBooking(get, metadata=people.with_roles(*roles)).booking.booking_id == booking.booking_id
    assert list(stub.ListMyBookings(pb.ListMyBookingsRequest(), metadata=stranger).bookings) == []
    assert refused(stub.GetBooking, get)[0] == grpc.StatusCode.UNAUTHENTICATED
    assert refused(stub.GetBooking, pb.GetBookingRequest(booking_id="6d1b0c6e-0000-4000-8000-000000000000"),
                   metadata=owner) == (grpc.StatusCode.NOT_FOUND, "booking_not_found")


def test_the_office_may_cancel_for_a_patient(stub, clinic, people):
    _, md = people.patient()
    booking = hold(stub, md, clinic.slot(clinic.chen, local(tomorrow(), 9)))
    cancelled = stub.CancelBooking(pb.CancelBookingRequest(booking_id=booking.booking_id, idempotency_key=key()),
                                   metadata=people.office()).booking
    assert cancelled.cancel_reason == "registration_office"


def test_templates_publish_once_and_only_the_office_may(stub, clinic, people, store):
    office = people.office()
    first = put_template(stub, office, template(clinic.chen, weekday=2, period=pb.PERIOD_AFTERNOON,
                                                start_time="13:30", end_time="16:30", slot_minutes=60))
    same_key_request = template(clinic.chen, weekday=3)
    k = key()
    second = put_template(stub, office, same_key_request, k)
    assert put_template(stub, office, same_key_request, k) == second
    # A new template where the doctor has one overwrote it unseen: it is refused, naming the one to edit.
    with pytest.raises(grpc.RpcError) as caught:
        put_template(stub, office, template(clinic.chen, weekday=3, capacity_per_slot=6))
    assert (caught.value.code(), reason_of(caught.value)) == (grpc.StatusCode.ALREADY_EXISTS, "template_exists")
    assert second.template_id in caught.value.details() and "template.weekday" in caught.value.details()
    changed = put_template(stub, office, template(clinic.chen, template_id=second.template_id, weekday=3,
                                                  capacity_per_slot=6))
    assert changed.template_id == second.template_id and changed.capacity_per_slot == 6
    listed = stub.ListSessionTemplates(pb.ListSessionTemplatesRequest(doctor_id=clinic.chen), metadata=office)
    assert [(t.weekday, t.start_time, t.capacity_per_slot) for t in listed.templates] == [(2, "13:30", 4),
                                                                                        (3, "08:00", 6)]
    clash = template(clinic.chen, template_id=first.template_id, weekday=3)
    assert refused(put_template, stub, office, clash) == (grpc.StatusCode.ALREADY_EXISTS, "template_exists")
    moved = put_template(stub, office, template(clinic.chen, template_id=first.template_id, weekday=4,
                                                period=pb.PERIOD_AFTERNOON, start_time="13:30", end_time="16:30",
                                                slot_minutes=60))
    assert (moved.template_id, moved.weekday) == (first.template_id, 4)

    _, patient = people.patient()
    assert refused(put_template, stub, patient, template(clinic.chen))[0] == grpc.StatusCode.PERMISSION_DENIED
    assert refused(stub.PublishSchedule, pb.PublishScheduleRequest(), metadata=patient)[0] == \
        grpc.StatusCode.PERMISSION_DENIED

    published = stub.PublishSchedule(pb.PublishScheduleRequest(days_ahead=14, release_now=True), metadata=office)
    assert published.sessions_created == 2 * 2  # two templates a week, two weeks
    assert stub.PublishSchedule(pb.PublishScheduleRequest(days_ahead=14, release_now=True), metadata=office) == \
        pb.PublishScheduleResponse()
    visible = stub.ListSlots(pb.ListSlotsRequest(doctor_id=clinic.chen)).slots
    assert len(visible) == published.slots_created


def test_a_schedule_published_without_release_now_waits_for_the_release_time(stub, clinic, people):
    office = people.office()
    for weekday in range(1, 8):
        put_template(stub, office, template(clinic.lin, weekday=weekday))
    published = stub.PublishSchedule(pb.PublishScheduleRequest(days_ahead=3), metadata=office)
    assert published.sessions_created == 3
    assert list(stub.ListSlots(pb.ListSlotsRequest(doctor_id=clinic.lin)).slots) == []
    # The office's override opens what is already published, without publishing it twice.
    again = stub.PublishSchedule(pb.PublishScheduleRequest(days_ahead=3, release_now=True), metadata=office)
    assert again.sessions_created == 0
    assert len(stub.ListSlots(pb.ListSlotsRequest(doctor_id=clinic.lin)).slots) == published.slots_created


def test_a_template_moved_to_another_period_or_doctor_changes_only_days_not_yet_published(stub, clinic, people):
    """Publishing knew a day by doctor and period only: a template moved to the
    afternoon made an afternoon session beside each morning already published."""
    office = people.office()
    day = tomorrow() + dt.timedelta(days=2)
    morning = put_template(stub, office, template(clinic.chen, weekday=day.isoweekday(), start_time="08:00",
                                                  end_time="12:00"))
    first = stub.PublishSchedule(pb.PublishScheduleRequest(days_ahead=7, release_now=True), metadata=office)
    assert first.sessions_created == 1
    put_template(stub, office, template(clinic.chen, template_id=morning.template_id, weekday=day.isoweekday(),
                                        period=pb.PERIOD_AFTERNOON, start_time="14:00", end_time="17:00"))
    assert stub.PublishSchedule(pb.PublishScheduleRequest(days_ahead=7, release_now=True),
                                metadata=office).sessions_created == 0
    put_template(stub, office, template(clinic.lin, template_id=morning.template_id, weekday=day.isoweekday(),
                                        period=pb.PERIOD_AFTERNOON, start_time="14:00", end_time="17:00"))
    assert stub.PublishSchedule(pb.PublishScheduleRequest(days_ahead=7, release_now=True),
                                metadata=office).sessions_created == 0
    sessions = stub.ListSessions(pb.ListSessionsRequest(service_date=day.isoformat()), metadata=office).sessions
    assert [(s.doctor_id, s.period, s.capacity) for s in sessions] == [(clinic.chen, pb.PERIOD_MORNING, 8 * 4)]
    # The week after, not yet published, is the template as it is now.
    later = stub.PublishSchedule(pb.PublishScheduleRequest(days_ahead=14, release_now=True), metadata=office)
    assert later.sessions_created == 1
    next_week = stub.ListSessions(pb.ListSessionsRequest(service_date=(day + dt.timedelta(days=7)).isoformat()),
                                  metadata=office).sessions
    assert [(s.doctor_id, s.period) for s in next_week] == [(clinic.lin, pb.PERIOD_AFTERNOON)]


def test_a_doctors_active_templates_on_one_weekday_may_not_overlap(stub, clinic, people):
    """Both were accepted: a doctor published twice over the same hours, and a
    patient could book both sessions at once."""
    office = people.office()

    def overlap(tpl: pb.SessionTemplate) -> tuple:
        with pytest.raises(grpc.RpcError) as caught:
            put_template(stub, office, tpl)
        return (caught.value.code(), reason_of(caught.value),
                dict(caught.value.trailing_metadata())["tuoguan-field"])

    morning = put_template(stub, office, template(clinic.chen, weekday=2, start_time="08:00", end_time="12:00"))
    assert overlap(template(clinic.chen, weekday=2, period=pb.PERIOD_AFTERNOON, start_time="11:00",
                            end_time="15:00")) == (grpc.StatusCode.INVALID_ARGUMENT, "template_overlaps",
                                                   "template.start_time")
    assert overlap(template(clinic.chen, weekday=2, period=pb.PERIOD_EVENING, start_time="07:00",
                            end_time="09:00"))[1:] == ("template_overlaps", "template.end_time")
    afternoon = put_template(stub, office, template(clinic.chen, weekday=2, period=pb.PERIOD_AFTERNOON,
                                                    start_time="12:00", end_time="15:00"))
    # Edited by id: the template it edits is not in its way.
    assert overlap(template(clinic.chen, template_id=afternoon.template_id, weekday=2, period=pb.PERIOD_AFTERNOON,
                            start_time="11:30", end_time="15:00"))[1:] == ("template_overlaps", "template.start_time")
    assert overlap(template(clinic.chen, template_id=morning.template_id, weekday=2, start_time="08:00",
                            end_time="12:30"))[1:] == ("template_overlaps", "template.end_time")
    put_template(stub, office, template(clinic.chen, template_id=morning.template_id, weekday=2, start_time="07:30",
                                        end_time="11:30"))
    # An inactive template publishes nothing: it may overlap until it is made active.
    evening = template(clinic.chen, weekday=2, period=pb.PERIOD_EVENING, start_time="14:00", end_time="18:00",
                       active=False)
    evening.template_id = put_template(stub, office, evening).template_id
    evening.active = True
    assert overlap(evening)[1:] == ("template_overlaps", "template.start_time")
    # Moved to a doctor whose hours it runs into.
    put_template(stub, office, template(clinic.lin, weekday=3, start_time="09:00", end_time="12:00"))
    assert overlap(template(clinic.lin, template_id=afternoon.template_id, weekday=3, period=pb.PERIOD_AFTERNOON,
                            start_time="11:00", end_time="15:00"))[1:] == ("template_overlaps", "template.start_time")
    # Another weekday or another doctor is no overlap; refusals stored nothing.
    put_template(stub, office, template(clinic.chen, weekday=4, start_time="11:00", end_time="15:00"))
    put_template(stub, office, template(clinic.wang, weekday=2, start_time="11:00", end_time="15:00"))
    listed = stub.ListSessionTemplates(pb.ListSessionTemplatesRequest(doctor_id=clinic.chen), metadata=office)
    assert [(t.template_id == morning.template_id, t.weekday, t.period, t.start_time, t.end_time, t.active)
            for t in listed.templates] == [
        (True, 2, pb.PERIOD_MORNING, "07:30", "11:30", True),
        (False, 2, pb.PERIOD_AFTERNOON, "12:00", "15:00", True),
        (False, 2, pb.PERIOD_EVENING, "14:00", "18:00", False),
        (False, 4, pb.PERIOD_MORNING, "11:00", "15:00", True)]


def test_templates_reject_bad_numbers(stub, clinic, people):
    office = people.office()
    cases = [
        (template(clinic.chen, weekday=8), "template.weekday"),
        (template(clinic.chen, period=pb.PERIOD_UNSPECIFIED), "template.period"),
        (template(clinic.chen, start_time="8am"), "template.start_time"),
        (template(clinic.chen, end_time="25:00"), "template.end_time"),
        (template(clinic.chen, end_time="07:00"), "template.end_time"),
        (template(clinic.chen, slot_minutes=0), "template.slot_minutes"),
        (template(clinic.chen, capacity_per_slot=-1), "template.capacity_per_slot"),
        (template("not-an-id"), "template.doctor_id"),
    ]
    for tpl, field in cases:
        with pytest.raises(grpc.RpcError) as caught:
            put_template(stub, office, tpl)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, field
        assert dict(caught.value.trailing_metadata())["tuoguan-field"] == field
    assert refused(put_template, stub, office, template("6d1b0c6e-0000-4000-8000-000000000000")) == \
        (grpc.StatusCode.NOT_FOUND, "doctor_not_found")
    assert list(stub.ListSessionTemplates(pb.ListSessionTemplatesRequest(), metadata=office).templates) == []


def test_suspending_a_session_cancels_its_bookings_once(stub, clinic, people, store):
    day = tomorrow()
    slots = clinic.session(clinic.chen, [local(day, 9), local(day, 9, 30)], capacity=3)
    patients = [people.patient() for _ in range(3)]
    confirmed = hold(stub, patients[0][1], slots[0])
    confirm(store, confirmed, "pay-7")
    held = hold(stub, patients[1][1], slots[1])
    office = people.office()
    sessions = stub.ListSessions(pb.ListSessionsRequest(service_date=day.isoformat(),
                                                        department_id=clinic.thoracic), metadata=office).sessions
    (session,) = sessions
    assert (session.capacity, session.booked, session.held, session.free) == (6, 1, 1, 4)
    assert session.status == pb.SESSION_STATUS_OPEN and session.doctor_name == "陈建国"

    request = pb.SuspendSessionRequest(session_id=session.session_id, reason="doctor ill", idempotency_key=key())
    response = stub.SuspendSession(request, metadata=office)
    assert response.session.status == pb.SESSION_STATUS_SUSPENDED and response.session.suspend_reason == "doctor ill"
    assert {(b.booking_id, b.refund_due, b.cancel_reason) for b in response.cancelled_bookings} == {
        (confirmed.booking_id, True, "session_suspended"), (held.booking_id, False, "session_suspended")}
    assert stub.SuspendSession(request, metadata=office) == response

    cancelled = outbox_events(store, "BookingCancelled")
    assert sorted((e["booking_id"], e["refund_due"]) for e in cancelled) == sorted(
        [(confirmed.booking_id, True), (held.booking_id, False)])
    (suspended,) = outbox_events(store, "SessionSuspended")
    assert sorted(suspended["patient_ids"]) == sorted([patients[0][0], patients[1][0]])
    # What the patients' texts say (identity's worker sends them): the names, the period, each booking's refund.
    assert (suspended["doctor_name"], suspended["department_name"], suspended["period"]) == (
        "陈建国", "胸外科", "morning")
    assert sorted((b["booking_id"], b["patient_id"], b["refund_due"], b["starts_at"][11:16])
                  for b in suspended["bookings"]) == sorted(
        [(confirmed.booking_id, patients[0][0], True, local(day, 9).astimezone(dt.timezone.utc).strftime("%H:%M")),
         (held.booking_id, patients[1][0], False,
          local(day, 9, 30).astimezone(dt.timezone.utc).strftime("%H:%M"))])
    assert [b["booking_id"] for b in suspended["bookings"]] == suspended["cancelled_booking_ids"]
    assert all(slot_counters(store, s)["held"] == slot_counters(store, s)["booked"] == 0 for s in slots)

    assert refused(hold, stub, patients[2][1], slots[0]) == (grpc.StatusCode.FAILED_PRECONDITION,
                                                             "session_suspended")
    assert list(stub.ListSlots(pb.ListSlotsRequest(doctor_id=clinic.chen)).slots) == []
    again = pb.SuspendSessionRequest(session_id=session.session_id, reason="again", idempotency_key=key())
    assert refused(stub.SuspendSession, again, metadata=office) == (grpc.StatusCode.FAILED_PRECONDITION,
                                                                     "session_already_suspended")
    _, patient = people.patient()
    assert refused(stub.SuspendSession, again, metadata=patient)[0] == grpc.StatusCode.PERMISSION_DENIED


def test_a_suspension_needs_a_reason_of_at_most_200_characters(stub, clinic, people):
    """The reason is all the patients are told of why: three spaces were accepted as one, and the portal's
    form allowed 200 characters where the service allowed 500."""
    office = people.office()
    booking = hold(stub, people.patient()[1], clinic.slot(clinic.chen, local(tomorrow(), 9)))

    def suspend(reason: str):
        return stub.SuspendSession(pb.SuspendSessionRequest(session_id=booking.session_id, reason=reason,
                                                            idempotency_key=key()), metadata=office)

    for reason in ("", "   ", "\u3000\t ", "医" * 201):
        with pytest.raises(grpc.RpcError) as caught:
            suspend(reason)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, repr(reason)
        assert dict(caught.value.trailing_metadata())["tuoguan-field"] == "reason"
    assert stub.GetBooking(pb.GetBookingRequest(booking_id=booking.booking_id), metadata=office).booking.status == \
        pb.BOOKING_STATUS_HELD, "refused: nothing suspended"
    assert suspend("  " + "医" * 200 + " ").session.suspend_reason == "医" * 200


def test_suspending_a_session_cancels_check_ins_whose_slot_has_not_started(stub, clinic, people, store):
    """Check-in opens at the start of the day, hours before the slot: those
    patients are refunded and told like confirmed ones (they stayed checked in,
    unrefunded and untold). A checked-in patient whose slot has started has been
    or is being seen and keeps the booking."""
    now = utcnow()
    today = SHANGHAI.local_date(now)
    early, late = clinic.session(clinic.chen, [now + dt.timedelta(hours=1), now + dt.timedelta(hours=3)],
                                 service_date=today, period="evening")
    seen, waiting, coming = people.patient(), people.patient(), people.patient()
    bookings = {}
    for name, (_, md), slot_id in (("seen", seen, early), ("waiting", waiting, late), ("coming", coming, late)):
        bookings[name] = hold(stub, md, slot_id)
        confirm(store, bookings[name], f"pay-{name}")
    office = people.office()
    for name in ("seen", "waiting"):
        stub.CheckInBooking(pb.CheckInBookingRequest(booking_id=bookings[name].booking_id), metadata=office)
    session_id = bookings["seen"].session_id

    # The doctor is called away once the early slot has started.
    later = now + dt.timedelta(hours=1, minutes=5)
    request = pb.SuspendSessionRequest(session_id=session_id, reason="called to theatre", idempotency_key=key())
    response = store.suspend_session(Idempotent.of("suspend", "office-1", request.idempotency_key, request,
                                                   pb.SuspendSessionResponse),
                                     session_id, request.reason, later)
    assert sorted((b.booking_id, b.status, b.refund_due) for b in response.cancelled_bookings) == sorted(
        [(bookings["waiting"].booking_id, pb.BOOKING_STATUS_CANCELLED, True),
         (bookings["coming"].booking_id, pb.BOOKING_STATUS_CANCELLED, True)])
    assert sorted((e["booking_id"], e["refund_due"], e["payment_id"]) for e in outbox_events(store, "BookingCancelled")) \
        == sorted([(bookings["waiting"].booking_id, True, "pay-waiting"),
                   (bookings["coming"].booking_id, True, "pay-coming")])
    (suspended,) = outbox_events(store, "SessionSuspended")
    assert sorted(suspended["patient_ids"]) == sorted([waiting[0], coming[0]])
    assert stub.GetBooking(pb.GetBookingRequest(booking_id=bookings["seen"].booking_id),
                           metadata=seen[1]).booking.status == pb.BOOKING_STATUS_CHECKED_IN
    assert (slot_counters(store, early)["booked"], slot_counters(store, late)["booked"]) == (1, 0)
    assert response.session.booked == 1


def test_check_in_on_the_day_and_no_show_after_the_start(stub, clinic, people, store):
    now = utcnow()
    today = SHANGHAI.local_date(now)
    later = clinic.slot(clinic.chen, now + dt.timedelta(hours=3), service_date=today, period="evening")
    starting = clinic.slot(clinic.wang, now.replace(microsecond=0) + dt.timedelta(seconds=5), service_date=today,
                           period="evening")
    _, md = people.patient()
    visit, missed = hold(stub, md, later), hold(stub, md, starting)
    office = people.office()
    assert refused(stub.CheckInBooking, pb.CheckInBookingRequest(booking_id=visit.booking_id), metadata=office) == \
        (grpc.StatusCode.FAILED_PRECONDITION, "booking_not_confirmed")
    confirm(store, visit, "pay-a")
    confirm(store, missed, "pay-b")
    checked_in = stub.CheckInBooking(pb.CheckInBookingRequest(booking_id=visit.booking_id), metadata=office).booking
    assert checked_in.status == pb.BOOKING_STATUS_CHECKED_IN and checked_in.queue_number == 1
    assert stub.CheckInBooking(pb.CheckInBookingRequest(booking_id=visit.booking_id), metadata=office).booking == \
        checked_in
    assert refused(stub.CheckInBooking, pb.CheckInBookingRequest(booking_id=visit.booking_id), metadata=md)[0] == \
        grpc.StatusCode.PERMISSION_DENIED

    no_show = pb.MarkNoShowRequest(booking_id=missed.booking_id)
    if utcnow() < dt.datetime.fromisoformat(missed.starts_at):
        assert refused(stub.MarkNoShow, no_show, metadata=office) == (grpc.StatusCode.FAILED_PRECONDITION,
                                                                     "visit_not_started")
    time.sleep(max(0.0, (dt.datetime.fromisoformat(missed.starts_at) - utcnow()).total_seconds()) + 0.1)
    assert stub.MarkNoShow(no_show, metadata=office).booking.status == pb.BOOKING_STATUS_NO_SHOW
    assert [e["booking_id"] for e in outbox_events(store, "BookingCheckedIn")] == [visit.booking_id]
    assert [e["booking_id"] for e in outbox_events(store, "BookingMarkedNoShow")] == [missed.booking_id]
    assert slot_counters(store, later)["booked"] == 1  # a visit keeps its place


def test_a_no_show_who_comes_late_is_checked_in_unless_they_booked_the_department_again(stub, clinic, people, store):
    now = utcnow()
    today = SHANGHAI.local_date(now)
    starts = now.replace(microsecond=0) + dt.timedelta(seconds=5)
    _, late_md = people.patient()
    _, rebooker_md = people.patient()
    _, stood_down_md = people.patient()
    late = hold(stub, late_md, clinic.slot(clinic.wang, starts, service_date=today, period="evening"))
    missed = hold(stub, rebooker_md, clinic.slot(clinic.chen, starts, service_date=today, period="evening"))
    stood_down = hold(stub, stood_down_md, clinic.slot(clinic.zhang, starts, service_date=today, period="evening"))
    for booking in (late, missed, stood_down):
        confirm(store, booking, f"pay-{booking.booking_id}")
    office = people.office()
    time.sleep(max(0.0, (starts - utcnow()).total_seconds()) + 0.1)
    marked = [stub.MarkNoShow(pb.MarkNoShowRequest(booking_id=b.booking_id), metadata=office).booking
              for b in (late, missed, stood_down)]
    assert [b.status for b in marked] == [pb.BOOKING_STATUS_NO_SHOW] * 3

    # The doctor of a suspended session is not there: nobody is checked in to it, a late no-show neither.
    stub.SuspendSession(pb.SuspendSessionRequest(session_id=stood_down.session_id, reason="医生临时停诊",
                                                 idempotency_key=key()), metadata=office)
    assert refused(stub.CheckInBooking, pb.CheckInBookingRequest(booking_id=stood_down.booking_id),
                   metadata=office) == (grpc.StatusCode.FAILED_PRECONDITION, "session_suspended")

    arrived = stub.CheckInBooking(pb.CheckInBookingRequest(booking_id=late.booking_id), metadata=office).booking
    assert arrived.status == pb.BOOKING_STATUS_CHECKED_IN and arrived.queue_number == marked[0].queue_number > 0
    assert [e["booking_id"] for e in outbox_events(store, "BookingCheckedIn")] == [late.booking_id]
    assert slot_counters(store, late.slot_id)["booked"] == 1  # the place was kept all along

    # A no-show frees the patient's day: they booked thoracic surgery again, with another doctor.
    again = hold(stub, rebooker_md, clinic.slot(clinic.lin, now + dt.timedelta(hours=3), service_date=today,
                                                period="evening"))
    confirm(store, again, "pay-again")
    assert refused(stub.CheckInBooking, pb.CheckInBookingRequest(booking_id=missed.booking_id), metadata=office) == \
        (grpc.StatusCode.FAILED_PRECONDITION, "booked_again")
    assert stub.GetBooking(pb.GetBookingRequest(booking_id=missed.booking_id),
                           metadata=rebooker_md).booking.status == pb.BOOKING_STATUS_NO_SHOW
    assert stub.CheckInBooking(pb.CheckInBookingRequest(booking_id=again.booking_id),
                               metadata=office).booking.status == pb.BOOKING_STATUS_CHECKED_IN


def test_a_cancellation_racing_a_check_in_is_refused_cleanly(stub, clinic, people, store):
    """Check-in takes the slot's lock as every writer of a booking's status
    does: a cancellation waiting behind it reads the checked-in booking and is
    refused, never half-way through (it was INTERNAL: read CONFIRMED, then
    found nothing to cancel)."""
    import threading

    import psycopg

    now = utcnow()
    today = SHANGHAI.local_date(now)
    slot_id = clinic.slot(clinic.chen, now + dt.timedelta(hours=4), service_date=today, period="evening")
    _, md = people.patient()
    booking = hold(stub, md, slot_id)
    confirm(store, booking)
    office = people.office()
    outcomes: dict[str, object] = {}

    def call(name, fn):
        try:
            outcomes[name] = fn()
        except grpc.RpcError as exc:
            outcomes[name] = (exc.code(), reason_of(exc))

    # The booking's row held by someone else: check-in waits on it (holding the
    # slot's lock now), the cancellation behind check-in.
    with psycopg.connect(store.db.url) as blocker:
        blocker.execute("SELECT 1 FROM bookings WHERE id = %s FOR UPDATE", (booking.booking_id,))
        check_in = threading.Thread(target=call, args=("check_in", lambda: stub.CheckInBooking(
            pb.CheckInBookingRequest(booking_id=booking.booking_id), metadata=office).booking.status))
        check_in.start()
        time.sleep(0.5)
        cancel = threading.Thread(target=call, args=("cancel", lambda: stub.CancelBooking(
            pb.CancelBookingRequest(booking_id=booking.booking_id, idempotency_key=key()), metadata=md)))
        cancel.start()
        time.sleep(0.5)
        blocker.rollback()
    check_in.join(10)
    cancel.join(10)
    assert outcomes["check_in"] == pb.BOOKING_STATUS_CHECKED_IN
    assert outcomes["cancel"] == (grpc.StatusCode.FAILED_PRECONDITION, "booking_not_cancellable")
    assert outbox_events(store, "BookingCancelled") == []
    assert slot_counters(store, slot_id)["booked"] == 1


def test_a_capture_after_the_hold_ended_is_rejected_and_ends_the_hold_whether_or_not_the_timer_ran(
        stub, clinic, people, store):
    slot_id = clinic.slot(clinic.chen, local(tomorrow(), 9), capacity=2)
    _, md = people.patient()
    booking = hold(stub, md, slot_id)
    ended = dt.datetime.fromisoformat(booking.hold_expires_at)
    payment = CapturedPayment("pay-late", booking.patient_id, booking.fee_fen)
    with store.db.transaction() as cur:
        # The expiry timer has not come by yet: the booking is still HELD in the table.
        (decision,) = store.apply_payments_captured(cur, [(booking.booking_id, payment, None)],
                                                    ended + dt.timedelta(seconds=1))
    assert decision.reason == "booking_expired"
    assert stub.GetBooking(pb.GetBookingRequest(booking_id=booking.booking_id), metadata=md).booking.status == \
        pb.BOOKING_STATUS_EXPIRED
    assert slot_counters(store, slot_id)["held"] == 0
    assert [(e["booking_id"], e["reason"]) for e in outbox_events(store, "PaymentRejected")] == \
        [(booking.booking_id, "booking_expired")]
    assert [(e["booking_id"], e["reason"]) for e in outbox_events(store, "HoldReleased")] == \
        [(booking.booking_id, "expired")]
    # The same capture again (billing redelivers): rejected again, the hold not released twice.
    with store.db.transaction() as cur:
        (again,) = store.apply_payments_captured(cur, [(booking.booking_id, payment, None)],
                                                 ended + dt.timedelta(seconds=2))
    assert again.reason == "booking_expired"
    assert len(outbox_events(store, "HoldReleased")) == 1 and slot_counters(store, slot_id)["held"] == 0


def test_a_session_that_is_over_is_not_suspended(stub, clinic, people, store):
    """Its patients came or did not: suspending it by mistake would refund them all."""
    now = utcnow()
    today = SHANGHAI.local_date(now)
    slots = clinic.session(clinic.chen, [now - dt.timedelta(hours=3), now - dt.timedelta(hours=2, minutes=30)],
                           service_date=today, period="evening")
    with store.db.transaction() as cur:
        cur.execute("SELECT session_id FROM slots WHERE id = %s", (slots[0],))
        session_id = str(cur.fetchone()["session_id"])
    office = people.office()
    request = pb.SuspendSessionRequest(session_id=session_id, reason="entered by mistake", idempotency_key=key())
    assert refused(stub.SuspendSession, request, metadata=office) == (grpc.StatusCode.FAILED_PRECONDITION,
                                                                      "session_over")
    with store.db.transaction() as cur:
        cur.execute("SELECT status FROM sessions WHERE id = %s", (session_id,))
        assert cur.fetchone()["status"] == "OPEN"
    assert outbox_events(store, "SessionSuspended") == []


UNKNOWN = "6d1b0c6e-0000-4000-8000-00000000abcd"


def test_a_search_naming_what_the_catalogue_lacks_is_not_found_not_an_empty_list(stub, clinic, people):
    office = people.office()
    searches = [
        (stub.ListDoctors, pb.ListDoctorsRequest(department_id=UNKNOWN), (), "department_not_found"),
        (stub.ListSlots, pb.ListSlotsRequest(department_id=UNKNOWN), (), "department_not_found"),
        (stub.ListSlots, pb.ListSlotsRequest(doctor_id=UNKNOWN), (), "doctor_not_found"),
        (stub.ListSlots, pb.ListSlotsRequest(department_id=clinic.thoracic, doctor_id=UNKNOWN), (), "doctor_not_found"),
        (stub.ListSessions, pb.ListSessionsRequest(department_id=UNKNOWN), office, "department_not_found"),
        (stub.ListSessions, pb.ListSessionsRequest(doctor_id=UNKNOWN), office, "doctor_not_found"),
        (stub.ListSessionTemplates, pb.ListSessionTemplatesRequest(doctor_id=UNKNOWN), office, "doctor_not_found"),
    ]
    for call, request, metadata, reason in searches:
        assert refused(call, request, metadata=metadata) == (grpc.StatusCode.NOT_FOUND, reason), request
    # Known ones with nothing to show are an empty answer, as before.
    assert list(stub.ListSlots(pb.ListSlotsRequest(doctor_id=clinic.zhang)).slots) == []
    assert list(stub.ListSessions(pb.ListSessionsRequest(department_id=clinic.oncology), metadata=office).sessions) == []
    assert list(stub.ListSessionTemplates(pb.ListSessionTemplatesRequest(doctor_id=clinic.zhang),
                                          metadata=office).templates) == []
    assert len(stub.ListDoctors(pb.ListDoctorsRequest(department_id=clinic.oncology)).doctors) == 1


def test_a_template_retry_that_spells_the_ids_otherwise_is_the_same_request(stub, clinic, people):
    """Every other write fingerprints its request as parsed; the template's
    fingerprinted the bytes, so a retry with the doctor's id in capitals (or a
    time with a space) was refused as a reused key."""
    office = people.office()
    k = key()
    first = put_template(stub, office, template(clinic.chen, weekday=5), k)
    again = put_template(stub, office, template(clinic.chen.upper(), weekday=5, start_time=" 08:00"), k)
    assert again == first
    edit_key = key()
    edited = put_template(stub, office, template(clinic.chen, template_id=first.template_id, weekday=5,
                                                 capacity_per_slot=7), edit_key)
    assert put_template(stub, office, template(clinic.chen, template_id=first.template_id.upper(), weekday=5,
                                               capacity_per_slot=7), edit_key) == edited
    # Another request under the key is still refused.
    assert refused(put_template, stub, office, template(clinic.chen, weekday=5, capacity_per_slot=3), k) == (
        grpc.StatusCode.INVALID_ARGUMENT, "idempotency_key_reused")


def test_a_no_show_is_not_checked_in_over_a_visit_booked_since_at_the_same_time(stub, clinic, people, store):
    """A no-show frees the patient's time as well as their day: a visit they
    booked since in another department at that time is the one they keep.
    Checking the no-show in gave them two standing bookings at once, which no
    hold may make (booked_over, in the office's words)."""
    now = utcnow()
    today = SHANGHAI.local_date(now)
    starts = now.replace(microsecond=0) + dt.timedelta(seconds=3)
    _, md = people.patient()
    missed = hold(stub, md, clinic.slot(clinic.chen, starts, service_date=today, period="evening", minutes=60))
    confirm(store, missed, "pay-missed")
    office = people.office()
    time.sleep(max(0.0, (starts - utcnow()).total_seconds()) + 0.1)
    stub.MarkNoShow(pb.MarkNoShowRequest(booking_id=missed.booking_id), metadata=office)
    # Within the missed visit's hour, with another department.
    meanwhile = hold(stub, md, clinic.slot(clinic.wang, utcnow() + dt.timedelta(minutes=10), service_date=today,
                                           period="evening"))
    confirm(store, meanwhile, "pay-meanwhile")
    assert refused(stub.CheckInBooking, pb.CheckInBookingRequest(booking_id=missed.booking_id), metadata=office) == \
        (grpc.StatusCode.FAILED_PRECONDITION, "booked_over")
    assert outbox_events(store, "BookingCheckedIn") == []
    # Once that visit is called off, the late patient is checked in as any other.
    stub.CancelBooking(pb.CancelBookingRequest(booking_id=meanwhile.booking_id, idempotency_key=key()),
                       metadata=office)
    assert stub.CheckInBooking(pb.CheckInBookingRequest(booking_id=missed.booking_id),
                               metadata=office).booking.status == pb.BOOKING_STATUS_CHECKED_IN
