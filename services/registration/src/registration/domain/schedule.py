"""Publishing: weekly session templates become dated sessions and slots,
released to patients at the release time."""
from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from .model import Period
from .policy import ReleasePolicy

MIN_SLOT_MINUTES = 5
MAX_SLOT_MINUTES = 240
MAX_CAPACITY_PER_SLOT = 200
MAX_DAYS_AHEAD = 60


@dataclass(frozen=True)
class Template:
    template_id: str
    doctor_id: str
    department_id: str
    weekday: int
    period: Period
    start_time: dt.time
    end_time: dt.time
    slot_minutes: int
    capacity_per_slot: int
    # The fee of the doctor's title when the schedule is published.
    fee_fen: int


@dataclass(frozen=True)
class PlannedSlot:
    starts_at: dt.datetime
    ends_at: dt.datetime
    capacity: int


@dataclass(frozen=True)
class PlannedSession:
    template_id: str | None
    doctor_id: str
    department_id: str
    service_date: dt.date
    period: Period
    released_at: dt.datetime
    fee_fen: int
    slots: tuple[PlannedSlot, ...]


def template_problem(start: dt.time, end: dt.time, slot_minutes: int, capacity_per_slot: int) -> tuple[str, str] | None:
    """The first thing wrong with a template's numbers, as (field, problem)."""
    if not MIN_SLOT_MINUTES <= slot_minutes <= MAX_SLOT_MINUTES:
        return "template.slot_minutes", f"must be between {MIN_SLOT_MINUTES} and {MAX_SLOT_MINUTES}"
    if not 1 <= capacity_per_slot <= MAX_CAPACITY_PER_SLOT:
        return "template.capacity_per_slot", f"must be between 1 and {MAX_CAPACITY_PER_SLOT}"
    if end <= start:
        return "template.end_time", "must be after start_time"
    if _minutes(end) - _minutes(start) < slot_minutes:
        return "template.end_time", "leaves room for no whole slot"
    return None


def overlap_problem(start: dt.time, end: dt.time,
                    others: Iterable[tuple[Period, dt.time, dt.time]]) -> tuple[str, str] | None:
    """Where a template's hours run into another active template of the same
    doctor on the same weekday, as (field, problem): a doctor holds one
    session at a time, and a patient could otherwise book both at once.
    Touching is not overlapping (08:00-12:00 and 12:00-15:00 both stand)."""
    for period, other_start, other_end in sorted(others, key=lambda o: o[1]):
        if start < other_end and other_start < end:
            overlaps = f"overlaps the doctor's {period} template that weekday ({other_start:%H:%M}-{other_end:%H:%M})"
            if start < other_start:
                return "template.end_time", f"{overlaps}: must be {other_start:%H:%M} or earlier"
            return "template.start_time", f"{overlaps}: must be {other_end:%H:%M} or later"
    return None


def _minutes(t: dt.time) -> int:
    return t.hour * 60 + t.minute


def slot_times(day: dt.date, start: dt.time, end: dt.time, slot_minutes: int,
               policy: ReleasePolicy) -> list[tuple[dt.datetime, dt.datetime]]:
    """The whole slots between start and end local time, in UTC."""
    step = dt.timedelta(minutes=slot_minutes)
    first = policy.local_moment(day, start)
    last = policy.local_moment(day, end)
    times = []
    begin = first
    while begin + step <= last:
        times.append((begin, begin + step))
        begin += step
    return times


def next_release(now: dt.datetime, policy: ReleasePolicy) -> dt.datetime:
    today = policy.local_date(now)
    moment = policy.local_moment(today, policy.release_time)
    return moment if moment > now else policy.local_moment(today + dt.timedelta(days=1), policy.release_time)


def release_moment(service_date: dt.date, policy: ReleasePolicy, now: dt.datetime, release_now: bool) -> dt.datetime:
    """When patients first see a day's slots.

    A day opens at the release time ``days_ahead`` days before it, so every
    patient gets the same 07:00 chance. A day published after that moment
    (a new template, a first deployment) opens at the next release time, not
    in the middle of the day, unless the office releases it now.
    """
    if release_now:
        return now
    rolling = policy.local_moment(service_date - dt.timedelta(days=policy.days_ahead), policy.release_time)
    return rolling if rolling > now else next_release(now, policy)


def publish_window(today: dt.date, days_ahead: int) -> tuple[dt.date, dt.date]:
    """From tomorrow to ``days_ahead`` days after today, inclusive."""
    return today + dt.timedelta(days=1), today + dt.timedelta(days=days_ahead)


@dataclass(frozen=True)
class PublishedSession:
    """A session that exists, as far as publishing cares."""

    template_id: str | None
    doctor_id: str
    service_date: dt.date
    period: Period


def not_yet_published(planned: Iterable[PlannedSession],
                      published: Iterable[PublishedSession]) -> list[PlannedSession]:
    """The planned sessions whose day is not published yet. A doctor's day and
    period holds one session, and a template makes one session a day: once a
    day is published from a template, editing the template (its period, even
    its doctor) changes only the days not yet published."""
    doctor_days, template_days = set(), set()
    for session in published:
        doctor_days.add((session.doctor_id, session.service_date, Period(session.period)))
        if session.template_id is not None:
            template_days.add((session.template_id, session.service_date))
    return [p for p in planned
            if (p.doctor_id, p.service_date, p.period) not in doctor_days
            and (p.template_id is None or (p.template_id, p.service_date) not in template_days)]


def plan_sessions(templates: Iterable[Template], first_day: dt.date, last_day: dt.date, policy: ReleasePolicy,
                  now: dt.datetime, *, release_now: bool = False) -> list[PlannedSession]:
    by_weekday: dict[int, list[Template]] = {}
    for template in templates:
        by_weekday.setdefault(template.weekday, []).append(template)
    planned = []
    day = first_day
    while day <= last_day:
        released_at = release_moment(day, policy, now, release_now)
        for t in by_weekday.get(day.isoweekday(), ()):
            slots = tuple(PlannedSlot(s, e, t.capacity_per_slot)
                          for s, e in slot_times(day, t.start_time, t.end_time, t.slot_minutes, policy))
            if slots:
                planned.append(PlannedSession(t.template_id, t.doctor_id, t.department_id, day, t.period,
                                              released_at, t.fee_fen, slots))
        day += dt.timedelta(days=1)
    return planned
