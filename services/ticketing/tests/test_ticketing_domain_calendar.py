"""Service hours, working days and service-time arithmetic: examples, named days, and properties."""
from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from ticketing.domain.calendar import (
    HOSPITAL_TZ,
    ServiceHours,
    WorkingCalendar,
    add_working_time,
    holidays_known_until,
    service_intervals,
    statutory_data_until,
    working_seconds,
)

UTC = dt.timezone.utc
OFFICE = ServiceHours.parse("08:00-12:00,13:30-17:30")
NIGHTS = ServiceHours.parse("22:00-06:00")
ALWAYS = ServiceHours.around_the_clock()
CAL = WorkingCalendar()
HOUR = 3600.0


def at(y, mo, d, h=0, mi=0, tz=HOSPITAL_TZ) -> dt.datetime:
    return dt.datetime(y, mo, d, h, mi, tzinfo=tz)


# ---------------------------------------------------------------------------
# ServiceHours


@pytest.mark.parametrize("text, always, windows", [
    ("24x7", True, ()),
    (" 24X7 ", True, ()),
    ("08:00-12:00,13:30-17:30", False, ((dt.time(8), dt.time(12)), (dt.time(13, 30), dt.time(17, 30)))),
    ("13:30-17:30, 08:00-12:00", False, ((dt.time(8), dt.time(12)), (dt.time(13, 30), dt.time(17, 30)))),
    ("22:00-06:00", False, ((dt.time(22), dt.time(6)),)),
    ("08:00-24:00", False, ((dt.time(8), dt.time(0)),)),
    ("00:00-24:00", False, ((dt.time(0), dt.time(0)),)),
    ("06:00-10:00，22:00-02:00", False, ((dt.time(6), dt.time(10)), (dt.time(22), dt.time(2)))),
])
def test_service_hours_parse(text, always, windows):
    hours = ServiceHours.parse(text)
    assert hours.always is always
    assert hours.windows == windows
    assert ServiceHours.parse(str(hours)) == hours


@pytest.mark.parametrize("text, words", [
    ("", "empty"),
    ("always", "not a window"),
    ("8-12", "not a window"),
    ("08:00-12:60", "not a time of day"),
    ("25:00-26:00", "not a time of day"),
    ("08:00-12:00,11:00-13:00", "overlap"),
    ("22:00-06:00,05:00-09:00", "runs into the next day"),
    ("22:00-02:00,23:00-01:00", "overlap"),
    ("08:00-12:00;13:00-17:00", "not a window"),
])
def test_service_hours_parse_refuses_with_a_clear_message(text, words):
    with pytest.raises(ValueError, match=words):
        ServiceHours.parse(text)


def test_service_hours_constructor_checks():
    with pytest.raises(ValueError):
        ServiceHours(always=False, windows=())
    with pytest.raises(ValueError):
        ServiceHours(always=True, windows=((dt.time(8), dt.time(9)),))
    assert ServiceHours(True, ()) == ALWAYS
    assert str(ALWAYS) == "24x7"
    assert str(ServiceHours.parse("08:00-24:00")) == "08:00-24:00"
    assert OFFICE.daily_seconds == 8 * HOUR and NIGHTS.daily_seconds == 8 * HOUR and ALWAYS.daily_seconds == 86400
    assert hash(OFFICE) == hash(ServiceHours.parse(str(OFFICE)))


minutes_grid = st.integers(0, 95).map(lambda q: q * 15)


@st.composite
def service_hours(draw) -> ServiceHours:
    """Random valid hours: 1-3 windows on a quarter-hour grid, maybe the last one overnight; or 24x7."""
    if draw(st.integers(0, 6)) == 0:
        return ALWAYS
    count = draw(st.integers(1, 3))
    points = sorted(draw(st.sets(minutes_grid, min_size=2 * count, max_size=2 * count)))
    windows = [(points[i], points[i + 1]) for i in range(0, 2 * count, 2)]
    if draw(st.booleans()):
        # The last window runs overnight, ending no later than the first one starts.
        end = draw(st.integers(0, points[0] // 15).map(lambda q: q * 15))
        windows[-1] = (windows[-1][0], end)

    def time_of(m: int) -> dt.time:
        return dt.time(m // 60, m % 60)

    return ServiceHours(always=False, windows=tuple((time_of(a), time_of(b)) for a, b in windows))


@given(service_hours())
def test_service_hours_round_trip_through_text(hours):
    assert ServiceHours.parse(str(hours)) == hours


# ---------------------------------------------------------------------------
# Working days


@pytest.mark.parametrize("day, working, why", [
    (dt.date(2026, 9, 30), True, "Wednesday before National Day"),
    (dt.date(2026, 10, 1), False, "National Day"),
    (dt.date(2026, 10, 7), False, "last day of the Golden Week"),
    (dt.date(2026, 10, 8), True, "back to work"),
    (dt.date(2026, 10, 10), True, "Saturday make-up working day (调休) for National Day"),
    (dt.date(2026, 9, 20), True, "Sunday make-up working day for Mid-Autumn / National Day"),
    (dt.date(2026, 1, 4), True, "Sunday make-up working day for New Year"),
    (dt.date(2026, 2, 14), True, "Saturday make-up working day before Spring Festival"),
    (dt.date(2026, 2, 28), True, "Saturday make-up working day after Spring Festival"),
    (dt.date(2026, 2, 16), False, "Spring Festival (Monday)"),
    (dt.date(2026, 2, 23), False, "Spring Festival (last day, a Monday)"),
    (dt.date(2026, 2, 24), True, "first working day after Spring Festival"),
    (dt.date(2026, 1, 11), False, "an ordinary Sunday"),
    (dt.date(2026, 11, 30), True, "an ordinary Monday"),
])
def test_statutory_working_days_2026(day, working, why):
    assert CAL.is_working_day(day) is working, why
    assert CAL.covers(day)


def test_years_without_statutory_data_fall_back_to_monday_to_friday():
    """2027 is beyond chinesecalendar 1.11's data: Monday-Friday, and covers() says the data does not decide."""
    assert not CAL.covers(dt.date(2027, 1, 1))
    assert CAL.is_working_day(dt.date(2027, 1, 1))      # a Friday; New Year is not known to the library
    assert not CAL.is_working_day(dt.date(2027, 1, 2))  # Saturday
    assert CAL.is_working_day(dt.date(2027, 1, 4))      # Monday
    assert not CAL.covers(dt.date(2003, 12, 31))
    assert CAL.is_working_day(dt.date(2003, 12, 31))


def test_overrides_come_first_and_count_as_covered():
    cal = WorkingCalendar(extra_holidays=[dt.date(2027, 1, 1), dt.date(2026, 11, 30)],
                          extra_workdays=["2026-10-01", dt.date(2027, 1, 9)])
    assert not cal.is_working_day(dt.date(2027, 1, 1)) and cal.covers(dt.date(2027, 1, 1))
    assert not cal.is_working_day(dt.date(2026, 11, 30))
    assert cal.is_working_day(dt.date(2026, 10, 1))
    assert cal.is_working_day(dt.date(2027, 1, 9)) and cal.covers(dt.date(2027, 1, 9))
    assert not cal.covers(dt.date(2027, 1, 8))
    assert cal.extra_workdays == {dt.date(2026, 10, 1), dt.date(2027, 1, 9)}
    assert cal == WorkingCalendar(extra_holidays=cal.extra_holidays, extra_workdays=cal.extra_workdays)
    assert cal != CAL


def test_an_override_cannot_be_both_holiday_and_working_day():
    with pytest.raises(ValueError, match="2027-01-01"):
        WorkingCalendar(extra_holidays=[dt.date(2027, 1, 1)], extra_workdays=[dt.date(2027, 1, 1)])
    with pytest.raises(ValueError, match="not a date"):
        WorkingCalendar(extra_holidays=["new year"])


# ---------------------------------------------------------------------------
# Arithmetic: examples


def test_naive_datetimes_are_refused():
    with pytest.raises(ValueError, match="naive"):
        working_seconds(OFFICE, CAL, dt.datetime(2026, 11, 30, 8), at(2026, 11, 30, 9))
    with pytest.raises(ValueError, match="negative"):
        add_working_time(OFFICE, CAL, at(2026, 11, 30, 8), -1)


def test_office_day_and_lunch_break():
    assert working_seconds(OFFICE, CAL, at(2026, 11, 30), at(2026, 12, 1)) == 8 * HOUR
    assert working_seconds(OFFICE, CAL, at(2026, 11, 30, 11), at(2026, 11, 30, 14)) == 1.5 * HOUR
    assert add_working_time(OFFICE, CAL, at(2026, 11, 30, 11), HOUR) == at(2026, 11, 30, 12)
    assert add_working_time(OFFICE, CAL, at(2026, 11, 30, 11), HOUR + 1) == at(2026, 11, 30, 13, 30) + dt.timedelta(
        seconds=1)
    assert add_working_time(OFFICE, CAL, at(2026, 11, 30, 12, 30), 0) == at(2026, 11, 30, 12, 30)
    assert working_seconds(OFFICE, CAL, at(2026, 11, 30, 9), at(2026, 11, 30, 9)) == 0
    assert working_seconds(OFFICE, CAL, at(2026, 11, 30, 10), at(2026, 11, 30, 9)) == 0


def test_results_are_in_hospital_time_whatever_the_input_zone():
    start = dt.datetime(2026, 11, 30, 0, 0, tzinfo=UTC)  # 08:00 in Shanghai
    due = add_working_time(OFFICE, CAL, start, 4 * HOUR)
    assert due == at(2026, 11, 30, 12) and due.tzinfo == HOSPITAL_TZ
    assert add_working_time(ALWAYS, CAL, start, 90).tzinfo == HOSPITAL_TZ
    (first, _), *_ = service_intervals(OFFICE, CAL, start, start + dt.timedelta(days=1))
    assert first.tzinfo == HOSPITAL_TZ and first == start


def test_make_up_working_day_counts_in_office_hours():
    """2026-01-04 is a Sunday make-up working day (调休 for New Year): it has office hours; the Sunday after has none."""
    assert working_seconds(OFFICE, CAL, at(2026, 1, 4), at(2026, 1, 5)) == 8 * HOUR
    assert working_seconds(OFFICE, CAL, at(2026, 1, 11), at(2026, 1, 12)) == 0
    # New Year's Day and the Friday after it are holidays: nothing from Wednesday night to the Sunday.
    assert working_seconds(OFFICE, CAL, at(2025, 12, 31, 18), at(2026, 1, 4)) == 0


def test_overnight_window_belongs_to_the_working_day_it_starts_on():
    """22:00-06:00 across a weekend: Friday night runs into Saturday morning; Saturday and Sunday nights have none."""
    fri, sat, sun, mon = (at(2026, 11, d) for d in (27, 28, 29, 30))
    assert working_seconds(NIGHTS, CAL, fri, mon) == 14 * HOUR  # Thursday night's tail, then Fri 22:00 - Sat 06:00
    assert working_seconds(NIGHTS, CAL, fri + dt.timedelta(hours=12), mon) == 8 * HOUR
    assert list(service_intervals(NIGHTS, CAL, fri + dt.timedelta(hours=12), mon + dt.timedelta(hours=36))) == [
        (at(2026, 11, 27, 22), at(2026, 11, 28, 6)), (at(2026, 11, 30, 22), at(2026, 12, 1, 6))]
    # Opened Saturday 03:00, inside Friday's night window: 3 hours left that night, then Monday 22:00.
    assert add_working_time(NIGHTS, CAL, at(2026, 11, 28, 3), 4 * HOUR) == at(2026, 11, 30, 23)
    assert working_seconds(NIGHTS, CAL, sat, sun) == 6 * HOUR  # Sat 00:00-06:00 of Friday's window
    assert working_seconds(NIGHTS, CAL, sat + dt.timedelta(hours=6), mon + dt.timedelta(hours=22)) == 0


def test_spring_festival_is_crossed_day_by_day_not_minute_by_minute():
    """40 working hours across the 2026 Spring Festival (Feb 15-23 off, Sat Feb 14 and Sat Feb 28 worked)."""
    start = at(2026, 2, 13, 9)
    # Fri 13th 7 h, Sat 14th (make-up) 8 h, holiday to Mon 23rd, Tue-Thu 24 h, Fri 27th 1 h.
    due = add_working_time(OFFICE, CAL, start, 40 * HOUR)
    assert due == at(2026, 2, 27, 9)
    assert working_seconds(OFFICE, CAL, start, due) == 40 * HOUR


def test_a_long_span_is_fast_enough():
    """A year of office hours is about 250 days x 8 h, computed in well under a second."""
    import time
    began = time.perf_counter()
    total = working_seconds(OFFICE, WorkingCalendar(), at(2026, 1, 1), at(2027, 1, 1))
    due = add_working_time(OFFICE, WorkingCalendar(), at(2026, 1, 1), total)
    assert time.perf_counter() - began < 1.0
    assert due == at(2026, 12, 31, 17, 30)
    assert total / HOUR / 8 == sum(CAL.is_working_day(dt.date(2026, 1, 1) + dt.timedelta(days=i)) for i in range(365))


# ---------------------------------------------------------------------------
# Arithmetic: properties

ZONES = st.sampled_from([HOSPITAL_TZ, UTC, dt.timezone(dt.timedelta(hours=-5))])
# Around the statutory data's end (2026) and into 2027, where the fallback rules.
moments = st.datetimes(min_value=dt.datetime(2025, 12, 20), max_value=dt.datetime(2027, 1, 20), timezones=ZONES)
calendars = st.sampled_from([
    CAL,
    WorkingCalendar(extra_holidays=[dt.date(2027, 1, 1), dt.date(2026, 12, 31)], extra_workdays=[dt.date(2027, 1, 9)]),
])
service_amounts = st.integers(0, 120 * 3600 * 1_000_000).map(lambda us: us / 1_000_000)


@given(service_hours(), calendars, moments, service_amounts)
def test_adding_then_measuring_gives_the_seconds_back(hours, cal, start, seconds):
    due = add_working_time(hours, cal, start, seconds)
    assert due >= start
    assert working_seconds(hours, cal, start, due) == pytest.approx(seconds, abs=1e-6)
    if seconds > 0:
        # And it is the earliest such instant.
        assert working_seconds(hours, cal, start, due - dt.timedelta(microseconds=1)) < seconds


@given(service_hours(), calendars, moments, moments, moments)
def test_working_seconds_is_additive_over_a_split_point(hours, cal, a, b, c):
    a, b, c = sorted((a, b, c))
    whole = working_seconds(hours, cal, a, c)
    assert whole == pytest.approx(working_seconds(hours, cal, a, b) + working_seconds(hours, cal, b, c), abs=1e-6)


@given(service_hours(), calendars, moments, moments, moments)
def test_working_seconds_is_monotonic_in_end_and_bounded_by_wall_clock(hours, cal, start, end1, end2):
    end1, end2 = sorted((end1, end2))
    first, second = working_seconds(hours, cal, start, end1), working_seconds(hours, cal, start, end2)
    assert first <= second
    assert second <= max(0.0, (end2 - start).total_seconds())


@given(calendars, moments, moments, service_amounts)
def test_around_the_clock_is_wall_clock(cal, start, end, seconds):
    assert working_seconds(ALWAYS, cal, start, end) == pytest.approx(max(0.0, (end - start).total_seconds()), abs=1e-6)
    assert add_working_time(ALWAYS, cal, start, seconds) == start + dt.timedelta(seconds=seconds)


def _inside_a_window(hours: ServiceHours, cal: WorkingCalendar, a: dt.datetime, b: dt.datetime) -> bool:
    """Independent check: [a, b) lies in one window of a working day (the day the window starts on)."""
    local = a.astimezone(HOSPITAL_TZ)
    for day in (local.date() - dt.timedelta(days=1), local.date()):
        if not cal.is_working_day(day):
            continue
        for start, end in hours.windows:
            opens = dt.datetime.combine(day, start, tzinfo=HOSPITAL_TZ)
            closes = dt.datetime.combine(day + dt.timedelta(days=1) if end <= start else day, end, tzinfo=HOSPITAL_TZ)
            if opens <= a and b <= closes:
                return True
    return False


@settings(max_examples=150, deadline=None)
@given(service_hours(), calendars, moments, st.integers(0, 20 * 24 * 60))
def test_intervals_are_ordered_disjoint_and_inside_windows_of_working_days(hours, cal, start, minutes):
    end = start + dt.timedelta(minutes=minutes)
    intervals = list(service_intervals(hours, cal, start, end))
    previous_end = start
    for a, b in intervals:
        assert previous_end <= a < b <= end
        assert a.tzinfo == HOSPITAL_TZ
        if not hours.always:
            assert _inside_a_window(hours, cal, a, b)
        previous_end = b
    total = sum((b - a).total_seconds() for a, b in intervals)
    assert total == pytest.approx(working_seconds(hours, cal, start, end), abs=1e-6)


@settings(max_examples=150, deadline=None)
@given(service_hours(), calendars, st.integers(0, 4 * 96), st.integers(0, 8 * 96))
def test_working_seconds_matches_counting_quarter_hours(hours, cal, first_slot, slots):
    """An oracle: on a quarter-hour grid, count the quarters that lie in a window of a working day."""
    assume(not hours.always)
    base = at(2026, 12, 24)  # runs into 2027, past the statutory data
    start = base + dt.timedelta(minutes=15 * first_slot)
    end = start + dt.timedelta(minutes=15 * slots)
    quarter = dt.timedelta(minutes=15)
    counted = sum(_inside_a_window(hours, cal, start + i * quarter, start + (i + 1) * quarter) for i in range(slots))
    assert working_seconds(hours, cal, start, end) == counted * 900


@given(st.sampled_from([OFFICE, NIGHTS, ServiceHours.parse("06:00-10:00,22:00-02:00")]),
       st.datetimes(min_value=dt.datetime(2026, 12, 1), max_value=dt.datetime(2026, 12, 31, 23, 59),
                    timezones=st.just(HOSPITAL_TZ)),
       st.integers(1, 80 * 3600))
def test_results_are_stable_across_the_statutory_data_boundary(hours, start, seconds):
    """From December 2026 into January 2027 the arithmetic is seamless: no error, and the pieces add up."""
    due = add_working_time(hours, CAL, start, seconds)
    new_year = at(2027, 1, 1)
    if due > new_year > start:
        before = working_seconds(hours, CAL, start, new_year)
        after = working_seconds(hours, CAL, new_year, due)
        assert before + after == pytest.approx(seconds, abs=1e-6)
        assert due == add_working_time(hours, CAL, new_year, seconds - before) or before == seconds


@given(st.datetimes(min_value=dt.datetime(2025, 12, 20), max_value=dt.datetime(2027, 1, 20),
                    timezones=st.just(HOSPITAL_TZ)), st.integers(1, 60 * 3600))
def test_overnight_service_counts_the_morning_after_a_working_day_only(start, seconds):
    """22:00-06:00: every counted instant is in a night that began on a working day."""
    due = add_working_time(NIGHTS, CAL, start, seconds)
    for a, b in service_intervals(NIGHTS, CAL, start, due):
        evening = (a - dt.timedelta(hours=6)).date() if a.hour < 6 else a.date()
        assert CAL.is_working_day(evening)
        assert a.hour >= 22 or b.hour <= 6 or (b.hour == 6 and b.minute == 0)


def test_the_holidays_are_known_to_the_end_of_the_last_year_entered_in_turn():
    today = dt.date(2026, 11, 28)
    statutory = statutory_data_until(today)
    assert holidays_known_until(today, []) == statutory
    # Next year's notice entered (its last day off in October): known to its end, not to that day, or the alert
    # would ask in September for a notice the State Council has not yet given.
    nxt = statutory.year + 1
    assert holidays_known_until(today, [nxt]) == dt.date(nxt, 12, 31)
    assert holidays_known_until(today, [nxt, nxt + 1]) == dt.date(nxt + 1, 12, 31)
    # One override years ahead leaves the year between unknown.
    assert holidays_known_until(today, [nxt + 2]) == statutory
    # A year the statutory data no longer covers and nobody entered: known to the end of the last one that is.
    later = dt.date(nxt, 3, 1)
    assert holidays_known_until(later, [nxt - 5]) == statutory < later
