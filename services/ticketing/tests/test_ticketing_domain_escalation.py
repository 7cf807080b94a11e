"""When the worker must look at a ticket again (domain/escalation.py)."""
from __future__ import annotations

import datetime as dt

from ticketing.domain.calendar import ServiceHours, WorkingCalendar
from ticketing.domain.escalation import next_check_at
from ticketing.domain.priority import Priority
from ticketing.domain.sla import EventKind, SlaPolicy, TicketEvent, compute_sla

T0 = dt.datetime(2025, 11, 4, 1, 0, tzinfo=dt.timezone.utc)
ALWAYS = ServiceHours.around_the_clock()


def state(*events: TicketEvent, now: dt.datetime):
    opened = TicketEvent(at=T0, kind=EventKind.OPENED, priority=Priority.P1)
    return compute_sla([opened, *events], ALWAYS, WorkingCalendar(), SlaPolicy.default(), now)


def test_until_someone_responds_the_response_breach_comes_first():
    now = T0 + dt.timedelta(minutes=5)
    # Breached strictly beyond the 15 minutes: the first instant that can be is a microsecond past them.
    assert next_check_at(state(now=now), now, response_breach_reported=False) == \
        T0 + dt.timedelta(minutes=15, microseconds=1)


def test_a_late_response_not_yet_reported_is_looked_at_at_once_then_the_next_level():
    started = TicketEvent(at=T0 + dt.timedelta(minutes=20), kind=EventKind.STARTED)
    now = T0 + dt.timedelta(minutes=20)
    late = state(started, now=now)
    assert late.response_breached
    assert next_check_at(late, now, response_breach_reported=False) == now
    # 75 % of P1's 4 hours.
    assert next_check_at(late, now, response_breach_reported=True) == T0 + dt.timedelta(hours=3)


def test_a_resolved_ticket_needs_no_look_unless_a_breach_is_unreported():
    resolved = TicketEvent(at=T0 + dt.timedelta(minutes=10), kind=EventKind.RESOLVED)
    now = T0 + dt.timedelta(hours=1)
    assert next_check_at(state(resolved, now=now), now, response_breach_reported=False) is None


def test_a_level_the_ticket_was_not_taken_to_is_looked_at_at_once():
    """Resolved past its due instant and reopened: the level came while it stood resolved."""
    now = T0 + dt.timedelta(hours=4, minutes=10)
    breached = state(now=now)
    assert breached.escalation_level == 2
    assert next_check_at(breached, now, response_breach_reported=True, level_reached=0) == now
    assert next_check_at(breached, now, response_breach_reported=True, level_reached=2) > now


def test_a_response_due_at_a_windows_end_is_next_checked_when_it_can_breach_not_on_every_tick():
    """A P1 opened on Friday at 17:15 on office hours: its 15 minutes run out at 17:30, the window's end, and
    the wait goes beyond them only when service resumes on Monday at 08:00. The next check was "now" on every
    tick of the weekend (the target's instant, passed and not breached)."""
    office, tz = ServiceHours.parse("08:00-12:00,13:30-17:30"), dt.timezone(dt.timedelta(hours=8))
    events = [TicketEvent(dt.datetime(2025, 11, 7, 17, 15, tzinfo=tz), EventKind.OPENED, priority=Priority.P1)]
    monday = dt.datetime(2025, 11, 10, 8, 0, tzinfo=tz) + dt.timedelta(microseconds=1)
    for now in (dt.datetime(2025, 11, 7, 17, 30, tzinfo=tz), dt.datetime(2025, 11, 8, 10, 0, tzinfo=tz),
                dt.datetime(2025, 11, 10, 8, 0, tzinfo=tz)):
        rated = compute_sla(events, office, WorkingCalendar(), SlaPolicy.default(), now)
        assert not rated.response_breached
        assert rated.response_due == dt.datetime(2025, 11, 7, 17, 30, tzinfo=tz)     # shown and announced as due
        assert next_check_at(rated, now, response_breach_reported=False) == monday
    assert compute_sla(events, office, WorkingCalendar(), SlaPolicy.default(), monday).response_breached
