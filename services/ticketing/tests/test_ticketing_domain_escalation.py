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


def test_until_someone_responds_the_response_due_instant_comes_first():
    now = T0 + dt.timedelta(minutes=5)
    assert next_check_at(state(now=now), now, response_breach_reported=False) == T0 + dt.timedelta(minutes=15)


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
