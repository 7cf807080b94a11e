"""The booking rules as pure functions: no database, no clock."""
from __future__ import annotations

import datetime as dt

from hypothesis import given
from hypothesis import strategies as st
from registration.domain import rules
from registration.domain.model import BookingStatus, PatientBooking, Refusal, SlotState
from registration.domain.policy import BookingPolicy

UTC = dt.timezone.utc
NOW = dt.datetime(2026, 11, 30, 0, 0, tzinfo=UTC)  # Monday 08:00 in Shanghai
POLICY = BookingPolicy()


def slot(*, start=NOW + dt.timedelta(hours=2), minutes=30, department="thoracic", capacity=3, booked=0, held=0,
         released_at=NOW - dt.timedelta(hours=1), suspended=False, service_date=dt.date(2026, 11, 30)) -> SlotState:
    return SlotState("slot", department, service_date, start, start + dt.timedelta(minutes=minutes), capacity, booked,
                     held, released_at, suspended)


def booking(*, start=NOW + dt.timedelta(days=1), minutes=30, department="breast", status=BookingStatus.CONFIRMED,
            service_date=None, booking_id="b") -> PatientBooking:
    return PatientBooking(booking_id, status, department, service_date or (start + dt.timedelta(hours=8)).date(),
                          start, start + dt.timedelta(minutes=minutes))


def reason(refusal: Refusal | None) -> str | None:
    return refusal.reason if refusal else None


def test_a_released_open_future_slot_with_room_can_be_held():
    assert rules.hold_refusal(slot(), [], POLICY, NOW) is None


def test_slot_refusals_each_have_their_reason():
    assert reason(rules.slot_refusal(slot(released_at=NOW + dt.timedelta(seconds=1)), NOW)) == rules.SLOT_NOT_RELEASED
    assert reason(rules.slot_refusal(slot(suspended=True), NOW)) == rules.SESSION_SUSPENDED
    assert reason(rules.slot_refusal(slot(start=NOW), NOW)) == rules.SLOT_IN_PAST
    assert reason(rules.slot_refusal(slot(booked=2, held=1), NOW)) == rules.SLOT_FULL
    assert rules.slot_refusal(slot(booked=1, held=1), NOW) is None


def test_one_booking_per_department_per_service_day():
    same_day_same_department = booking(start=NOW + dt.timedelta(hours=6), department="thoracic",
                                       service_date=dt.date(2026, 11, 30))
    assert reason(rules.patient_refusal(slot(), [same_day_same_department], POLICY, NOW)) == \
        rules.ONE_PER_DEPARTMENT_PER_DAY
    other_department = booking(start=NOW + dt.timedelta(hours=6), department="breast",
                               service_date=dt.date(2026, 11, 30))
    assert rules.patient_refusal(slot(), [other_department], POLICY, NOW) is None


def test_a_visit_already_made_that_day_still_counts_but_ended_bookings_do_not():
    checked_in = booking(start=NOW - dt.timedelta(hours=1), department="thoracic", status=BookingStatus.CHECKED_IN,
                         service_date=dt.date(2026, 11, 30))
    assert reason(rules.patient_refusal(slot(), [checked_in], POLICY, NOW)) == rules.ONE_PER_DEPARTMENT_PER_DAY
    for ended in (BookingStatus.CANCELLED, BookingStatus.EXPIRED, BookingStatus.NO_SHOW):
        gone = booking(start=NOW + dt.timedelta(hours=2), department="thoracic", status=ended,
                       service_date=dt.date(2026, 11, 30))
        assert rules.patient_refusal(slot(), [gone], POLICY, NOW) is None


def test_active_booking_cap_counts_future_held_and_confirmed():
    mine = [booking(start=NOW + dt.timedelta(days=d), department=f"d{d}", booking_id=f"b{d}",
                    status=BookingStatus.HELD if d % 2 else BookingStatus.CONFIRMED) for d in range(1, 6)]
    assert reason(rules.patient_refusal(slot(), mine, POLICY, NOW)) == rules.ACTIVE_BOOKING_CAP
    assert rules.patient_refusal(slot(), mine[:4], POLICY, NOW) is None
    assert rules.patient_refusal(slot(), mine, BookingPolicy(active_booking_cap=6), NOW) is None


def test_overlapping_times_are_refused_across_departments():
    overlapping = booking(start=NOW + dt.timedelta(hours=2, minutes=15), department="breast",
                          service_date=dt.date(2026, 11, 30))
    assert reason(rules.patient_refusal(slot(), [overlapping], POLICY, NOW)) == rules.OVERLAPPING_BOOKING
    back_to_back = booking(start=NOW + dt.timedelta(hours=2, minutes=30), department="breast",
                           service_date=dt.date(2026, 11, 30))
    assert rules.patient_refusal(slot(), [back_to_back], POLICY, NOW) is None


@given(a_start=st.integers(0, 600), a_len=st.integers(5, 120), b_start=st.integers(0, 600), b_len=st.integers(5, 120))
def test_overlap_is_refused_exactly_when_the_intervals_intersect(a_start, a_len, b_start, b_len):
    wanted = slot(start=NOW + dt.timedelta(hours=1, minutes=a_start), minutes=a_len)
    other = booking(start=NOW + dt.timedelta(hours=1, minutes=b_start), minutes=b_len, department="breast",
                    service_date=dt.date(2026, 12, 1))
    intersects = a_start < b_start + b_len and b_start < a_start + a_len
    assert (reason(rules.patient_refusal(wanted, [other], POLICY, NOW)) == rules.OVERLAPPING_BOOKING) == intersects


@given(capacity=st.integers(1, 50), booked=st.integers(0, 50), held=st.integers(0, 50))
def test_a_slot_takes_a_hold_only_while_places_remain(capacity, booked, held):
    refusal = rules.slot_refusal(slot(capacity=capacity, booked=booked, held=held), NOW)
    assert (refusal is None) == (booked + held < capacity)


def test_cancel_until_the_cutoff_then_refused():
    starts = NOW + dt.timedelta(hours=3)
    assert rules.cancel_refusal(BookingStatus.CONFIRMED, starts, POLICY, NOW) is None
    assert rules.cancel_refusal(BookingStatus.HELD, starts, POLICY, starts - dt.timedelta(minutes=120)) is None
    late = starts - dt.timedelta(minutes=119)
    assert reason(rules.cancel_refusal(BookingStatus.CONFIRMED, starts, POLICY, late)) == rules.CANCEL_CUTOFF_PASSED
    assert reason(rules.cancel_refusal(BookingStatus.CANCELLED, starts, POLICY, NOW)) == rules.BOOKING_NOT_CANCELLABLE


def test_the_office_cancels_past_the_cutoff_until_the_visit_starts():
    starts = NOW + dt.timedelta(hours=1)  # inside the patients' 120-minute cut-off
    assert reason(rules.cancel_refusal(BookingStatus.CONFIRMED, starts, POLICY, NOW)) == rules.CANCEL_CUTOFF_PASSED
    for status in (BookingStatus.CONFIRMED, BookingStatus.HELD):
        assert rules.cancel_refusal(status, starts, POLICY, NOW, by_office=True) is None
    assert rules.cancel_refusal(BookingStatus.CONFIRMED, starts, POLICY, starts - dt.timedelta(seconds=1),
                                by_office=True) is None
    # From the visit's start it is checked in or a no-show: a cancellation would refund a missed visit
    # (before, days later too).
    for late in (starts, starts + dt.timedelta(minutes=5), starts + dt.timedelta(days=3)):
        assert reason(rules.cancel_refusal(BookingStatus.CONFIRMED, starts, POLICY, late, by_office=True)) == \
            rules.VISIT_STARTED
    for status in (BookingStatus.CHECKED_IN, BookingStatus.NO_SHOW, BookingStatus.CANCELLED, BookingStatus.EXPIRED):
        assert reason(rules.cancel_refusal(status, starts, POLICY, NOW, by_office=True)) == \
            rules.BOOKING_NOT_CANCELLABLE


def test_the_patient_releases_an_unpaid_hold_past_the_cutoff_until_the_visit_starts():
    starts = NOW + dt.timedelta(minutes=30)  # inside the 120-minute cut-off
    assert rules.cancel_refusal(BookingStatus.HELD, starts, POLICY, NOW) is None
    assert rules.cancel_refusal(BookingStatus.HELD, starts, POLICY, starts - dt.timedelta(seconds=1)) is None
    assert reason(rules.cancel_refusal(BookingStatus.HELD, starts, POLICY, starts)) == rules.VISIT_STARTED


def test_a_suspended_session_has_no_free_places():
    assert rules.session_free(20, 3, 1, suspended=False) == 16
    assert rules.session_free(20, 3, 1, suspended=True) == 0
    assert rules.session_free(20, 0, 0, suspended=True) == 0


def test_check_in_on_the_day_of_a_confirmed_booking():
    today = dt.date(2026, 11, 30)
    assert rules.check_in_decision(BookingStatus.CONFIRMED, today, today) == rules.APPLY
    assert rules.check_in_decision(BookingStatus.CHECKED_IN, today, today) == rules.UNCHANGED
    assert reason(rules.check_in_decision(BookingStatus.HELD, today, today)) == rules.NOT_CONFIRMED
    assert reason(rules.check_in_decision(BookingStatus.CONFIRMED, today + dt.timedelta(days=1), today)) == \
        rules.NOT_SERVICE_DAY


def test_a_no_show_who_comes_late_is_checked_in_that_day_unless_booked_again():
    today = dt.date(2026, 11, 30)
    assert rules.check_in_decision(BookingStatus.NO_SHOW, today, today) == rules.APPLY
    assert reason(rules.check_in_decision(BookingStatus.NO_SHOW, today, today + dt.timedelta(days=1))) == \
        rules.NOT_SERVICE_DAY
    assert reason(rules.check_in_decision(BookingStatus.NO_SHOW, today, today, booked_again=True)) == \
        rules.BOOKED_AGAIN
    assert reason(rules.check_in_decision(BookingStatus.NO_SHOW, today, today, suspended=True)) == \
        rules.SESSION_SUSPENDED
    # Nor over a visit booked since in another department at the same time: it would stand beside it.
    assert reason(rules.check_in_decision(BookingStatus.NO_SHOW, today, today, booked_over=True)) == \
        rules.BOOKED_OVER
    assert rules.check_in_decision(BookingStatus.CONFIRMED, today, today, booked_over=True) == rules.APPLY
    # A confirmed booking is never "booked again": it is the standing one.
    assert rules.check_in_decision(BookingStatus.CONFIRMED, today, today, booked_again=True) == rules.APPLY
    for status in (BookingStatus.CANCELLED, BookingStatus.EXPIRED, BookingStatus.HELD):
        assert reason(rules.check_in_decision(status, today, today)) == rules.NOT_CONFIRMED


def test_no_show_once_the_visit_has_started():
    starts = NOW + dt.timedelta(minutes=30)
    assert reason(rules.no_show_decision(BookingStatus.CONFIRMED, starts, NOW)) == rules.VISIT_NOT_STARTED
    assert rules.no_show_decision(BookingStatus.CONFIRMED, starts, starts) == rules.APPLY
    assert rules.no_show_decision(BookingStatus.NO_SHOW, starts, starts) == rules.UNCHANGED
    assert reason(rules.no_show_decision(BookingStatus.CHECKED_IN, starts, starts)) == rules.NOT_CONFIRMED


def capture(booking, payment):
    return rules.capture_decision(booking, payment, NOW)


def test_a_captured_payment_confirms_a_held_booking_of_its_fee():
    held = rules.PaidBooking(BookingStatus.HELD, "p1", 5000, None, NOW + dt.timedelta(seconds=1))
    assert capture(held, rules.CapturedPayment("pay1", "p1", 5000)) == rules.CONFIRM
    assert reason(capture(held, rules.CapturedPayment("pay1", "p1", 4000))) == "amount_mismatch"
    assert reason(capture(held, rules.CapturedPayment("pay1", "p2", 5000))) == "patient_mismatch"


def test_a_capture_that_comes_too_late_or_twice_is_rejected_or_ignored():
    payment = rules.CapturedPayment("pay1", "p1", 5000)
    assert reason(capture(None, payment)) == "booking_not_found"
    expired = rules.PaidBooking(BookingStatus.EXPIRED, "p1", 5000, None)
    assert reason(capture(expired, payment)) == "booking_expired"
    cancelled = rules.PaidBooking(BookingStatus.CANCELLED, "p1", 5000, None)
    assert reason(capture(cancelled, payment)) == "booking_cancelled"
    confirmed = rules.PaidBooking(BookingStatus.CONFIRMED, "p1", 5000, "pay1")
    assert capture(confirmed, payment) == rules.UNCHANGED
    assert reason(capture(confirmed, rules.CapturedPayment("pay2", "p1", 5000))) == "already_paid"


def test_a_capture_after_the_hold_ended_is_rejected_even_before_the_timer_expires_it():
    payment = rules.CapturedPayment("pay1", "p1", 5000)
    ended_now = rules.PaidBooking(BookingStatus.HELD, "p1", 5000, None, NOW)
    assert reason(capture(ended_now, payment)) == rules.HOLD_ENDED == "booking_expired"
    ended_before = rules.PaidBooking(BookingStatus.HELD, "p1", 5000, None, NOW - dt.timedelta(minutes=3))
    assert reason(capture(ended_before, payment)) == rules.HOLD_ENDED


def test_a_session_is_suspended_until_its_last_slot_ends():
    ends = NOW + dt.timedelta(minutes=30)
    assert rules.suspend_refusal(ends, NOW) is None  # started or not, not over: the doctor may fall ill
    assert rules.suspend_refusal(None, NOW) is None  # no slots: nothing to refund either way
    assert reason(rules.suspend_refusal(ends, ends)) == rules.SESSION_OVER
    assert reason(rules.suspend_refusal(ends, ends + dt.timedelta(hours=1))) == rules.SESSION_OVER


def test_a_suspension_ends_bookings_that_hold_a_place_and_check_ins_not_yet_seen():
    later, started = NOW + dt.timedelta(hours=2), NOW - dt.timedelta(minutes=5)
    for status in (BookingStatus.HELD, BookingStatus.CONFIRMED):
        assert rules.ended_by_suspension(status, later, NOW) and rules.ended_by_suspension(status, started, NOW)
    assert rules.ended_by_suspension(BookingStatus.CHECKED_IN, later, NOW)
    assert not rules.ended_by_suspension(BookingStatus.CHECKED_IN, started, NOW)
    assert not rules.ended_by_suspension(BookingStatus.CHECKED_IN, NOW, NOW)
    for status in (BookingStatus.CANCELLED, BookingStatus.EXPIRED, BookingStatus.NO_SHOW):
        assert not rules.ended_by_suspension(status, later, NOW)
