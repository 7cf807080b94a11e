"""Worklogs: the engineer's time on a ticket, priced later by grade (the "time" part of the fee).

The grade is the engineer's account's, never the client's choice: an admin sets it in identity, sign-in puts
it in the engineer's token, and a worklog is recorded at the grade the caller's token carries."""
from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from tuoguan_common.errors import FailedPrecondition, InvalidArgument, PermissionDenied, plain

from ticketing.domain.calendar import HOSPITAL_TZ


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
# A worklog is time already worked, so it must end by "now". The engineer's
# phone or PC, the portal and the api each keep their own clock, and NTP lets
# them drift apart by seconds: a minute lets "I have just finished" through
# from a clock a little ahead, and is far too short to claim work not yet done
# (the shortest worklog is a minute).
CLOCK_SKEW = dt.timedelta(seconds=60)
MAX_AGE = dt.timedelta(days=31)
IN_FUTURE = "worklog_in_future"
BEFORE_OPENING = "worklog_before_ticket_opened"
OVERLAPS = "worklog_overlaps"
# The reason kept from when only the current assignee logged time (clients know it).
NOT_ON_TICKET = "not_assignee"
NOT_GRADED = "engineer_not_graded"


class WorklogInFuture(InvalidArgument):
    """The worklog claims time not worked yet: it starts, or ends, after now."""

    reason = IN_FUTURE


class WorklogBeforeTicketOpened(InvalidArgument):
    """The worklog starts before its ticket was opened: time worked before anyone reported the problem is no
    work on this ticket, and billing would pay for it once the ticket closes. Names when it was opened, to the
    minute: INVALID_ARGUMENT on started_at."""

    reason = BEFORE_OPENING

    def __init__(self, opened_at: dt.datetime):
        super().__init__("started_at", f"is before the ticket was opened at {_hospital_time(opened_at)}: a "
                                       "worklog starts once the ticket is open")
        self.opened_at = opened_at


class WorklogOverlaps(FailedPrecondition):
    """The engineer already logged time in part of this worklog's span (on this ticket or another):
    one person's hour is paid once. Names the span it overlaps, nothing personal."""

    reason = OVERLAPS

    def __init__(self, started_at: dt.datetime, ended_at: dt.datetime):
        super().__init__(f"this worklog overlaps time already logged from {_hospital_time(started_at)} to "
                         f"{_hospital_time(ended_at)}: one engineer's worklogs may not overlap")
        self.started_at = started_at
        self.ended_at = ended_at


class NotOnTicket(PermissionDenied):
    """The engineer never was on the ticket: the fee pays the hours worked on a ticket by its engineers."""

    reason = NOT_ON_TICKET

    def __init__(self) -> None:
        super().__init__("only an engineer who is or was assigned to the ticket logs time on it")


def refuse_not_on_ticket(engineer_id: str, *, assignee_id: str | None, was_assigned: bool,
                         dispatcher_or_admin: bool) -> None:
    """Raises ``NotOnTicket`` unless the engineer may log time on the ticket: its assignee, or an engineer
    it was ever assigned to (``was_assigned``): a dispatcher's reassignment or the level-3 hand-off to the
    escalation team takes the ticket off them, not the hours they already worked on it, which they log
    afterwards as a rule. A dispatcher or an admin (holding the engineer role) logs time on any ticket."""
    if dispatcher_or_admin or engineer_id == assignee_id or was_assigned:
        return
    raise NotOnTicket()


class EngineerNotGraded(FailedPrecondition):
    """The caller's token carries no rate grade (or one the contract does not know), so their hours have
    no price: an admin sets engineers' grades in identity, and the engineer signs in again afterwards."""

    reason = NOT_GRADED

    def __init__(self, grade: str = ""):
        known = f"the grade {grade!r} is not one of {', '.join(g.value for g in Grade)}" if grade else \
            "no rate grade"
        super().__init__(f"this account has {known}, so its time cannot be logged: an admin sets engineers' "
                         "grades in identity; sign in again once it is set")


def _hospital_time(moment: dt.datetime) -> str:
    return moment.astimezone(HOSPITAL_TZ).isoformat(timespec="minutes")


def _choice(enum: type[StrEnum], value: str, field: str) -> StrEnum:
    try:
        return enum(str(value or "").strip().lower())
    except ValueError:
        raise InvalidArgument(field, f"{value!r} is not one of {', '.join(m.value for m in enum)}") from None


def _normal(grade: str | None) -> str:
    return str(grade or "").strip().lower()


def worklog_grade(account_grade: str, requested: str = "") -> Grade:
    """The grade a worklog is recorded at: the account's (``account_grade``, the caller's token's claim).

    ``EngineerNotGraded`` (FAILED_PRECONDITION, reason engineer_not_graded) when the account has none, or
    one the contract does not know; a ``requested`` grade (stripped, any case) other than the account's is
    InvalidArgument on grade naming the account's: a client cannot price its own hours. An empty
    ``requested`` is the account's."""
    try:
        grade = Grade(_normal(account_grade))
    except ValueError:
        raise EngineerNotGraded(str(account_grade or "").strip()) from None
    asked = _normal(requested)
    if asked and asked != grade:
        raise InvalidArgument("grade", f"this account's grade is {grade.value}: a worklog is recorded at the "
                                       "account's grade (leave grade empty)")
    return grade


def validate_worklog(engineer_id: str, account_grade: str, activity: str, started_at: dt.datetime, minutes: int,
                     note: str, now: dt.datetime, *, requested_grade: str = "") -> Worklog:
    """A checked Worklog, or InvalidArgument(field, problem) (``EngineerNotGraded`` for an account without a
    grade).

    The grade is ``account_grade``, the caller's token's (``worklog_grade``; ``requested_grade``, the client's,
    may only repeat it); minutes 1..1440; the start not more than 31 days ago and the end (start +
    minutes) not after ``now`` (CLOCK_SKEW of slack): ``WorklogInFuture``
    naming started_at when the start itself is after now, else minutes; a known
    activity; a note of at most 2000 characters (stripped) with no
    control character but tab and line breaks. When the ticket was opened is the store's to check, once it holds
    the ticket's row (``refuse_before_opening``).
    """
    engineer_id = str(engineer_id or "").strip()
    if not engineer_id:
        raise InvalidArgument("engineer_id", "is required")
    grade = worklog_grade(account_grade, requested_grade)
    activity_value = _choice(Activity, activity, "activity")
    if not isinstance(started_at, dt.datetime) or started_at.tzinfo is None or started_at.utcoffset() is None:
        raise InvalidArgument("started_at", "must be a date and time with a time zone")
    latest_end = now + CLOCK_SKEW
    if started_at > latest_end:
        raise WorklogInFuture("started_at", "is in the future: log time once it has been worked")
    if started_at < now - MAX_AGE:
        raise InvalidArgument("started_at", f"is more than {MAX_AGE.days} days ago")
    if isinstance(minutes, bool) or not isinstance(minutes, int):
        raise InvalidArgument("minutes", "must be a whole number of minutes")
    if not 1 <= minutes <= MAX_MINUTES:
        raise InvalidArgument("minutes", f"must be between 1 and {MAX_MINUTES}")
    ended_at = started_at + dt.timedelta(minutes=minutes)
    if ended_at > latest_end:
        raise WorklogInFuture("minutes", f"would end the worklog at {_hospital_time(ended_at)}, after now: "
                                         "log time once it has been worked")
    note = (note or "").strip()
    if len(note) > MAX_NOTE:
        raise InvalidArgument("note", f"is longer than {MAX_NOTE} characters")
    # PostgreSQL's text cannot hold NUL: the write would fail as INTERNAL after the checks had passed.
    note = plain(note, "note")
    return Worklog(engineer_id=engineer_id, grade=grade, activity=Activity(activity_value),
                   started_at=started_at, minutes=minutes, note=note)


def opened_minute(opened_at: dt.datetime) -> dt.datetime:
    """The earliest start a worklog on a ticket opened at ``opened_at`` may have: the minute it was opened.
    Starts are given to the minute (the portal's form, the ticket page's times), so a ticket opened at
    10:03:27 takes work from 10:03: the seconds before its opening pay for nothing (the shortest worklog is
    a minute), and refusing them would refuse the engineer who typed the opening minute."""
    return opened_at.replace(second=0, microsecond=0)


def refuse_before_opening(started_at: dt.datetime, opened_at: dt.datetime) -> None:
    """Raises ``WorklogBeforeTicketOpened`` when a worklog starting at ``started_at`` starts before the minute
    its ticket was opened (``opened_minute``); returns otherwise. The ticket's opening is read in the
    worklog's own transaction, so the store calls this once it holds the ticket's row."""
    earliest = opened_minute(opened_at)
    if started_at < earliest:
        raise WorklogBeforeTicketOpened(earliest)


def billable_on_close(resolved: bool) -> bool:
    """Whether closing a ticket makes its worklogs billable: when it closes after a resolution, however it
    closes (the requester confirmed, it closed by itself, or a dispatcher or admin closed it: the requester out of
    reach, the alarm cleared). A ticket closed unresolved (a duplicate, a mistake) bills nothing: the fee pays
    for work that resolved something."""
    return resolved


def void_on_close(resolved: bool) -> bool:
    """Whether closing a ticket voids its worklogs: when it closes unresolved (``billable_on_close`` is
    False), they will never be billed, so they no longer hold the engineer's time (``refuse_overlap``, the
    database's exclusion constraint, counts the worklogs not void): an hour logged on a duplicate is logged
    again on the ticket really worked, and paid once there. A closed ticket is final, so a void worklog stays
    void."""
    return not billable_on_close(resolved)


def overlaps(started_at: dt.datetime, ended_at: dt.datetime, other_start: dt.datetime,
             other_end: dt.datetime) -> bool:
    """Whether two spans [start, end) share an instant: one ending as the next starts does not
    (PostgreSQL's ``tstzrange(a, b) && tstzrange(c, d)``, which the database enforces)."""
    return started_at < other_end and other_start < ended_at


def refuse_overlap(log: Worklog, recorded: Iterable[tuple[dt.datetime, dt.datetime]]) -> None:
    """Raises ``WorklogOverlaps`` naming the earliest recorded span (start, end) of the same engineer
    that ``log`` overlaps; returns when none does."""
    hit = sorted(span for span in recorded if overlaps(log.started_at, log.ended_at, *span))
    if hit:
        raise WorklogOverlaps(*hit[0])
