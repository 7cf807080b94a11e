"""Service time on the hospital's working calendar.

A subsystem is served either around the clock (24x7) or in daily windows on
working days. Working days are Monday to Friday, minus the Chinese statutory
holidays and plus the make-up working days (调休) of the ``chinese_calendar``
library, with the hospital's own overrides on top. For years the library has
no data for, Monday to Friday are the working days until the library (or an
override) says otherwise.

All arithmetic is done in integer microseconds since the epoch, so adding
service time and measuring it back are exact, and a day is looked at once (a
holiday week costs seven dictionary look-ups, not ten thousand minutes).
Datetimes in may be in any time zone but must be aware; datetimes out are in
``HOSPITAL_TZ``.
"""
from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

import chinese_calendar

HOSPITAL_TZ = ZoneInfo("Asia/Shanghai")

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
_US = dt.timedelta(microseconds=1)
_DAY_US = 86_400_000_000
_MIDNIGHT = dt.time(0, 0)
# add_working_time gives up after this many calendar days without finding the
# service time asked for (only reachable with absurd amounts of time).
_MAX_SEARCH_DAYS = 366 * 200
_CACHE_LIMIT = 20_000


def to_us(moment: dt.datetime) -> int:
    """An aware datetime as integer microseconds since the epoch."""
    if not isinstance(moment, dt.datetime):
        raise TypeError(f"expected a datetime, got {type(moment).__name__}")
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"naive datetime {moment.isoformat()}: service-time arithmetic needs an aware datetime")
    return (moment - _EPOCH) // _US


def from_us(us: int) -> dt.datetime:
    """Integer microseconds since the epoch as a datetime in HOSPITAL_TZ."""
    return (_EPOCH + dt.timedelta(microseconds=us)).astimezone(HOSPITAL_TZ)


def _local_ordinal(us: int) -> int:
    return from_us(us).toordinal()


def _seconds_to_us(seconds: float) -> int:
    return round(seconds * 1_000_000)


# ---------------------------------------------------------------------------
# Service hours

_TIME = r"(\d{1,2}):(\d{2})(?::(\d{2}))?"
_WINDOW = re.compile(rf"^{_TIME}\s*-\s*{_TIME}$")


def _parse_time(hh: str, mm: str, ss: str | None, *, text: str, end: bool) -> dt.time:
    hour, minute, second = int(hh), int(mm), int(ss or 0)
    if end and (hour, minute, second) == (24, 0, 0):
        return _MIDNIGHT  # "24:00" as an end: midnight of the next day
    if hour > 23 or minute > 59 or second > 59:
        raise ValueError(f"service hours {text!r}: {hh}:{mm}{':' + ss if ss else ''} is not a time of day")
    return dt.time(hour, minute, second)


def _format_time(value: dt.time, *, end: bool) -> str:
    if end and value == _MIDNIGHT:
        return "24:00"
    if value.second or value.microsecond:
        return value.isoformat()
    return value.strftime("%H:%M")


def _window_span_us(start: dt.time, end: dt.time) -> tuple[int, int]:
    """A window as microseconds from the midnight of the day it starts on."""
    def of_day(t: dt.time) -> int:
        return ((t.hour * 60 + t.minute) * 60 + t.second) * 1_000_000 + t.microsecond
    a, b = of_day(start), of_day(end)
    return (a, b) if b > a else (a, b + _DAY_US)


@dataclass(frozen=True)
class ServiceHours:
    """When a subsystem is served: around the clock, or daily windows on working days.

    A window whose end is not after its start runs overnight into the next day
    ("22:00-06:00"); it belongs to the day it starts on, and that day must be a
    working day (a Friday-night window runs into Saturday morning; Saturday
    night has none). Windows are kept sorted and may not overlap, including an
    overnight window's tail with the next day's first window.
    """

    always: bool
    windows: tuple[tuple[dt.time, dt.time], ...] = ()
    # Per-day window spans in epoch microseconds, by local date ordinal.
    _spans: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        windows = tuple((start, end) for start, end in self.windows)
        if self.always:
            if windows:
                raise ValueError("service hours: 24x7 takes no windows")
            return
        if not windows:
            raise ValueError("service hours: give at least one window, or 24x7")
        for start, end in windows:
            if not isinstance(start, dt.time) or not isinstance(end, dt.time):
                raise ValueError(f"service hours: window {start!r}-{end!r} must be two datetime.time values")
            if start.tzinfo is not None or end.tzinfo is not None:
                raise ValueError("service hours: window times are local wall-clock times, without a time zone")
        windows = tuple(sorted(windows))
        spans = [_window_span_us(start, end) for start, end in windows]
        for (_a0, b0), (a1, _b1), w0, w1 in zip(spans, spans[1:], windows, windows[1:], strict=False):
            if a1 < b0:
                raise ValueError(f"service hours: windows {_show(w0)} and {_show(w1)} overlap")
        # The last window may run past midnight into the next day's first one.
        if spans[-1][1] - _DAY_US > spans[0][0]:
            raise ValueError(
                f"service hours: overnight window {_show(windows[-1])} runs into the next day's {_show(windows[0])}")
        object.__setattr__(self, "windows", windows)

    @classmethod
    def around_the_clock(cls) -> ServiceHours:
        return cls(always=True, windows=())

    @classmethod
    def parse(cls, text: str) -> ServiceHours:
        """``"24x7"``, ``"08:00-12:00,13:30-17:30"``, ``"22:00-06:00"`` ("24:00" is allowed as an end)."""
        if not isinstance(text, str):
            raise ValueError(f"service hours must be text, got {type(text).__name__}")
        cleaned = text.strip().replace("，", ",")
        if cleaned.lower() in ("24x7", "24/7", "24*7"):
            return cls.around_the_clock()
        if not cleaned:
            raise ValueError("service hours are empty: give '24x7' or windows like '08:00-12:00,13:30-17:30'")
        windows = []
        for part in cleaned.split(","):
            match = _WINDOW.match(part.strip())
            if not match:
                raise ValueError(
                    f"service hours {text!r}: {part.strip()!r} is not a window HH:MM-HH:MM "
                    "(give '24x7' or windows like '08:00-12:00,13:30-17:30')")
            g = match.groups()
            windows.append((_parse_time(g[0], g[1], g[2], text=text, end=False),
                            _parse_time(g[3], g[4], g[5], text=text, end=True)))
        return cls(always=False, windows=tuple(windows))

    def __str__(self) -> str:
        if self.always:
            return "24x7"
        return ",".join(_show(window) for window in self.windows)

    @property
    def daily_seconds(self) -> float:
        """Service seconds on one working day (86400 for 24x7)."""
        if self.always:
            return 86_400.0
        return sum(b - a for a, b in (_window_span_us(s, e) for s, e in self.windows)) / 1_000_000

    def _day_spans(self, ordinal: int) -> tuple[tuple[int, int], ...]:
        """The windows of the local day ``ordinal`` in epoch microseconds (whether or not it is a working day)."""
        spans = self._spans.get(ordinal)
        if spans is None:
            day = dt.date.fromordinal(ordinal)
            following = dt.date.fromordinal(ordinal + 1)
            spans = tuple(
                (to_us(dt.datetime.combine(day, start, tzinfo=HOSPITAL_TZ)),
                 to_us(dt.datetime.combine(following if end <= start else day, end, tzinfo=HOSPITAL_TZ)))
                for start, end in self.windows
            )
            if len(self._spans) >= _CACHE_LIMIT:
                self._spans.clear()
            self._spans[ordinal] = spans
        return spans


def _show(window: tuple[dt.time, dt.time]) -> str:
    return f"{_format_time(window[0], end=False)}-{_format_time(window[1], end=True)}"


# ---------------------------------------------------------------------------
# Working days


def _as_date(value: dt.date | str) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(f"calendar override {value!r} is not a date YYYY-MM-DD") from None
    raise ValueError(f"calendar override {value!r} is not a date")


class WorkingCalendar:
    """Which days are working days: the hospital's overrides, then the statutory calendar, then Monday-Friday."""

    def __init__(self, *, extra_holidays: Iterable[dt.date] = (), extra_workdays: Iterable[dt.date] = ()):
        self._holidays = frozenset(_as_date(d) for d in extra_holidays)
        self._workdays = frozenset(_as_date(d) for d in extra_workdays)
        both = self._holidays & self._workdays
        if both:
            raise ValueError(
                "calendar overrides: " + ", ".join(sorted(d.isoformat() for d in both))
                + " given both as holiday and as working day")
        self._working: dict[int, bool] = {}
        self._covered: dict[int, bool] = {}

    @property
    def extra_holidays(self) -> frozenset[dt.date]:
        return self._holidays

    @property
    def extra_workdays(self) -> frozenset[dt.date]:
        return self._workdays

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, WorkingCalendar):
            return NotImplemented
        return (self._holidays, self._workdays) == (other._holidays, other._workdays)

    def __hash__(self) -> int:
        return hash((self._holidays, self._workdays))

    def __repr__(self) -> str:
        return f"WorkingCalendar(extra_holidays={len(self._holidays)}, extra_workdays={len(self._workdays)})"

    def _statutory(self, day: dt.date) -> bool | None:
        """The statutory calendar's answer, or None when it has no data for the year."""
        try:
            return bool(chinese_calendar.is_workday(day))
        except NotImplementedError:
            return None

    def is_working_day(self, day: dt.date) -> bool:
        if isinstance(day, dt.datetime):
            day = day.date()
        return self._is_working_ordinal(day.toordinal())

    def _is_working_ordinal(self, ordinal: int) -> bool:
        working = self._working.get(ordinal)
        if working is None:
            day = dt.date.fromordinal(ordinal)
            if day in self._workdays:
                working = True
            elif day in self._holidays:
                working = False
            else:
                statutory = self._statutory(day)
                working = day.weekday() < 5 if statutory is None else statutory
            if len(self._working) >= _CACHE_LIMIT:
                self._working.clear()
            self._working[ordinal] = working
        return working

    def covers(self, day: dt.date) -> bool:
        """True when the statutory data or an override decides the day (not the Monday-Friday fallback)."""
        if isinstance(day, dt.datetime):
            day = day.date()
        if day in self._workdays or day in self._holidays:
            return True
        covered = self._covered.get(day.year)
        if covered is None:
            covered = self._statutory(day) is not None
            self._covered[day.year] = covered
        return covered


# ---------------------------------------------------------------------------
# Service-time arithmetic


def _spans_from(hours: ServiceHours, calendar: WorkingCalendar, start_us: int) -> Iterator[tuple[int, int]]:
    """Service spans (epoch microseconds) ending after start_us, in order, clipped at start_us; endless."""
    # Begin the day before: its overnight window may still be running.
    ordinal = _local_ordinal(start_us) - 1
    working = calendar._is_working_ordinal
    day_spans = hours._day_spans
    for _ in range(_MAX_SEARCH_DAYS):
        if working(ordinal):
            for a, b in day_spans(ordinal):
                if b > start_us:
                    yield (a if a > start_us else start_us), b
        ordinal += 1
    raise ValueError(f"no service time found within {_MAX_SEARCH_DAYS} days")


def _spans_between(hours: ServiceHours, calendar: WorkingCalendar, start_us: int,
                   end_us: int) -> Iterator[tuple[int, int]]:
    if end_us <= start_us:
        return
    if hours.always:
        yield start_us, end_us
        return
    for a, b in _spans_from(hours, calendar, start_us):
        if a >= end_us:
            return
        yield a, (b if b < end_us else end_us)


def _working_us(hours: ServiceHours, calendar: WorkingCalendar, start_us: int, end_us: int) -> int:
    if end_us <= start_us:
        return 0
    if hours.always:
        return end_us - start_us
    return sum(b - a for a, b in _spans_between(hours, calendar, start_us, end_us))


def _add_us(hours: ServiceHours, calendar: WorkingCalendar, start_us: int, amount_us: int) -> int:
    if amount_us < 0:
        raise ValueError(f"cannot add negative service time ({amount_us / 1e6} s)")
    if amount_us == 0 or hours.always:
        return start_us + amount_us
    remaining = amount_us
    for a, b in _spans_from(hours, calendar, start_us):
        length = b - a
        if remaining <= length:
            return a + remaining
        remaining -= length
    raise AssertionError("unreachable")  # pragma: no cover - _spans_from is endless or raises


def service_intervals(hours: ServiceHours, calendar: WorkingCalendar, start: dt.datetime,
                      end: dt.datetime) -> Iterator[tuple[dt.datetime, dt.datetime]]:
    """The service intervals within [start, end), in order, as (from, to) in HOSPITAL_TZ.

    Intervals touching at midnight (an overnight window followed by the next
    day's window, or 24x7) are reported as they fall, not merged.
    """
    start_us, end_us = to_us(start), to_us(end)
    for a, b in _spans_between(hours, calendar, start_us, end_us):
        yield from_us(a), from_us(b)


def working_seconds(hours: ServiceHours, calendar: WorkingCalendar, start: dt.datetime, end: dt.datetime) -> float:
    """Seconds of service time in [start, end); 0 when end <= start."""
    return _working_us(hours, calendar, to_us(start), to_us(end)) / 1_000_000


def add_working_time(hours: ServiceHours, calendar: WorkingCalendar, start: dt.datetime,
                     seconds: float) -> dt.datetime:
    """The earliest instant by which ``seconds`` of service time have passed after ``start`` (in HOSPITAL_TZ).

    For 24x7 that is ``start + seconds``. Adding zero gives ``start`` itself;
    adding exactly the rest of a window gives the window's end (not the next
    opening). Negative amounts are refused with ValueError.
    """
    return from_us(_add_us(hours, calendar, to_us(start), _seconds_to_us(seconds)))


def statutory_data_until(today: dt.date) -> dt.date:
    """The last day the statutory holiday data covers: past it, only overrides and weekends decide."""
    probe = WorkingCalendar()
    year = today.year
    if not probe.covers(dt.date(year, 6, 30)):
        while year > 2004 and not probe.covers(dt.date(year, 6, 30)):
            year -= 1
    else:
        while probe.covers(dt.date(year + 1, 6, 30)):
            year += 1
    return dt.date(year, 12, 31)


def holidays_known_until(today: dt.date, entered_years: Iterable[int]) -> dt.date:
    """The last day whose holidays the calendar knows: the end of the last year, this one and each next in turn,
    that the statutory data covers or whose overrides the hospital has entered (``entered_years``: the runbook
    enters a year's State Council notice at once). Not the last override's day: one override far ahead hid the
    unknown years between, and a year entered in full (its last day off in early October) read as unknown from
    September on, weeks before the next notice could be out."""
    entered = set(entered_years)
    known = statutory_data_until(today)
    while known.year + 1 in entered:
        known = dt.date(known.year + 1, 12, 31)
    return known
