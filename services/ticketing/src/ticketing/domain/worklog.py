"""Worklogs: the engineer's time on a ticket, priced later by grade (the "time" part of the fee)."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum

from tuoguan_common.errors import InvalidArgument, plain

from ticketing.domain.lifecycle import Status


class Activity(StrEnum):
    DIAGNOSIS = "diagnosis"
    REPAIR = "repair"
    ONSITE = "onsite"
    REMOTE = "remote"
    CHANGE = "change"
    TRAVEL = "travel"
    DOCUMENTATION = "documentation"


class Grade(StrEnum):
    JUNIOR = "junior"
    INTERMEDIATE = "intermediate"
    SENIOR = "senior"
    EXPERT = "expert"


@dataclass(frozen=True)
class Worklog:
    engineer_id: str
    grade: Grade
    activity: Activity
    started_at: dt.datetime
    minutes: int
    note: str = ""

    @property
    def ended_at(self) -> dt.datetime:
        return self.started_at + dt.timedelta(minutes=self.minutes)


MAX_MINUTES = 24 * 60
MAX_NOTE = 2000
FUTURE_SLACK = dt.timedelta(minutes=5)
MAX_AGE = dt.timedelta(days=31)


def _choice(enum: type[StrEnum], value: str, field: str) -> StrEnum:
    try:
        return enum(str(value or "").strip().lower())
    except ValueError:
        raise InvalidArgument(field, f"{value!r} is not one of {', '.join(m.value for m in enum)}") from None


def validate_worklog(engineer_id: str, grade: str, activity: str, started_at: dt.datetime, minutes: int, note: str,
                     now: dt.datetime) -> Worklog:
    """A checked Worklog, or InvalidArgument(field, problem).

    minutes 1..1440; the start not in the future (5 minutes of slack for
    clocks) nor more than 31 days ago; a known grade and activity; a note of at
    most 2000 characters (stripped) with no control character but tab and line breaks.
    """
    engineer_id = str(engineer_id or "").strip()
    if not engineer_id:
        raise InvalidArgument("engineer_id", "is required")
    grade_value = _choice(Grade, grade, "grade")
    activity_value = _choice(Activity, activity, "activity")
    if not isinstance(started_at, dt.datetime) or started_at.tzinfo is None or started_at.utcoffset() is None:
        raise InvalidArgument("started_at", "must be a date and time with a time zone")
    if started_at > now + FUTURE_SLACK:
        raise InvalidArgument("started_at", "is in the future")
    if started_at < now - MAX_AGE:
        raise InvalidArgument("started_at", f"is more than {MAX_AGE.days} days ago")
    if isinstance(minutes, bool) or not isinstance(minutes, int):
        raise InvalidArgument("minutes", "must be a whole number of minutes")
    if not 1 <= minutes <= MAX_MINUTES:
        raise InvalidArgument("minutes", f"must be between 1 and {MAX_MINUTES}")
    note = (note or "").strip()
    if len(note) > MAX_NOTE:
        raise InvalidArgument("note", f"is longer than {MAX_NOTE} characters")
    # PostgreSQL's text cannot hold NUL: the write would fail as INTERNAL after the checks had passed.
    note = plain(note, "note")
    return Worklog(engineer_id=engineer_id, grade=Grade(grade_value), activity=Activity(activity_value),
                   started_at=started_at, minutes=minutes, note=note)


def billable(status: Status) -> bool:
    """Worklogs become billable when the ticket is CLOSED (confirmed by the requester, auto-closed or closed)."""
    return Status(status) == Status.CLOSED
