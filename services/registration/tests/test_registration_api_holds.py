"""Holding slots through the gRPC API against the real PostgreSQL: the rules,
idempotency, and no overbooking under concurrency."""
from __future__ import annotations

import datetime as dt
import threading
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
from registration_testkit import hold, key, local, reason_of, refused, slot_counters, tomorrow
from tuoguan.registration.v1 import registration_pb2 as pb

pytestmark = pytest.mark.integration


def race(stub, attempts: list[tuple[tuple, str]]) -> list[str]:
    """Fires every (token, slot) hold at the same moment; returns each outcome: held or the reason."""
    start = threading.Barrier(len(attempts))

    def attempt(md_and_slot):
        md, slot_id = md_and_slot
        start.wait()
        try:
            hold(stub, md, slot_id)
            return "held"
        except grpc.RpcError as exc:
            return reason_of(exc)

    with ThreadPoolExecutor(max_workers=len(attempts)) as pool:
        return list(pool.map(attempt, attempts))


def test_a_patient_holds_a_slot_and_sees_the_booking(stub, clinic, people):
    slot_id = clinic.slot(clinic.chen, local(tomorrow(), 9), capacity=3)
    patient_id, md = people.patient()
    booking = hold(stub, md, slot_id)
    assert booking.status == pb.BOOKING_STATUS_HELD
    assert booking.patient_id == patient_id and booking.slot_id == slot_id
    assert booking.fee_fen == 5000 and booking.doctor_name == "陈建国" and booking.department_name == "胸外科"
    assert booking.booking_number.startswith(tomorrow().strftime("%Y%m%d") + "-")
    assert booking.period == pb.PERIOD_MORNING and booking.service_date == tomorrow().isoformat()
    held_until = dt.datetime.fromisoformat(booking.hold_expires_at)
    assert dt.timedelta(minutes=9) < held_until - dt.datetime.now(dt.timezone.utc) <= dt.timedelta(minutes=10)

    assert stub.GetBooking(pb.GetBookingRequest(booking_id=booking.booking_id), metadata=md).booking == booking
    mine = stub.ListMyBookings(pb.ListMyBookingsRequest(), metadata=md).bookings
    assert [b.booking_id for b in mine] == [booking.booking_id]
    (listed,) = stub.ListSlots(pb.ListSlotsRequest(doctor_id=clinic.chen)).slots
    assert (listed.capacity, listed.remaining) == (3, 2)


def test_a_patients_bookings_come_a_page_at_a_time_the_latest_visit_first(stub, clinic, people):
    # A patient under treatment books for years: the list is paged, not cut off at 200 unsaid.
    _, md = people.patient()
    held = [hold(stub, md, clinic.slot(clinic.chen, local(tomorrow() + dt.timedelta(days=i), 9))).booking_id
            for i in range(5)]
    seen, token, pages = [], "", 0
    while True:
        reply = stub.ListMyBookings(pb.ListMyBookingsRequest(page_size=2, page_token=token), metadata=md)
        assert len(reply.bookings) <= 2
        seen += [b.booking_id for b in reply.bookings]
        pages, token = pages + 1, reply.next_page_token
        if not token:
            break
    assert pages == 3 and seen == held[::-1]
    whole = stub.ListMyBookings(pb.ListMyBookingsRequest(), metadata=md)
    assert [b.booking_id for b in whole.bookings] == seen and whole.next_page_token == ""
    first = stub.ListMyBookings(pb.ListMyBookingsRequest(page_size=4), metadata=md)
    assert [b.booking_id for b in first.bookings] == seen[:4] and first.next_page_token
    for size, bad, field in ((-1, "", "page_size"), (0, "garbage", "page_token"),
                             (0, first.next_page_token[:-3], "page_token")):
        with pytest.raises(grpc.RpcError) as caught:
            stub.ListMyBookings(pb.ListMyBookingsRequest(page_size=size, page_token=bad), metadata=md)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert dict(caught.value.trailing_metadata())["tuoguan-field"] == field


def test_the_slot_rules_each_give_their_reason(stub, clinic, people):
    _, md = people.patient()
    day = tomorrow()
    not_released = clinic.slot(clinic.chen, local(day, 9), released_at=dt.datetime.now(dt.timezone.utc)
                               + dt.timedelta(hours=1))
    assert refused(hold, stub, md, not_released) == (grpc.StatusCode.FAILED_PRECONDITION, "slot_not_released")

    full = clinic.slot(clinic.lin, local(day, 14), capacity=1)
    hold(stub, people.patient()[1], full)
    assert refused(hold, stub, md, full) == (grpc.StatusCode.FAILED_PRECONDITION, "slot_full")

    started = clinic.slot(clinic.wang, dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=5),
                          service_date=day - dt.timedelta(days=1))
    assert refused(hold, stub, md, started) == (grpc.StatusCode.FAILED_PRECONDITION, "slot_in_past")

    assert refused(hold, stub, md, "6d1b0c6e-0000-4000-8000-000000000000") == (grpc.StatusCode.NOT_FOUND,
                                                                             "slot_not_found")


def test_one_booking_per_department_per_day(stub, clinic, people):
    morning = clinic.slot(clinic.chen, local(tomorrow(), 9))
    afternoon = clinic.slot(clinic.lin, local(tomorrow(), 15))  # same department, other doctor
    other_department = clinic.slot(clinic.wang, local(tomorrow(), 16))
    _, md = people.patient()
    hold(stub, md, morning)
    assert refused(hold, stub, md, afternoon) == (grpc.StatusCode.FAILED_PRECONDITION, "one_per_department_per_day")
    assert hold(stub, md, other_department).status == pb.BOOKING_STATUS_HELD


def test_no_two_bookings_at_overlapping_times(stub, clinic, people):
    thoracic = clinic.slot(clinic.chen, local(tomorrow(), 9), minutes=30)
    breast = clinic.slot(clinic.wang, local(tomorrow(), 9, 15), minutes=30)
    _, md = people.patient()
    hold(stub, md, thoracic)
    assert refused(hold, stub, md, breast) == (grpc.StatusCode.FAILED_PRECONDITION, "overlapping_booking")


def test_active_booking_cap(stub, clinic, people):
    _, md = people.patient()
    for days in range(1, 6):
        hold(stub, md, clinic.slot(clinic.chen, local(tomorrow() + dt.timedelta(days=days), 9)))
    sixth = clinic.slot(clinic.wang, local(tomorrow() + dt.timedelta(days=7), 9))
    assert refused(hold, stub, md, sixth) == (grpc.StatusCode.FAILED_PRECONDITION, "active_booking_cap")


def test_holding_needs_a_patient_token_and_a_valid_request(stub, clinic, people):
    slot_id = clinic.slot(clinic.chen, local(tomorrow(), 9))
    assert refused(stub.HoldSlot, pb.HoldSlotRequest(slot_id=slot_id, idempotency_key=key()))[0] == \
        grpc.StatusCode.UNAUTHENTICATED
    assert refused(hold, stub, people.office(), slot_id)[0] == grpc.StatusCode.PERMISSION_DENIED
    _, md = people.patient()
    with pytest.raises(grpc.RpcError) as bad_id:
        stub.HoldSlot(pb.HoldSlotRequest(slot_id="slot-7", idempotency_key=key()), metadata=md)
    assert bad_id.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert dict(bad_id.value.trailing_metadata())["tuoguan-field"] == "slot_id"
    with pytest.raises(grpc.RpcError) as no_key:
        stub.HoldSlot(pb.HoldSlotRequest(slot_id=slot_id), metadata=md)
    assert dict(no_key.value.trailing_metadata())["tuoguan-field"] == "idempotency_key"
    # PostgreSQL's text cannot hold NUL: refused at the door, not INTERNAL from the batch's write.
    for bad_key in ("a\x00b", "line\nbreak", "k" * 201):
        with pytest.raises(grpc.RpcError) as bad:
            stub.HoldSlot(pb.HoldSlotRequest(slot_id=slot_id, idempotency_key=bad_key), metadata=md)
        assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT, bad_key
        assert dict(bad.value.trailing_metadata())["tuoguan-field"] == "idempotency_key"
    assert slot_counters(clinic.store, slot_id)["held"] == 0


def test_repeating_a_hold_returns_the_first_booking_and_takes_one_place(stub, clinic, people, store):
    slot_id = clinic.slot(clinic.chen, local(tomorrow(), 9), capacity=4)
    _, md = people.patient()
    same_key = key()
    first = hold(stub, md, slot_id, same_key)
    again = hold(stub, md, slot_id, same_key)
    assert again == first
    assert slot_counters(store, slot_id)["held"] == 1
    with store.db.transaction() as cur:
        cur.execute("SELECT count(*) AS n FROM outbox WHERE event_type = 'SlotHeld'")
        assert cur.fetchone()["n"] == 1
    other_slot = clinic.slot(clinic.wang, local(tomorrow(), 15))
    assert refused(hold, stub, md, other_slot, same_key) == (grpc.StatusCode.INVALID_ARGUMENT, "idempotency_key_reused")


def test_a_retry_that_spells_the_ids_in_capitals_is_the_same_request(stub, clinic, people, store):
    """Ids are read in their canonical form, so a retry that spells one
    otherwise (a client that upper-cases UUIDs) gets the first answer, not a
    refusal for reusing its key."""
    slot_id = clinic.slot(clinic.chen, local(tomorrow(), 9), capacity=4)
    _, md = people.patient()
    hold_key, cancel_key = key(), key()
    first = hold(stub, md, slot_id, hold_key)
    assert hold(stub, md, f"  {slot_id.upper()} ", hold_key) == first
    assert slot_counters(store, slot_id)["held"] == 1

    cancel = pb.CancelBookingRequest(booking_id=first.booking_id, idempotency_key=cancel_key)
    cancelled = stub.CancelBooking(cancel, metadata=md)
    again = stub.CancelBooking(pb.CancelBookingRequest(booking_id=first.booking_id.upper(), idempotency_key=cancel_key),
                               metadata=md)
    assert again == cancelled and again.booking.status == pb.BOOKING_STATUS_CANCELLED


def test_concurrent_repeats_of_one_hold_make_one_booking(stub, clinic, people, store):
    slot_id = clinic.slot(clinic.chen, local(tomorrow(), 9), capacity=10)
    _, md = people.patient()
    same_key = key()
    with ThreadPoolExecutor(max_workers=12) as pool:
        bookings = list(pool.map(lambda _: hold(stub, md, slot_id, same_key).booking_id, range(12)))
    assert len(set(bookings)) == 1
    assert slot_counters(store, slot_id)["held"] == 1


def test_many_patients_at_one_slot_exactly_its_capacity_wins(stub, clinic, people, store):
    capacity, patients = 17, 200
    slot_id = clinic.slot(clinic.chen, local(tomorrow(), 9), capacity=capacity)
    outcomes = race(stub, [(people.patient()[1], slot_id) for _ in range(patients)])
    assert outcomes.count("held") == capacity
    assert outcomes.count("slot_full") == patients - capacity
    counters = slot_counters(store, slot_id)
    assert counters["held"] == counters["held_bookings"] == capacity
    assert counters["booked"] == counters["booked_bookings"] == 0
    (listed,) = stub.ListSlots(pb.ListSlotsRequest(doctor_id=clinic.chen)).slots
    assert listed.remaining == 0


def test_one_patients_concurrent_holds_cannot_race_past_the_rules(stub, clinic, people, store):
    slots = clinic.session(clinic.chen, [local(tomorrow(), 8) + dt.timedelta(minutes=30 * i) for i in range(8)],
                           capacity=5)
    _, md = people.patient()
    outcomes = race(stub, [(md, slot_id) for slot_id in slots])
    assert outcomes.count("held") == 1
    assert outcomes.count("one_per_department_per_day") == len(slots) - 1
    assert sum(slot_counters(store, s)["held"] for s in slots) == 1
