"""The lifecycle: every allowed transition, everything else refused, worklogs, actors, auto-close, SLA events."""
from __future__ import annotations

import datetime as dt
import itertools

import pytest
from ticketing.domain.calendar import HOSPITAL_TZ, ServiceHours, WorkingCalendar
from ticketing.domain.lifecycle import (
    HOSPITAL_HOURS,
    TRANSITIONS,
    Action,
    Status,
    TicketRefused,
    alert_cleared,
    allowed_actions,
    auto_close_at,
    check_actor,
    event_for,
    next_status,
    reopened_status,
)
from ticketing.domain.sla import EventKind, Side, TicketEvent
from tuoguan_common import roles as R
from tuoguan_common.errors import TuoguanError

S, A = Status, Action
ALLOWED = [
    (S.NEW, A.ASSIGN, S.ASSIGNED),
    (S.ASSIGNED, A.ASSIGN, S.ASSIGNED),
    (S.IN_PROGRESS, A.ASSIGN, S.ASSIGNED),
    (S.ASSIGNED, A.START, S.IN_PROGRESS),
    (S.IN_PROGRESS, A.PAUSE, S.PENDING),
    (S.PENDING, A.RESUME, S.IN_PROGRESS),
    (S.IN_PROGRESS, A.RESOLVE, S.RESOLVED),
    (S.PENDING, A.RESOLVE, S.RESOLVED),
    (S.RESOLVED, A.CONFIRM, S.CLOSED),
    (S.RESOLVED, A.AUTO_CLOSE, S.CLOSED),
    (S.RESOLVED, A.CLOSE, S.CLOSED),
    (S.RESOLVED, A.REOPEN, S.IN_PROGRESS),
    (S.NEW, A.CLOSE, S.CLOSED),
    (S.ASSIGNED, A.CLOSE, S.CLOSED),
]
ALLOWED_PAIRS = {(source, action) for source, action, _ in ALLOWED}
REFUSED = [(s, a) for s, a in itertools.product(Status, Action) if (s, a) not in ALLOWED_PAIRS]


def refusal(call) -> TicketRefused:
    with pytest.raises(TicketRefused) as caught:
        call()
    return caught.value


def test_the_enums_have_the_wire_values():
    assert [s.value for s in Status] == ["new", "assigned", "in_progress", "pending", "resolved", "closed"]
    assert [a.value for a in Action] == ["assign", "start", "pause", "resume", "resolve", "confirm", "reopen",
                                         "close", "auto_close"]


@pytest.mark.parametrize("source, action, target", ALLOWED, ids=lambda v: str(v))
def test_every_allowed_transition(source, action, target):
    assert next_status(source, action, has_worklog=True, require_worklog=True) == target
    assert action in allowed_actions(source)


def test_the_table_is_exactly_the_allowed_list():
    assert {(s, a): t for s, a, t in ALLOWED} == TRANSITIONS
    assert len(REFUSED) == len(Status) * len(Action) - len(ALLOWED)


@pytest.mark.parametrize("source, action", REFUSED, ids=lambda v: str(v))
def test_everything_else_is_an_invalid_transition(source, action):
    refused = refusal(lambda: next_status(source, action, has_worklog=True, require_worklog=False))
    assert refused.reason == "invalid_transition"
    assert refused.code == "FAILED_PRECONDITION"
    assert source.value.replace("_", " ") in refused.message


def test_closed_is_final():
    assert allowed_actions(S.CLOSED) == frozenset()


@pytest.mark.parametrize("source", [S.IN_PROGRESS, S.PENDING])
def test_resolving_needs_a_worklog_when_required(source):
    refused = refusal(lambda: next_status(source, A.RESOLVE, has_worklog=False, require_worklog=True))
    assert refused.reason == "worklog_required"
    assert next_status(source, A.RESOLVE, has_worklog=False, require_worklog=False) == S.RESOLVED


def test_an_invalid_transition_is_reported_before_a_missing_worklog():
    refused = refusal(lambda: next_status(S.NEW, A.RESOLVE, has_worklog=False, require_worklog=True))
    assert refused.reason == "invalid_transition"


def test_statuses_and_actions_may_be_given_as_their_values():
    assert next_status("assigned", "start", has_worklog=False, require_worklog=False) == S.IN_PROGRESS


def test_ticket_refused_is_a_tuoguan_error_with_a_stable_reason():
    refused = TicketRefused("not_assignee", "only the assigned engineer may start this ticket")
    assert isinstance(refused, TuoguanError) and isinstance(refused, Exception)
    assert (refused.reason, refused.message, refused.code) == (
        "not_assignee", "only the assigned engineer may start this ticket", "PERMISSION_DENIED")
    assert str(refused) == refused.message


# ---------------------------------------------------------------------------
# Actors

ALL_ROLES = sorted(R.ROLES)


def allowed(action, roles, *, requester=False, assignee=False) -> bool:
    try:
        check_actor(action, frozenset(roles), is_requester=requester, is_assignee=assignee)
        return True
    except TicketRefused:
        return False


@pytest.mark.parametrize("role", ALL_ROLES)
def test_who_assigns(role):
    assert allowed(A.ASSIGN, {role}) == (role in (R.DISPATCHER, R.ADMIN, R.ENGINEER))


@pytest.mark.parametrize("action", [A.START, A.PAUSE, A.RESUME, A.RESOLVE])
def test_the_assignee_engineer_or_a_dispatcher_or_admin_works_the_ticket(action):
    assert allowed(action, {R.ENGINEER}, assignee=True)
    assert allowed(action, {R.DISPATCHER}) and allowed(action, {R.ADMIN})
    refused = refusal(lambda: check_actor(action, frozenset({R.ENGINEER}), is_requester=False, is_assignee=False))
    assert refused.reason == "not_assignee" and refused.code == "PERMISSION_DENIED"
    refused = refusal(lambda: check_actor(action, frozenset({R.CLINICIAN}), is_requester=True, is_assignee=False))
    assert refused.reason == "role_not_allowed"
    assert not allowed(action, {R.DEVICE})


def test_the_service_may_resolve_and_close_for_a_cleared_alert_but_not_start():
    assert allowed(A.RESOLVE, {R.SERVICE}) and allowed(A.CLOSE, {R.SERVICE})
    assert not allowed(A.START, {R.SERVICE}) and not allowed(A.ASSIGN, {R.SERVICE})


@pytest.mark.parametrize("action", [A.CONFIRM, A.REOPEN])
def test_the_requester_or_an_admin_confirms_or_reopens(action):
    assert allowed(action, {R.CLINICIAN}, requester=True)
    assert allowed(action, {R.ENGINEER}, requester=True)  # staff who reported on their own behalf
    assert allowed(action, {R.ADMIN})
    for role in (R.CLINICIAN, R.ENGINEER, R.DISPATCHER, R.SERVICE):
        refused = refusal(lambda role=role: check_actor(action, frozenset({role}), is_requester=False,
                                                        is_assignee=True))
        assert refused.reason == "not_requester"


@pytest.mark.parametrize("role", ALL_ROLES)
def test_who_closes(role):
    assert allowed(A.CLOSE, {role}, requester=True) == (role in (R.ADMIN, R.DISPATCHER, R.SERVICE))


@pytest.mark.parametrize("role", ALL_ROLES)
def test_only_the_service_auto_closes(role):
    assert allowed(A.AUTO_CLOSE, {role}, requester=True, assignee=True) == (role == R.SERVICE)


def test_no_roles_at_all_is_refused():
    refused = refusal(lambda: check_actor(A.ASSIGN, frozenset(), is_requester=False, is_assignee=False))
    assert refused.reason == "role_not_allowed" and "no role" in refused.message


def test_any_of_several_roles_suffices():
    assert allowed(A.CLOSE, {R.CLINICIAN, R.DISPATCHER})


# ---------------------------------------------------------------------------
# Auto-close and SLA events


def at(y, mo, d, h=0, mi=0) -> dt.datetime:
    return dt.datetime(y, mo, d, h, mi, tzinfo=HOSPITAL_TZ)


def test_auto_close_counts_the_hospitals_working_hours():
    """Resolved Wednesday 2026-09-30 16:00, the eve of National Day: 16 working hours later is 2026-10-09 16:00."""
    cal = WorkingCalendar()
    assert str(HOSPITAL_HOURS) == "08:00-12:00,13:30-17:30"
    # 1.5 h on Sep 30, 8 h on Oct 8, 6.5 h on Oct 9: 08:00-12:00 and 13:30-16:00.
    assert auto_close_at(at(2026, 9, 30, 16), HOSPITAL_HOURS, cal, 16) == at(2026, 10, 9, 16)
    assert auto_close_at(at(2026, 9, 30, 16), HOSPITAL_HOURS, cal, 0) == at(2026, 9, 30, 16)
    with pytest.raises(ValueError, match="HOSPITAL_HOURS"):
        auto_close_at(at(2026, 9, 30, 16), ServiceHours.around_the_clock(), cal, 16)
    with pytest.raises(ValueError):
        auto_close_at(at(2026, 9, 30, 16), HOSPITAL_HOURS, cal, -1)


@pytest.mark.parametrize("action, kind", [
    (A.ASSIGN, EventKind.ASSIGNED), (A.START, EventKind.STARTED), (A.RESUME, EventKind.RESUMED),
    (A.RESOLVE, EventKind.RESOLVED), (A.REOPEN, EventKind.REOPENED), (A.CONFIRM, EventKind.CLOSED),
    (A.CLOSE, EventKind.CLOSED), (A.AUTO_CLOSE, EventKind.CLOSED),
])
def test_the_sla_event_of_each_action(action, kind):
    moment = at(2026, 11, 30, 9)
    assert event_for(action, moment) == TicketEvent(moment, kind)
    assert event_for(action, moment, side=Side.HOSPITAL) == TicketEvent(moment, kind)


def test_a_pause_event_carries_its_side():
    moment = at(2026, 11, 30, 9)
    assert event_for(A.PAUSE, moment, side=Side.VENDOR) == TicketEvent(moment, EventKind.PAUSED, side=Side.VENDOR)
    assert event_for(A.PAUSE, moment, side="hospital").side == Side.HOSPITAL
    with pytest.raises(ValueError, match="side"):
        event_for(A.PAUSE, moment)


def test_every_action_has_its_event():
    moment = at(2026, 11, 30, 9)
    assert all(event_for(action, moment, side=Side.CONTRACTOR) is not None for action in Action)


def test_a_reopened_resolution_is_never_in_progress_with_nobody_on_it():
    """Back to the work when its engineer had started it; an alert that cleared before its engineer started,
    firing again, back to their queue (ASSIGNED); nobody assigned, back to the dispatcher (NEW)."""
    assert reopened_status(started=True, assigned=True) == S.IN_PROGRESS
    assert reopened_status(started=False, assigned=True) == S.ASSIGNED
    assert reopened_status(started=False, assigned=False) == S.NEW
    assert reopened_status(started=True, assigned=False) == S.NEW
    for started, assigned in itertools.product((True, False), repeat=2):
        assert next_status(S.RESOLVED, A.REOPEN, has_worklog=False, require_worklog=True, started=started,
                           assigned=assigned) == reopened_status(started=started, assigned=assigned)


def test_nobody_starts_a_ticket_nobody_is_assigned_to():
    """ASSIGNED to a team alone (a team's queue, the level-3 hand-off) has nobody on it: a dispatcher's start
    made it IN_PROGRESS with nobody on it, and its STARTED stopped the response clock with nobody responding."""
    r = refusal(lambda: next_status(S.ASSIGNED, A.START, has_worklog=False, require_worklog=True, assigned=False))
    assert (r.reason, r.code) == ("invalid_transition", "FAILED_PRECONDITION")
    assert "assign" in r.message
    assert next_status(S.ASSIGNED, A.START, has_worklog=False, require_worklog=True, assigned=True) == S.IN_PROGRESS


def test_an_alert_clearing_resolves_any_open_ticket_and_nothing_else():
    for status in (S.NEW, S.ASSIGNED, S.IN_PROGRESS, S.PENDING):
        assert alert_cleared(status) == S.RESOLVED
    assert alert_cleared(S.RESOLVED) is None and alert_cleared(S.CLOSED) is None
    # No person resolves work nobody started: the machine's move is not in the lifecycle's transitions.
    for status in (S.NEW, S.ASSIGNED):
        assert refusal(lambda status=status: next_status(status, A.RESOLVE, has_worklog=True,
                                                         require_worklog=False)).reason == "invalid_transition"


def test_the_hand_off_to_the_escalation_team_leaves_nothing_paused_with_nobody_on_it():
    from ticketing.domain.lifecycle import handed_to_escalation_team

    assert handed_to_escalation_team(Status.PENDING) == (Status.ASSIGNED, True)       # its pause ends
    assert handed_to_escalation_team(Status.IN_PROGRESS) == (Status.ASSIGNED, False)
    assert handed_to_escalation_team(Status.ASSIGNED) == (Status.ASSIGNED, False)
    assert handed_to_escalation_team(Status.NEW) == (Status.NEW, False)
    # A dispatcher assigns what the hand-off leaves.
    for status in (Status.PENDING, Status.IN_PROGRESS, Status.ASSIGNED, Status.NEW):
        handed, _ = handed_to_escalation_team(status)
        assert next_status(handed, Action.ASSIGN, has_worklog=False, require_worklog=True) == Status.ASSIGNED


def test_a_resolution_is_never_confirmed_by_someone_whose_work_it_bills():
    from ticketing.domain.lifecycle import bills_work_of, closes_by_itself, refuse_self_confirmation

    assert bills_work_of("e1", assignee_id="e1", worklog_engineers=[])
    assert bills_work_of("e1", assignee_id="e2", worklog_engineers=["e2", "e1"])
    assert not bills_work_of("c1", assignee_id="e1", worklog_engineers=["e1"])
    assert not bills_work_of("", assignee_id=None, worklog_engineers=[])
    for action in (Action.CONFIRM, Action.CLOSE):
        with pytest.raises(TicketRefused) as refused:
            refuse_self_confirmation(action, Status.RESOLVED, bills_actor=True)
        assert (refused.value.reason, refused.value.code) == ("self_confirmation", "PERMISSION_DENIED")
        refuse_self_confirmation(action, Status.RESOLVED, bills_actor=False)
    # Closing a duplicate bills nothing; other actions confirm nothing.
    refuse_self_confirmation(Action.CLOSE, Status.ASSIGNED, bills_actor=True)
    refuse_self_confirmation(Action.REOPEN, Status.RESOLVED, bills_actor=True)
    assert closes_by_itself(requester_worked=False) and not closes_by_itself(requester_worked=True)


def test_only_an_engineer_the_escalation_took_a_ticket_off_is_kept_from_taking_it_back():
    from ticketing.domain.lifecycle import TicketRefused, refuse_taking_back

    refuse_taking_back(escalation_level=2, was_assigned=True)       # breached, not handed off yet
    refuse_taking_back(escalation_level=3, was_assigned=False)      # the escalation team's engineer
    with pytest.raises(TicketRefused) as refused:
        refuse_taking_back(escalation_level=3, was_assigned=True)
    assert refused.value.reason == "taken_off_by_escalation" and refused.value.code == "PERMISSION_DENIED"
