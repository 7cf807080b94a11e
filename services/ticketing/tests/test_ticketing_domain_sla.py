"""SLA states from event histories: named real cases on the 2026 calendar, the rules one by one, and properties."""
from __future__ import annotations

import datetime as dt
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st
from ticketing.domain.calendar import HOSPITAL_TZ, ServiceHours, WorkingCalendar
from ticketing.domain.escalation import next_check_at
from ticketing.domain.priority import Priority
from ticketing.domain.sla import EventKind, Side, SlaPolicy, SlaState, SlaTargets, TicketEvent, compute_sla

OFFICE = ServiceHours.parse("08:00-12:00,13:30-17:30")
NIGHTS = ServiceHours.parse("22:00-06:00")
ALWAYS = ServiceHours.around_the_clock()
CAL = WorkingCalendar()
POLICY = SlaPolicy.default()
HOUR = 3600.0
K = EventKind


def at(y, mo, d, h=0, mi=0, s=0, us=0) -> dt.datetime:
    return dt.datetime(y, mo, d, h, mi, s, us, tzinfo=HOSPITAL_TZ)


def opened(moment: dt.datetime, priority: Priority) -> TicketEvent:
    return TicketEvent(moment, K.OPENED, priority=priority)


def ev(moment: dt.datetime, kind: EventKind, **kw) -> TicketEvent:
    return TicketEvent(moment, kind, **kw)


def sla(events, hours=OFFICE, now=None, policy=POLICY, calendar=CAL) -> SlaState:
    return compute_sla(events, hours, calendar, policy, now or max(e.at for e in events))


# ---------------------------------------------------------------------------
# Named real cases


def test_p3_opened_on_the_eve_of_national_day_2026_is_due_after_the_holiday():
    """A P3 ticket on office hours opened Wednesday 2026-09-30 16:00, the eve of the Golden Week.

    By hand: 16:00-17:30 on the 30th is 1.5 h; Oct 1-7 are holidays; Thu Oct 8
    and Fri Oct 9 give 8 h each (17.5 h); Saturday Oct 10 is a make-up working
    day: 08:00-12:00 (21.5 h), then 2.5 h from 13:30: due 2026-10-10 16:00.
    The 2 h response target: 1.5 h on the 30th, then 30 min: 2026-10-08 08:30.
    """
    events = [opened(at(2026, 9, 30, 16), Priority.P3), ev(at(2026, 9, 30, 16, 5), K.ASSIGNED),
              ev(at(2026, 10, 8, 8, 20), K.STARTED)]
    state = sla(events, now=at(2026, 10, 8, 10))
    assert state.priority == Priority.P3
    assert state.response_due == at(2026, 10, 8, 8, 30)
    assert state.responded_at == at(2026, 10, 8, 8, 20) and not state.response_breached
    assert state.resolution_due == at(2026, 10, 10, 16)
    assert state.resolution_elapsed_seconds == 3.5 * HOUR
    assert state.resolution_target_seconds == 24 * HOUR
    assert state.escalation_level == 0 and not state.resolution_breached
    # Level 1 at 75% = 18 h: 17.5 h by Friday night, then 30 minutes on Saturday the 10th.
    assert state.next_escalation_at == at(2026, 10, 10, 8, 30)
    assert state.urgency_seconds == 20.5 * HOUR


def test_a_ticket_opened_on_a_2026_make_up_working_day_runs_on_that_sunday():
    """Sunday 2026-01-04 is a make-up working day (调休 for New Year): the clock runs; on Sunday 01-11 it does not.

    P2 (8 h) opened 01-04 09:00: 3 h + 4 h that Sunday, 1 h on Monday: due 2026-01-05 09:00.
    The same ticket opened on the ordinary Sunday 01-11 starts Monday 08:00 and is due Monday 17:30.
    """
    make_up = sla([opened(at(2026, 1, 4, 9), Priority.P2)], now=at(2026, 1, 4, 9))
    assert make_up.response_due == at(2026, 1, 4, 9, 30)
    assert make_up.resolution_due == at(2026, 1, 5, 9)
    ordinary = sla([opened(at(2026, 1, 11, 9), Priority.P2)], now=at(2026, 1, 11, 20))
    assert ordinary.resolution_elapsed_seconds == 0
    assert ordinary.response_due == at(2026, 1, 12, 8, 30)
    assert ordinary.resolution_due == at(2026, 1, 12, 17, 30)


def test_p4_across_the_2026_spring_festival():
    """A P4 ticket (40 h) opened Friday 2026-02-13 09:00, before the Spring Festival (Feb 15-23 off).

    Fri 13th 7 h; Sat 14th is a make-up working day, 8 h (15 h); nothing to Mon
    23rd; Tue-Thu 24th-26th 24 h (39 h); the last hour on Fri 27th: due
    2026-02-27 09:00. The 8 h response runs out on the make-up Saturday at 09:00.
    """
    events = [opened(at(2026, 2, 13, 9), Priority.P4)]
    state = sla(events, now=at(2026, 2, 25, 12))
    assert state.response_due == at(2026, 2, 14, 9)
    assert state.response_breached
    assert state.resolution_due == at(2026, 2, 27, 9)
    # 7 + 8 + 8 + 4 = 27 h by Wednesday noon: below 75% (30 h), reached at 16:30 that afternoon.
    assert state.resolution_elapsed_seconds == 27 * HOUR
    assert state.escalation_level == 0
    assert state.next_escalation_at == at(2026, 2, 25, 16, 30)


def test_a_24x7_critical_subsystem_runs_straight_through_the_national_day_holiday():
    """A P1 on a 24x7 subsystem opened 2026-09-30 16:00 is due 20:00 the same day; a P3 there at 16:00 on Oct 1."""
    p1 = sla([opened(at(2026, 9, 30, 16), Priority.P1)], hours=ALWAYS, now=at(2026, 10, 2, 16))
    assert p1.response_due == at(2026, 9, 30, 16, 15)
    assert p1.resolution_due == at(2026, 9, 30, 20)
    assert p1.resolution_elapsed_seconds == 48 * HOUR
    assert p1.resolution_breached and p1.escalation_level == 3 and p1.next_escalation_at is None
    p3 = sla([opened(at(2026, 9, 30, 16), Priority.P3)], hours=ALWAYS, now=at(2026, 9, 30, 16))
    assert p3.resolution_due == at(2026, 10, 1, 16)
    assert p3.response_due == at(2026, 9, 30, 18)


def test_overnight_service_window_across_a_weekend():
    """Service 22:00-06:00 on working days. A P2 (8 h) opened Friday 2026-11-27 23:00.

    Friday's night runs to Saturday 06:00 (7 h); Saturday and Sunday nights are
    not service time; the last hour is Monday 22:00-23:00: due 2026-11-30 23:00.
    """
    events = [opened(at(2026, 11, 27, 23), Priority.P2)]
    state = sla(events, hours=NIGHTS, now=at(2026, 11, 29, 12))
    assert state.response_due == at(2026, 11, 27, 23, 30)
    assert state.resolution_elapsed_seconds == 7 * HOUR
    assert state.resolution_due == at(2026, 11, 30, 23)
    assert state.escalation_level == 1  # 7/8 of the target
    # Breached one microsecond of service time after the due instant.
    assert state.next_escalation_at == at(2026, 11, 30, 23, 0, 0, 1)


def test_hospital_pause_over_a_weekend_stops_the_clock_a_contractor_pause_does_not():
    """24x7 P2 (8 h) opened Friday 2026-11-27 14:00, paused 18:00 (4 h used) and resumed Monday 08:00.

    Paused by the hospital (the ward could not free the workstation) or by a
    vendor, the weekend does not count: Monday 10:00 shows 6 h used, due 12:00.
    Paused by the contractor (waiting for its own spare part), the clock ran:
    68 h used, breached long ago.
    """
    def history(side: Side):
        return [opened(at(2026, 11, 27, 14), Priority.P2), ev(at(2026, 11, 27, 14, 5), K.STARTED),
                ev(at(2026, 11, 27, 18), K.PAUSED, side=side), ev(at(2026, 11, 30, 8), K.RESUMED)]

    for side in (Side.HOSPITAL, Side.VENDOR):
        during = sla(history(side)[:3], hours=ALWAYS, now=at(2026, 11, 28, 12))
        assert during.clock_stopped and during.paused_by == side
        assert during.resolution_due is None and during.next_escalation_at is None
        assert during.resolution_elapsed_seconds == 4 * HOUR
        after = sla(history(side), hours=ALWAYS, now=at(2026, 11, 30, 10))
        assert not after.clock_stopped and after.paused_by is None
        assert after.resolution_elapsed_seconds == 6 * HOUR
        assert after.resolution_due == at(2026, 11, 30, 12)
        assert not after.resolution_breached
    during = sla(history(Side.CONTRACTOR)[:3], hours=ALWAYS, now=at(2026, 11, 28, 12))
    assert not during.clock_stopped and during.paused_by == Side.CONTRACTOR
    assert during.resolution_due == at(2026, 11, 27, 22)
    contractor = sla(history(Side.CONTRACTOR), hours=ALWAYS, now=at(2026, 11, 30, 10))
    assert contractor.resolution_elapsed_seconds == 68 * HOUR
    assert contractor.resolution_breached and contractor.escalation_level == 3


def test_hospital_pause_on_office_hours_over_a_weekend():
    """Office hours, P2 opened Friday 2026-11-27 09:00, paused 15:30 (5 h used), resumed Monday 10:00.

    Hospital pause: Monday noon shows 5 + 2 = 7 h. Contractor pause: Friday's
    last 2 h and Monday's 4 h count as well: 11 h, breached.
    """
    def history(side: Side):
        return [opened(at(2026, 11, 27, 9), Priority.P2), ev(at(2026, 11, 27, 9, 10), K.STARTED),
                ev(at(2026, 11, 27, 15, 30), K.PAUSED, side=side), ev(at(2026, 11, 30, 10), K.RESUMED)]

    hospital = sla(history(Side.HOSPITAL), now=at(2026, 11, 30, 12))
    assert hospital.resolution_elapsed_seconds == 7 * HOUR and not hospital.resolution_breached
    assert hospital.resolution_due == at(2026, 11, 30, 14, 30)
    contractor = sla(history(Side.CONTRACTOR), now=at(2026, 11, 30, 12))
    assert contractor.resolution_elapsed_seconds == 11 * HOUR and contractor.resolution_breached
    assert contractor.resolution_due == at(2026, 11, 30, 9)


def test_reopen_continues_the_same_clock():
    """P3 opened Monday 2026-11-30 09:00, resolved 11:00 (2 h), reopened Tuesday 09:00.

    Between resolution and reopening nothing counts; after it the clock goes
    on from 2 h: Tuesday noon shows 5 h; the remaining 19 h are Tuesday
    afternoon (4 h), Wednesday (8 h), Thursday morning (4 h) and 3 h from 13:30:
    due Thursday 2026-12-03 16:30.
    """
    events = [opened(at(2026, 11, 30, 9), Priority.P3), ev(at(2026, 11, 30, 9, 10), K.STARTED),
              ev(at(2026, 11, 30, 11), K.RESOLVED)]
    resolved = sla(events, now=at(2026, 11, 30, 16))
    assert resolved.resolved_at == at(2026, 11, 30, 11)
    assert resolved.resolution_elapsed_seconds == 2 * HOUR
    assert resolved.resolution_due is None and resolved.next_escalation_at is None
    assert resolved.escalation_level == 0 and not resolved.resolution_breached
    reopened = sla(events + [ev(at(2026, 12, 1, 9), K.REOPENED)], now=at(2026, 12, 1, 12))
    assert reopened.resolved_at is None
    assert reopened.resolution_elapsed_seconds == 5 * HOUR
    assert reopened.resolution_due == at(2026, 12, 3, 16, 30)
    assert reopened.responded_at == at(2026, 11, 30, 9, 10)  # the first response stands


def test_priority_change_switches_targets_against_the_total_elapsed():
    """P4 opened Monday 2026-11-30 09:00, raised to P2 at 13:30 after 3 h: the P2 targets apply to all 3.5 h so far.

    8 h from 09:00 on office hours: 3 h + 4 h on Monday, 1 h on Tuesday: due
    2026-12-01 09:00. Nobody has started it, so the P2 response target (30 min,
    due 09:30) is breached.
    """
    events = [opened(at(2026, 11, 30, 9), Priority.P4),
              ev(at(2026, 11, 30, 13, 30), K.PRIORITY_CHANGED, priority=Priority.P2)]
    state = sla(events, now=at(2026, 11, 30, 14))
    assert state.priority == Priority.P2
    assert state.resolution_target_seconds == 8 * HOUR
    assert state.resolution_elapsed_seconds == 3.5 * HOUR
    assert state.resolution_due == at(2026, 12, 1, 9)
    assert state.response_due == at(2026, 11, 30, 9, 30) and state.response_breached
    before = sla(events[:1], now=at(2026, 11, 30, 13))
    assert before.priority == Priority.P4 and before.resolution_target_seconds == 40 * HOUR
    assert before.response_due == at(2026, 12, 1, 9) and not before.response_breached  # P4: 8 h


def test_lowering_the_priority_can_lift_a_breach():
    """Documented simplicity: the current priority's targets against the total elapsed time."""
    events = [opened(at(2026, 11, 30, 9), Priority.P1), ev(at(2026, 11, 30, 9, 5), K.STARTED)]
    assert sla(events, now=at(2026, 11, 30, 16)).resolution_breached
    lowered = events + [ev(at(2026, 11, 30, 16), K.PRIORITY_CHANGED, priority=Priority.P3)]
    state = sla(lowered, now=at(2026, 11, 30, 16))
    assert not state.resolution_breached and state.escalation_level == 0


def test_escalation_raise_keeps_the_breached_targets():
    """Level 2 raises P3 to P2; marked as an escalation, it does not re-rate the ticket against P2's 8 h."""
    base = [opened(at(2026, 11, 30, 9), Priority.P3), ev(at(2026, 11, 30, 9, 5), K.STARTED)]
    # 24 h of office time from Monday 09:00 runs out Thursday 09:00; one hour later it is breached.
    breached = sla(base, now=at(2026, 12, 3, 10))
    assert breached.resolution_breached and breached.escalation_level == 2
    raised = base + [ev(at(2026, 12, 3, 10), K.PRIORITY_CHANGED, priority=Priority.P2, escalation=True)]
    state = sla(raised, now=at(2026, 12, 3, 10, 30))
    assert state.priority == Priority.P2
    assert state.resolution_target_seconds == 24 * HOUR
    assert state.escalation_level == 2
    # Level 3 beyond 36 h: 23 h by Wednesday night, 31 h by Thursday's, Friday 4 h + 1 h: 14:30 (+1 us).
    assert state.next_escalation_at == at(2026, 12, 4, 14, 30, 0, 1)
    rerated = base + [ev(at(2026, 12, 3, 10), K.PRIORITY_CHANGED, priority=Priority.P2)]
    assert sla(rerated, now=at(2026, 12, 3, 10, 30)).escalation_level == 3


def test_opened_outside_service_hours_starts_at_the_next_opening():
    """Office-hours P1 (15 min / 4 h): the clock starts at the next opening.

    Opened 07:00 -> from 08:00; at lunch 12:30 -> from 13:30; on Saturday -> Monday 08:00.
    """
    early = sla([opened(at(2026, 11, 30, 7), Priority.P1)], now=at(2026, 11, 30, 7, 59))
    assert early.resolution_elapsed_seconds == 0
    assert early.response_due == at(2026, 11, 30, 8, 15)
    assert early.resolution_due == at(2026, 11, 30, 12)
    lunch = sla([opened(at(2026, 11, 30, 12, 30), Priority.P1)], now=at(2026, 11, 30, 12, 30))
    assert lunch.response_due == at(2026, 11, 30, 13, 45)
    assert lunch.resolution_due == at(2026, 11, 30, 17, 30)
    weekend = sla([opened(at(2026, 11, 28, 10), Priority.P1)], now=at(2026, 11, 29, 23))
    assert weekend.response_due == at(2026, 11, 30, 8, 15) and not weekend.response_breached
    assert weekend.escalation_level == 0


# ---------------------------------------------------------------------------
# The rules, one by one


def test_a_ticket_without_opened_event_is_refused():
    with pytest.raises(ValueError, match="OPENED"):
        sla([ev(at(2026, 11, 30, 9), K.STARTED)])
    with pytest.raises(ValueError, match="priority"):
        sla([ev(at(2026, 11, 30, 9), K.OPENED)])
    with pytest.raises(ValueError, match="priority"):
        sla([opened(at(2026, 11, 30, 9), Priority.P2), ev(at(2026, 11, 30, 10), K.PRIORITY_CHANGED)])


def test_events_are_taken_in_time_order_whatever_the_order_given():
    events = [opened(at(2026, 11, 30, 9), Priority.P2), ev(at(2026, 11, 30, 9, 20), K.STARTED),
              ev(at(2026, 11, 30, 10), K.PAUSED, side=Side.VENDOR), ev(at(2026, 11, 30, 14), K.RESUMED),
              ev(at(2026, 11, 30, 15), K.RESOLVED), ev(at(2026, 11, 30, 16), K.REOPENED)]
    expected = sla(events, now=at(2026, 12, 1, 10))
    shuffled = events[:]
    random.Random(4).shuffle(shuffled)
    assert sla(shuffled, now=at(2026, 12, 1, 10)) == expected
    # 09:00-10:00, 14:00-15:00, 16:00-17:30, Tuesday 08:00-10:00
    assert expected.resolution_elapsed_seconds == 5.5 * HOUR


def test_response_is_the_first_start():
    late = [opened(at(2026, 11, 30, 9), Priority.P1), ev(at(2026, 11, 30, 9, 15), K.ASSIGNED),
            ev(at(2026, 11, 30, 9, 16), K.STARTED), ev(at(2026, 11, 30, 9, 30), K.STARTED)]
    state = sla(late)
    assert state.responded_at == at(2026, 11, 30, 9, 16) and state.response_breached
    on_the_dot = [opened(at(2026, 11, 30, 9), Priority.P1), ev(at(2026, 11, 30, 9, 15), K.STARTED)]
    assert not sla(on_the_dot).response_breached


def test_an_alert_that_cleared_before_anyone_started_is_no_response_and_firing_again_owes_one():
    """P1 on 24x7 hours opened 09:00 (response due 09:15). The alert clears at 09:05: the machine's
    resolution is nobody's response, but nobody owes one while it stands, so it breaches nothing however long
    it stays resolved. It fires again at 09:10 (reopened): the response is owed again, with the 10 minutes it
    had left, so due at 09:20, and breached after that until someone starts."""
    events = [opened(at(2026, 11, 30, 9), Priority.P1), ev(at(2026, 11, 30, 9, 5), K.RESOLVED)]
    cleared = compute_sla(events, ALWAYS, CAL, POLICY, at(2026, 12, 3, 9))
    assert cleared.responded_at is None and not cleared.response_breached
    assert cleared.response_due == at(2026, 11, 30, 9, 15)
    refired = events + [ev(at(2026, 11, 30, 9, 10), K.REOPENED)]
    assert not compute_sla(refired, ALWAYS, CAL, POLICY, at(2026, 11, 30, 9, 20)).response_breached
    assert compute_sla(refired, ALWAYS, CAL, POLICY, at(2026, 11, 30, 9, 21)).response_breached
    waiting = compute_sla(refired, ALWAYS, CAL, POLICY, at(2026, 11, 30, 11))
    assert waiting.responded_at is None and waiting.response_breached
    assert waiting.response_due == at(2026, 11, 30, 9, 20)
    assert next_check_at(compute_sla(refired, ALWAYS, CAL, POLICY, at(2026, 11, 30, 9, 12)), at(2026, 11, 30, 9, 12),
                         response_breach_reported=False) == at(2026, 11, 30, 9, 20) + dt.timedelta(microseconds=1)
    started = compute_sla(refired + [ev(at(2026, 11, 30, 9, 14), K.STARTED)], ALWAYS, CAL, POLICY,
                          at(2026, 11, 30, 11))
    assert started.responded_at == at(2026, 11, 30, 9, 14) and not started.response_breached
    # Fired again three days later: not breached at the re-firing (the days between owed nothing), due
    # 10 minutes after it.
    days_later = events + [ev(at(2026, 12, 3, 9), K.REOPENED)]
    refired_late = compute_sla(days_later, ALWAYS, CAL, POLICY, at(2026, 12, 3, 9, 1))
    assert not refired_late.response_breached and refired_late.response_due == at(2026, 12, 3, 9, 10)
    # Cleared only after the response was due, nobody having started: breached, and stays so.
    late = [opened(at(2026, 11, 30, 9), Priority.P1), ev(at(2026, 11, 30, 9, 20), K.RESOLVED)]
    assert compute_sla(late, ALWAYS, CAL, POLICY, at(2026, 11, 30, 9, 30)).response_breached
    assert compute_sla(late + [ev(at(2026, 12, 1, 9), K.CLOSED)], ALWAYS, CAL, POLICY,
                       at(2026, 12, 5)).response_breached


def test_a_ticket_closed_without_a_response_is_judged_at_its_close_for_good():
    """P3 on 24x7 hours opened 09:00 (response due 11:00), closed as a duplicate at 09:05 without anyone
    starting: not breached then, nor a day later (the close ended the wait; TicketClosed said so)."""
    duplicate = [opened(at(2026, 11, 30, 9), Priority.P3), ev(at(2026, 11, 30, 9, 5), K.CLOSED)]
    at_close = compute_sla(duplicate, ALWAYS, CAL, POLICY, at(2026, 11, 30, 9, 5))
    a_day_later = compute_sla(duplicate, ALWAYS, CAL, POLICY, at(2026, 12, 1, 9))
    assert not at_close.response_breached and not a_day_later.response_breached
    assert a_day_later.responded_at is None and a_day_later.closed_at == at(2026, 11, 30, 9, 5)
    # Closed after the response was due, nobody having started: breached, as it was at the close.
    late = [opened(at(2026, 11, 30, 9), Priority.P3), ev(at(2026, 11, 30, 11, 30), K.CLOSED)]
    assert compute_sla(late, ALWAYS, CAL, POLICY, at(2026, 12, 1, 9)).response_breached


def test_closed_ends_everything():
    events = [opened(at(2026, 11, 30, 9), Priority.P2), ev(at(2026, 11, 30, 9, 10), K.STARTED),
              ev(at(2026, 11, 30, 11), K.RESOLVED), ev(at(2026, 11, 30, 15), K.CLOSED),
              ev(at(2026, 11, 30, 16), K.REOPENED), ev(at(2026, 11, 30, 16, 30), K.PAUSED, side=Side.HOSPITAL)]
    state = sla(events, now=at(2026, 12, 10))
    assert state.closed_at == at(2026, 11, 30, 15)
    assert state.resolved_at == at(2026, 11, 30, 11)
    assert state.resolution_elapsed_seconds == 2 * HOUR
    assert state.escalation_level == 0 and state.paused_by is None and not state.clock_stopped
    assert not state.running
    # A duplicate closed straight from NEW: the clock stops at the close.
    duplicate = sla([opened(at(2026, 11, 30, 9), Priority.P2), ev(at(2026, 11, 30, 9, 30), K.CLOSED)],
                    now=at(2026, 12, 10))
    assert duplicate.resolution_elapsed_seconds == 0.5 * HOUR and duplicate.resolved_at is None
    assert duplicate.escalation_level == 0 and duplicate.resolution_due is None


def test_a_breached_resolution_keeps_its_level_and_due_instant():
    events = [opened(at(2026, 11, 30, 9), Priority.P1), ev(at(2026, 11, 30, 9, 5), K.STARTED),
              ev(at(2026, 11, 30, 16), K.RESOLVED)]
    state = sla(events, now=at(2026, 12, 2))
    # 4 h of office time from 09:00 ran out at 14:30; 5.5 h used is breached but not beyond 1.5 x 4 h.
    assert state.resolution_due == at(2026, 11, 30, 14, 30)
    assert state.resolution_breached and state.escalation_level == 2
    assert state.resolution_elapsed_seconds == 5.5 * HOUR
    assert state.urgency_seconds == -1.5 * HOUR


def test_escalation_levels_at_their_thresholds():
    """24x7 P1, 4 h: level 1 from 3 h, 2 beyond 4 h, 3 beyond 6 h; next_escalation_at points at each step."""
    start = at(2026, 11, 30, 9)
    events = [opened(start, Priority.P1)]

    def state_after(**delta):
        return sla(events, hours=ALWAYS, now=start + dt.timedelta(**delta))

    assert state_after(hours=2, minutes=59).escalation_level == 0
    assert state_after(hours=0).next_escalation_at == start + dt.timedelta(hours=3)
    assert state_after(hours=3).escalation_level == 1
    assert state_after(hours=3).next_escalation_at == start + dt.timedelta(hours=4, microseconds=1)
    assert state_after(hours=4).escalation_level == 1 and not state_after(hours=4).resolution_breached
    assert state_after(hours=4, microseconds=1).escalation_level == 2
    assert state_after(hours=4, seconds=1).next_escalation_at == start + dt.timedelta(hours=6, microseconds=1)
    assert state_after(hours=6).escalation_level == 2
    assert state_after(hours=6, microseconds=1).escalation_level == 3
    assert state_after(hours=7).next_escalation_at is None


def test_pause_without_side_counts_as_contractor_and_resolve_ends_a_pause():
    events = [opened(at(2026, 11, 30, 9), Priority.P2), ev(at(2026, 11, 30, 9, 5), K.STARTED),
              ev(at(2026, 11, 30, 10), K.PAUSED)]
    state = sla(events, now=at(2026, 11, 30, 11))
    assert state.paused_by == Side.CONTRACTOR and not state.clock_stopped
    assert state.resolution_elapsed_seconds == 2 * HOUR
    stopped = events[:2] + [ev(at(2026, 11, 30, 10), K.PAUSED, side=Side.HOSPITAL),
                            ev(at(2026, 11, 30, 15), K.RESOLVED)]
    state = sla(stopped, now=at(2026, 11, 30, 16))
    assert state.resolution_elapsed_seconds == 1 * HOUR and state.resolved_at == at(2026, 11, 30, 15)
    assert state.paused_by is None and not state.clock_stopped


def test_changing_who_paused_changes_whether_the_clock_runs():
    events = [opened(at(2026, 11, 30, 9), Priority.P2), ev(at(2026, 11, 30, 9, 5), K.STARTED),
              ev(at(2026, 11, 30, 10), K.PAUSED, side=Side.HOSPITAL),
              ev(at(2026, 11, 30, 11), K.PAUSED, side=Side.CONTRACTOR),
              ev(at(2026, 11, 30, 14), K.PAUSED, side=Side.VENDOR)]
    state = sla(events, now=at(2026, 11, 30, 16))
    # 09-10 running, 10-11 stopped, 11-12 and 13:30-14 running, then stopped.
    assert state.resolution_elapsed_seconds == 2.5 * HOUR
    assert state.clock_stopped and state.paused_by == Side.VENDOR


def test_correcting_a_pause_re_rates_the_ticket():
    """The state is only the events: fix the pause's side and the same call gives the corrected state."""
    base = [opened(at(2026, 11, 27, 14), Priority.P2), ev(at(2026, 11, 27, 14, 5), K.STARTED),
            ev(at(2026, 11, 30, 8), K.RESUMED)]
    wrong = base + [ev(at(2026, 11, 27, 18), K.PAUSED, side=Side.CONTRACTOR)]
    right = base + [ev(at(2026, 11, 27, 18), K.PAUSED, side=Side.HOSPITAL)]
    now = at(2026, 11, 30, 10)
    assert sla(wrong, hours=ALWAYS, now=now).resolution_breached
    assert not sla(right, hours=ALWAYS, now=now).resolution_breached
    # And a calendar correction (an extra hospital holiday on Monday) re-rates the office-hours clock.
    office = [opened(at(2026, 11, 27, 9), Priority.P2)]
    holiday = WorkingCalendar(extra_holidays=[dt.date(2026, 11, 30)])
    assert sla(office, now=now).resolution_elapsed_seconds == 9 * HOUR
    assert sla(office, now=now, calendar=holiday).resolution_elapsed_seconds == 7 * HOUR


def test_now_before_the_last_event_does_not_raise():
    events = [opened(at(2026, 11, 30, 9), Priority.P2), ev(at(2026, 11, 30, 9, 30), K.STARTED)]
    state = compute_sla(events, OFFICE, CAL, POLICY, at(2026, 11, 30, 9, 29))
    assert state.resolution_elapsed_seconds == 0.5 * HOUR


def test_policy_defaults_and_checks():
    assert POLICY.targets[Priority.P3] == SlaTargets(dt.timedelta(hours=2), dt.timedelta(hours=24))
    assert POLICY.targets[Priority.P4].resolution == dt.timedelta(hours=40)
    assert POLICY.warn_at == 0.75
    with pytest.raises(ValueError, match="P4"):
        SlaPolicy({p: POLICY.targets[p] for p in (Priority.P1, Priority.P2, Priority.P3)})
    with pytest.raises(ValueError, match="warn_at"):
        SlaPolicy(POLICY.targets, warn_at=1.5)
    with pytest.raises(ValueError):
        SlaTargets(dt.timedelta(0), dt.timedelta(hours=1))
    custom = SlaPolicy.from_mapping({f"P{i}": {"response_minutes": 10 * i, "resolution_minutes": 60 * i}
                                     for i in range(1, 5)}, warn_at=0.5)
    assert custom.targets[Priority.P3] == SlaTargets(dt.timedelta(minutes=30), dt.timedelta(hours=3))
    with pytest.raises(ValueError, match="P2"):
        SlaPolicy.from_mapping({"P2": {"response_minutes": 10}})
    assert hash(SlaPolicy.default()) == hash(POLICY)


def test_urgency_orders_an_engineers_queue():
    now = at(2026, 11, 30, 15)
    states = {
        "p1 fresh": sla([opened(at(2026, 11, 30, 14), Priority.P1)], now=now),
        "p3 old": sla([opened(at(2026, 11, 25, 9), Priority.P3)], now=now),
        "p2 morning": sla([opened(at(2026, 11, 30, 9), Priority.P2)], now=now),
    }
    order = sorted(states, key=lambda name: states[name].urgency_seconds)
    assert order == ["p3 old", "p1 fresh", "p2 morning"]


def test_computing_states_is_fast():
    """A sanity bound for the benchmark: a few thousand states of holiday-spanning tickets per second at least."""
    import time
    events = [opened(at(2026, 9, 30, 16), Priority.P3), ev(at(2026, 9, 30, 16, 5), K.ASSIGNED),
              ev(at(2026, 10, 8, 8, 20), K.STARTED), ev(at(2026, 10, 8, 9), K.PAUSED, side=Side.HOSPITAL),
              ev(at(2026, 10, 8, 11), K.RESUMED)]
    began = time.perf_counter()
    for minute in range(2000):
        compute_sla(events, OFFICE, CAL, POLICY, at(2026, 10, 9, 9) + dt.timedelta(minutes=minute))
    assert time.perf_counter() - began < 2.0


# ---------------------------------------------------------------------------
# Properties

HOURS = st.sampled_from([OFFICE, NIGHTS, ALWAYS, ServiceHours.parse("06:00-10:00,22:00-02:00")])
start_moments = st.datetimes(min_value=dt.datetime(2026, 9, 1), max_value=dt.datetime(2027, 1, 31),
                             timezones=st.just(HOSPITAL_TZ))
steps = st.lists(st.tuples(st.sampled_from([K.STARTED, K.PAUSED, K.RESUMED, K.RESOLVED, K.REOPENED, K.ASSIGNED]),
                           st.sampled_from(list(Side)), st.integers(1, 3 * 24 * 60)), max_size=8)


def history(start, priority, plan):
    events, moment = [opened(start, priority)], start
    for kind, side, minutes in plan:
        moment = moment + dt.timedelta(minutes=minutes)
        events.append(ev(moment, kind, side=side if kind == K.PAUSED else None))
    return events, moment


def relabel(events, side):
    return [TicketEvent(e.at, e.kind, side=side if e.kind == K.PAUSED else None, priority=e.priority)
            for e in events]


@given(HOURS, start_moments, st.sampled_from(list(Priority)), steps, st.integers(0, 5 * 24 * 60))
def test_contractor_pauses_never_change_the_clock(hours, start, priority, plan, later):
    events, last = history(start, priority, plan)
    now = last + dt.timedelta(minutes=later)
    no_pauses = [e for e in events if e.kind not in (K.PAUSED, K.RESUMED)]
    contractor = relabel(events, Side.CONTRACTOR)
    hospital = relabel(events, Side.HOSPITAL)
    plain = compute_sla(no_pauses, hours, CAL, POLICY, now)
    assert compute_sla(contractor, hours, CAL, POLICY, now).resolution_elapsed_seconds == \
        plain.resolution_elapsed_seconds
    assert compute_sla(hospital, hours, CAL, POLICY, now).resolution_elapsed_seconds <= \
        plain.resolution_elapsed_seconds


@given(HOURS, start_moments, st.sampled_from(list(Priority)), steps, st.integers(0, 3 * 24 * 60),
       st.integers(0, 3 * 24 * 60))
def test_state_is_consistent_and_elapsed_only_grows(hours, start, priority, plan, later, more):
    events, last = history(start, priority, plan)
    now = last + dt.timedelta(minutes=later)
    state = compute_sla(events, hours, CAL, POLICY, now)
    then = compute_sla(events, hours, CAL, POLICY, now + dt.timedelta(minutes=more))
    assert then.resolution_elapsed_seconds >= state.resolution_elapsed_seconds
    assert state.resolution_breached == (state.resolution_elapsed_seconds > state.resolution_target_seconds)
    assert state.resolution_breached <= then.resolution_breached
    assert 0 <= state.escalation_level <= 3
    assert state.clock_stopped == (state.paused_by in (Side.HOSPITAL, Side.VENDOR))
    if state.clock_stopped:
        assert state.resolution_due is None
    if state.running:
        assert state.resolution_due is not None
        assert (state.resolution_due <= now) == (state.resolution_elapsed_seconds >= state.resolution_target_seconds)
    if state.resolved_at is not None and not state.resolution_breached:
        assert state.escalation_level == 0
    if state.next_escalation_at is not None:
        assert state.next_escalation_at > now
        assert compute_sla(events, hours, CAL, POLICY, state.next_escalation_at).escalation_level > \
            state.escalation_level


@given(HOURS, start_moments, st.sampled_from(list(Priority)), steps, st.integers(0, 3 * 24 * 60),
       st.integers(1, 30 * 24 * 60))
def test_once_closed_or_resolved_the_response_verdict_stands_whenever_it_is_read(hours, start, priority, plan, later,
                                                                                 more):
    """The response is judged at the response, or else at the resolution or the close that ended the wait: a
    ticket read a month later says what it said then (TicketClosed and SlaBreached were sent on that)."""
    events, last = history(start, priority, plan)
    events.append(ev(last + dt.timedelta(minutes=later), K.CLOSED))
    now = last + dt.timedelta(minutes=later)
    then = compute_sla(events, hours, CAL, POLICY, now)
    assert compute_sla(events, hours, CAL, POLICY, now + dt.timedelta(minutes=more)).response_breached == \
        then.response_breached
    resolved = [e for e in events if e.kind != K.CLOSED] + [ev(last + dt.timedelta(minutes=later), K.RESOLVED)]
    state = compute_sla(resolved, hours, CAL, POLICY, now)
    if state.resolved_at is not None:
        assert compute_sla(resolved, hours, CAL, POLICY, now + dt.timedelta(minutes=more)).response_breached == \
            state.response_breached


def test_the_sla_priority_is_the_one_whose_targets_judge_the_ticket_not_the_escalations_raise():
    events = [opened(at(2026, 11, 30, 9), Priority.P4),
              TicketEvent(at(2026, 12, 2, 2), K.PRIORITY_CHANGED, priority=Priority.P3, escalation=True)]
    raised = compute_sla(events, ALWAYS, CAL, POLICY, at(2026, 12, 2, 3))
    assert (raised.priority, raised.sla_priority) == (Priority.P3, Priority.P4)
    changed = events + [TicketEvent(at(2026, 12, 2, 4), K.PRIORITY_CHANGED, priority=Priority.P2)]
    assert compute_sla(changed, ALWAYS, CAL, POLICY, at(2026, 12, 2, 5)).sla_priority == Priority.P2
