"""Publishing as pure functions: templates to dated sessions and slots, and
when each day is released."""
from __future__ import annotations

import datetime as dt

from hypothesis import given
from hypothesis import strategies as st
from registration.domain import schedule
from registration.domain.model import Period
from registration.domain.policy import ReleasePolicy

UTC = dt.timezone.utc
POLICY = ReleasePolicy()  # 14 days ahead, 07:00 Asia/Shanghai


def template(weekday=1, start=dt.time(8, 0), end=dt.time(12, 0), minutes=30, capacity=4, period=Period.MORNING):
    return schedule.Template("t1", "doc", "dep", weekday, period, start, end, minutes, capacity, 5000)


def test_slots_are_whole_steps_in_local_time_stored_in_utc():
    times = schedule.slot_times(dt.date(2026, 11, 30), dt.time(8, 0), dt.time(9, 40), 30, POLICY)
    assert times == [
        (dt.datetime(2026, 11, 30, 0, 0, tzinfo=UTC), dt.datetime(2026, 11, 30, 0, 30, tzinfo=UTC)),
        (dt.datetime(2026, 11, 30, 0, 30, tzinfo=UTC), dt.datetime(2026, 11, 30, 1, 0, tzinfo=UTC)),
        (dt.datetime(2026, 11, 30, 1, 0, tzinfo=UTC), dt.datetime(2026, 11, 30, 1, 30, tzinfo=UTC)),
    ]


def test_a_day_is_released_at_seven_the_horizon_before_it():
    now = dt.datetime(2026, 11, 20, 2, 0, tzinfo=UTC)  # 10:00 local
    day = dt.date(2026, 12, 5)
    assert schedule.release_moment(day, POLICY, now, False) == dt.datetime(2026, 11, 20, 23, 0, tzinfo=UTC)


def test_a_day_published_late_opens_at_the_next_release_or_now_when_the_office_says_so():
    now = dt.datetime(2026, 11, 20, 2, 0, tzinfo=UTC)  # 10:00 local, past today's 07:00
    tomorrow_release = dt.datetime(2026, 11, 20, 23, 0, tzinfo=UTC)
    assert schedule.release_moment(dt.date(2026, 11, 22), POLICY, now, False) == tomorrow_release
    assert schedule.release_moment(dt.date(2026, 11, 22), POLICY, now, True) == now
    before_seven = dt.datetime(2026, 11, 19, 22, 0, tzinfo=UTC)  # 06:00 local
    assert schedule.next_release(before_seven, POLICY) == dt.datetime(2026, 11, 19, 23, 0, tzinfo=UTC)


def test_plan_follows_weekdays_from_tomorrow_over_the_window():
    today = dt.date(2026, 11, 29)  # a Sunday
    first, last = schedule.publish_window(today, 14)
    assert (first, last) == (dt.date(2026, 11, 30), dt.date(2026, 12, 13))
    monday = template(weekday=1)
    saturday = template(weekday=6, period=Period.MORNING, end=dt.time(10, 0))
    planned = schedule.plan_sessions([monday, saturday], first, last, POLICY,
                                     dt.datetime(2026, 11, 29, 2, 0, tzinfo=UTC))
    assert [(p.service_date, len(p.slots)) for p in planned] == [
        (dt.date(2026, 11, 30), 8), (dt.date(2026, 12, 5), 4), (dt.date(2026, 12, 7), 8), (dt.date(2026, 12, 12), 4),
    ]
    assert all(p.fee_fen == 5000 and p.slots[0].capacity == 4 for p in planned)


def test_a_day_published_from_a_template_is_not_published_again_whatever_the_template_became():
    first, last = dt.date(2026, 11, 30), dt.date(2026, 12, 7)  # two Mondays
    now = dt.datetime(2026, 11, 29, 2, 0, tzinfo=UTC)
    published = [schedule.PublishedSession("t1", "doc", first, Period.MORNING)]
    # The template moved to the afternoon: its first Monday stays the morning it was published as.
    afternoon = template(period=Period.AFTERNOON, start=dt.time(13, 30), end=dt.time(17, 0))
    planned = schedule.plan_sessions([afternoon], first, last, POLICY, now)
    assert [p.service_date for p in schedule.not_yet_published(planned, published)] == [last]
    # Or to another doctor.
    moved = schedule.Template("t1", "doc2", "dep", 1, Period.MORNING, dt.time(8), dt.time(12), 30, 4, 5000)
    planned = schedule.plan_sessions([moved], first, last, POLICY, now)
    assert [p.service_date for p in schedule.not_yet_published(planned, published)] == [last]
    # Another template for the doctor's day and period made already (by hand, or before a template was replaced).
    other = schedule.Template("t2", "doc", "dep", 1, Period.MORNING, dt.time(8), dt.time(12), 30, 4, 5000)
    by_hand = [schedule.PublishedSession(None, "doc", first, Period.MORNING)]
    planned = schedule.plan_sessions([other], first, last, POLICY, now)
    assert [p.service_date for p in schedule.not_yet_published(planned, by_hand)] == [last]
    assert schedule.not_yet_published(planned, []) == planned


def test_a_doctors_templates_on_one_weekday_may_touch_but_not_overlap():
    morning = [(Period.MORNING, dt.time(8), dt.time(12))]
    assert schedule.overlap_problem(dt.time(12), dt.time(15), morning) is None
    assert schedule.overlap_problem(dt.time(6), dt.time(8), morning) is None
    assert schedule.overlap_problem(dt.time(13), dt.time(15), []) is None
    field, problem = schedule.overlap_problem(dt.time(11), dt.time(15), morning)
    assert (field, problem.endswith("must be 12:00 or later")) == ("template.start_time", True)
    assert "morning template" in problem and "08:00-12:00" in problem
    assert schedule.overlap_problem(dt.time(7), dt.time(9), morning)[0] == "template.end_time"
    assert schedule.overlap_problem(dt.time(7), dt.time(13), morning)[0] == "template.end_time"
    assert schedule.overlap_problem(dt.time(9), dt.time(10), morning)[0] == "template.start_time"
    evening = (Period.EVENING, dt.time(18), dt.time(21))
    assert "evening" in schedule.overlap_problem(dt.time(17), dt.time(19), [evening, *morning])[1]


def test_template_numbers_are_checked():
    assert schedule.template_problem(dt.time(8), dt.time(12), 30, 4) is None
    assert schedule.template_problem(dt.time(8), dt.time(12), 2, 4)[0] == "template.slot_minutes"
    assert schedule.template_problem(dt.time(8), dt.time(12), 30, 0)[0] == "template.capacity_per_slot"
    assert schedule.template_problem(dt.time(12), dt.time(8), 30, 4)[0] == "template.end_time"
    assert schedule.template_problem(dt.time(8), dt.time(8, 20), 30, 4) == ("template.end_time",
                                                                            "leaves room for no whole slot")


@given(start_minute=st.integers(0, 20 * 60), length=st.integers(5, 240), step=st.integers(5, 120))
def test_slots_never_leave_the_session_and_never_overlap(start_minute, length, step):
    start = dt.time(start_minute // 60, start_minute % 60)
    end_minute = min(start_minute + length, 23 * 60 + 59)
    end = dt.time(end_minute // 60, end_minute % 60)
    times = schedule.slot_times(dt.date(2026, 11, 30), start, end, step, POLICY)
    begin, finish = POLICY.local_moment(dt.date(2026, 11, 30), start), POLICY.local_moment(dt.date(2026, 11, 30), end)
    assert len(times) == max(0, (end_minute - start_minute) // step)
    assert all(begin <= s < e <= finish for s, e in times)
    assert all(a[1] == b[0] for a, b in zip(times, times[1:]))
