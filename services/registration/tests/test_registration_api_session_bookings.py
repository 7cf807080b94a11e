"""The registration office's day view through the gRPC API against the real
PostgreSQL: a session's bookings in every status, the day's sessions of every
doctor with their places, and editing templates."""
from __future__ import annotations

import datetime as dt

import grpc
import pytest
from registration.domain.rules import CapturedPayment
from registration_testkit import hold, key, local, refused, slot_counters, tomorrow
from tuoguan.registration.v1 import registration_pb2 as pb
from tuoguan_common import auth
from tuoguan_common.outbox import utcnow

pytestmark = pytest.mark.integration

UNKNOWN_ID = "6d1b0c6e-0000-4000-8000-000000000000"


def confirm(store, booking: pb.Booking, payment_id: str) -> None:
    """What the worker does when billing's PaymentCaptured arrives."""
    with store.db.transaction() as cur:
        store.apply_payments_captured(
            cur, [(booking.booking_id, CapturedPayment(payment_id, booking.patient_id, booking.fee_fen), None)], utcnow())


def overdue(store, booking: pb.Booking) -> None:
    """The hold's time has passed (the expiry timer has not run yet)."""
    with store.db.transaction() as cur:
        cur.execute("UPDATE bookings SET hold_expires_at = %s WHERE id = %s",
                    (utcnow() - dt.timedelta(seconds=5), booking.booking_id))


def session_of(stub, office, day: dt.date, doctor_id: str) -> pb.Session:
    (session,) = stub.ListSessions(pb.ListSessionsRequest(service_date=day.isoformat(), doctor_id=doctor_id),
                                   metadata=office).sessions
    return session


def error_field(error: grpc.RpcError) -> str | None:
    return dict(error.trailing_metadata() or ()).get("tuoguan-field")


def test_the_office_sees_every_booking_of_a_session_in_every_status_in_order(stub, clinic, people, store):
    day = tomorrow()
    nine, half_past = clinic.session(clinic.chen, [local(day, 9), local(day, 9, 30)], capacity=10)
    other_doctor = clinic.slot(clinic.lin, local(day, 9))
    patients = [people.patient()[1] for _ in range(9)]
    b1, b2, b3, b4 = (hold(stub, patients[i], nine) for i in range(4))
    b5, b6, b7, b8 = (hold(stub, patients[i], half_past) for i in range(4, 8))
    hold(stub, patients[8], other_doctor)  # another session's: never listed

    confirm(store, b2, "pay-2")  # queue number 1
    confirm(store, b1, "pay-1")  # queue number 2
    confirm(store, b5, "pay-5")  # queue number 3
    confirm(store, b8, "pay-8")  # queue number 4
    store.check_in(b1.booking_id, day, utcnow())
    store.mark_no_show(b5.booking_id, local(day, 10))
    for booking, md in ((b4, patients[3]), (b8, patients[7])):
        stub.CancelBooking(pb.CancelBookingRequest(booking_id=booking.booking_id, idempotency_key=key()),
                           metadata=md)
    overdue(store, b6)
    assert store.expire_due_holds(utcnow()) == 1
    overdue(store, b7)  # still HELD, its place not given back yet

    office = people.office()
    session_id = b1.session_id
    reply = stub.ListSessionBookings(pb.ListSessionBookingsRequest(session_id=session_id), metadata=office)
    listed = [(b.booking_id, b.status, b.queue_number) for b in reply.bookings]
    assert listed == [
        (b2.booking_id, pb.BOOKING_STATUS_CONFIRMED, 1),
        (b1.booking_id, pb.BOOKING_STATUS_CHECKED_IN, 2),
        (b3.booking_id, pb.BOOKING_STATUS_HELD, 0),
        (b4.booking_id, pb.BOOKING_STATUS_CANCELLED, 0),
        (b5.booking_id, pb.BOOKING_STATUS_NO_SHOW, 3),
        (b8.booking_id, pb.BOOKING_STATUS_CANCELLED, 4),
        (b6.booking_id, pb.BOOKING_STATUS_EXPIRED, 0),
        (b7.booking_id, pb.BOOKING_STATUS_HELD, 0),
    ]
    assert {b.session_id for b in reply.bookings} == {session_id}
    by_id = {b.booking_id: b for b in reply.bookings}
    assert by_id[b8.booking_id].refund_due and by_id[b8.booking_id].payment_id == "pay-8"
    assert by_id[b6.booking_id].cancel_reason == "expired"
    assert by_id[b1.booking_id].patient_id == b1.patient_id and by_id[b1.booking_id].doctor_name == "陈建国"

    # The session's places: the overdue hold no longer counts as held.
    assert (reply.session.session_id, reply.session.status) == (session_id, pb.SESSION_STATUS_OPEN)
    assert (reply.session.capacity, reply.session.booked, reply.session.held, reply.session.free) == (20, 3, 1, 16)
    assert reply.session == session_of(stub, office, day, clinic.chen)
    assert slot_counters(store, half_past)["held"] == 1  # what the expiry timer will give back

    admin = people.with_roles(auth.ADMIN)
    assert stub.ListSessionBookings(pb.ListSessionBookingsRequest(session_id=session_id), metadata=admin) == reply


def test_a_suspended_sessions_bookings_are_listed_cancelled(stub, clinic, people, store):
    day = tomorrow()
    slot_id = clinic.slot(clinic.wang, local(day, 14))
    booking = hold(stub, people.patient()[1], slot_id)
    confirm(store, booking, "pay-s")
    office = people.office()
    stub.SuspendSession(pb.SuspendSessionRequest(session_id=booking.session_id, reason="ill", idempotency_key=key()),
                        metadata=office)
    reply = stub.ListSessionBookings(pb.ListSessionBookingsRequest(session_id=booking.session_id), metadata=office)
    assert reply.session.status == pb.SESSION_STATUS_SUSPENDED and reply.session.suspend_reason == "ill"
    assert (reply.session.capacity, reply.session.free) == (5, 0)
    (cancelled,) = reply.bookings
    assert (cancelled.status, cancelled.cancel_reason, cancelled.refund_due) == \
        (pb.BOOKING_STATUS_CANCELLED, "session_suspended", True)

    clinic.slot(clinic.zhang, local(day, 9))
    session = session_of(stub, office, day, clinic.zhang)
    none_yet = stub.ListSessionBookings(pb.ListSessionBookingsRequest(session_id=session.session_id), metadata=office)
    assert list(none_yet.bookings) == [] and none_yet.session == session and session.free == 5


def test_only_the_office_lists_a_sessions_bookings_and_bad_ids_are_refused(stub, clinic, people):
    booking = hold(stub, people.patient()[1], clinic.slot(clinic.chen, local(tomorrow(), 9)))
    request = pb.ListSessionBookingsRequest(session_id=booking.session_id)
    _, patient = people.patient()
    assert refused(stub.ListSessionBookings, request, metadata=patient)[0] == grpc.StatusCode.PERMISSION_DENIED
    assert refused(stub.ListSessionBookings, request)[0] == grpc.StatusCode.UNAUTHENTICATED
    for role in (auth.SERVICE, auth.FINANCE):
        assert refused(stub.ListSessionBookings, request, metadata=people.with_roles(role))[0] == \
            grpc.StatusCode.PERMISSION_DENIED

    office = people.office()
    assert refused(stub.ListSessionBookings, pb.ListSessionBookingsRequest(session_id=UNKNOWN_ID),
                   metadata=office) == (grpc.StatusCode.NOT_FOUND, "session_not_found")
    for bad in ("ses-1", "", "   "):
        with pytest.raises(grpc.RpcError) as caught:
            stub.ListSessionBookings(pb.ListSessionBookingsRequest(session_id=bad), metadata=office)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, bad
        assert error_field(caught.value) == "session_id"


def test_a_days_sessions_of_every_doctor_or_of_one(stub, clinic, people, store):
    day = tomorrow()
    clinic.session(clinic.chen, [local(day, 8), local(day, 8, 30)], capacity=3)
    lin_morning = clinic.slot(clinic.lin, local(day, 9), capacity=2)
    clinic.slot(clinic.lin, local(day, 14), capacity=2)
    wang = clinic.slot(clinic.wang, local(day, 10), capacity=4)
    clinic.slot(clinic.zhang, local(day + dt.timedelta(days=1), 9))  # another day
    office = people.office()

    held = hold(stub, people.patient()[1], lin_morning)
    paid = hold(stub, people.patient()[1], lin_morning)
    confirm(store, paid, "pay-lin")
    stale = hold(stub, people.patient()[1], wang)
    overdue(store, stale)
    suspended = hold(stub, people.patient()[1], wang).session_id
    stub.SuspendSession(pb.SuspendSessionRequest(session_id=suspended, reason="meeting", idempotency_key=key()),
                        metadata=office)

    every = stub.ListSessions(pb.ListSessionsRequest(service_date=day.isoformat()), metadata=office).sessions
    assert [(s.doctor_name, s.period, s.status) for s in every] == [
        ("陈建国", pb.PERIOD_MORNING, pb.SESSION_STATUS_OPEN),
        ("林晓东", pb.PERIOD_MORNING, pb.SESSION_STATUS_OPEN),
        ("王丽华", pb.PERIOD_MORNING, pb.SESSION_STATUS_SUSPENDED),
        ("林晓东", pb.PERIOD_AFTERNOON, pb.SESSION_STATUS_OPEN),
    ]
    # The suspended session takes no bookings: none of its places is free.
    assert [(s.capacity, s.booked, s.held, s.free) for s in every] == [(6, 0, 0, 6), (2, 1, 1, 0), (4, 0, 0, 0),
                                                                       (2, 0, 0, 2)]
    assert held.session_id == every[1].session_id

    lin = stub.ListSessions(pb.ListSessionsRequest(service_date=day.isoformat(), doctor_id=clinic.lin),
                            metadata=office).sessions
    assert [(s.doctor_id, s.period) for s in lin] == [(clinic.lin, pb.PERIOD_MORNING),
                                                      (clinic.lin, pb.PERIOD_AFTERNOON)]
    both = pb.ListSessionsRequest(service_date=day.isoformat(), department_id=clinic.breast, doctor_id=clinic.lin)
    assert list(stub.ListSessions(both, metadata=office).sessions) == []
    # A doctor not in the catalogue is no doctor without sessions.
    with pytest.raises(grpc.RpcError) as caught:
        stub.ListSessions(pb.ListSessionsRequest(service_date=day.isoformat(), doctor_id=UNKNOWN_ID), metadata=office)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as caught:
        stub.ListSessions(pb.ListSessionsRequest(service_date=day.isoformat(), doctor_id="doc-lin"), metadata=office)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT and error_field(caught.value) == "doctor_id"

    # A stale hold counts nowhere once it has expired, and not as held before.
    wang_open = clinic.slot(clinic.wang, local(day, 15), capacity=2)
    fresh, late = hold(stub, people.patient()[1], wang_open), hold(stub, people.patient()[1], wang_open)
    overdue(store, late)
    afternoon = stub.ListSessions(pb.ListSessionsRequest(service_date=day.isoformat(), doctor_id=clinic.wang),
                                  metadata=office).sessions[-1]
    assert (afternoon.session_id, afternoon.held, afternoon.free) == (fresh.session_id, 1, 1)


def template(doctor_id: str, **overrides) -> pb.SessionTemplate:
    fields = dict(doctor_id=doctor_id, weekday=1, period=pb.PERIOD_MORNING, start_time="08:00", end_time="11:00",
                  slot_minutes=30, capacity_per_slot=4, active=True)
    fields.update(overrides)
    return pb.SessionTemplate(**fields)


def put_template(stub, md, tpl: pb.SessionTemplate) -> pb.SessionTemplate:
    return stub.PutSessionTemplate(pb.PutSessionTemplateRequest(template=tpl, idempotency_key=key()),
                                   metadata=md).template


def test_templates_are_edited_by_id_and_listed_for_every_doctor(stub, clinic, people):
    office = people.office()
    chen = put_template(stub, office, template(clinic.chen))
    wang = put_template(stub, office, template(clinic.wang, weekday=5, period=pb.PERIOD_AFTERNOON,
                                               start_time="13:00", end_time="17:00"))
    edited = put_template(stub, office, template(clinic.chen, template_id=chen.template_id, start_time="08:30",
                                                 end_time="12:00", slot_minutes=15, capacity_per_slot=2,
                                                 active=False))
    assert edited == template(clinic.chen, template_id=chen.template_id, start_time="08:30", end_time="12:00",
                              slot_minutes=15, capacity_per_slot=2, active=False)

    listed = stub.ListSessionTemplates(pb.ListSessionTemplatesRequest(), metadata=office).templates
    assert list(listed) == [edited, wang]  # every doctor's, by staff code
    only_wang = stub.ListSessionTemplates(pb.ListSessionTemplatesRequest(doctor_id=clinic.wang), metadata=office)
    assert list(only_wang.templates) == [wang]

    # Another doctor, weekday and period: still the same template.
    moved = put_template(stub, office, template(clinic.lin, template_id=chen.template_id, weekday=2))
    assert (moved.template_id, moved.doctor_id, moved.weekday) == (chen.template_id, clinic.lin, 2)
    assert [t.template_id for t in stub.ListSessionTemplates(pb.ListSessionTemplatesRequest(),
                                                             metadata=office).templates] == \
        [chen.template_id, wang.template_id]

    assert refused(put_template, stub, office, template(clinic.chen, template_id=UNKNOWN_ID)) == \
        (grpc.StatusCode.NOT_FOUND, "template_not_found")
    with pytest.raises(grpc.RpcError) as caught:
        put_template(stub, office, template(clinic.chen, template_id="tpl-1"))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_field(caught.value) == "template.template_id"
    _, patient = people.patient()
    assert refused(stub.ListSessionTemplates, pb.ListSessionTemplatesRequest(), metadata=patient)[0] == \
        grpc.StatusCode.PERMISSION_DENIED
