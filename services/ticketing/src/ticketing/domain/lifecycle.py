"""A ticket's lifecycle: statuses, actions, who may take them, and the SLA event each produces.

    NEW --assign--> ASSIGNED --start--> IN_PROGRESS <--pause/resume--> PENDING   (start: only with an assignee)
    ASSIGNED, IN_PROGRESS --assign--> ASSIGNED            (reassign)
    IN_PROGRESS, PENDING --resolve--> RESOLVED            (a worklog first, when required)
    RESOLVED --confirm | auto_close | close--> CLOSED
    RESOLVED --reopen--> IN_PROGRESS                     (ASSIGNED if nobody had started it, NEW if nobody
                                                           is assigned: ``reopened_status``)
    NEW, ASSIGNED --close--> CLOSED                       (duplicates, mistakes)
    ASSIGNED, IN_PROGRESS, PENDING --(level 3)--> ASSIGNED (to the escalation team, nobody on it; a pause
                                                           ends: ``handed_to_escalation_team``)

Anything else is refused with ``invalid_transition``. The machine (the service
role, for an alert or a device alarm behind the ticket) also resolves a ticket
nobody started, NEW or ASSIGNED, when its alert clears: ``alert_cleared``.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from enum import StrEnum

from tuoguan_common import roles as R
from tuoguan_common.errors import TuoguanError

from ticketing.domain.calendar import ServiceHours, WorkingCalendar, add_working_time
from ticketing.domain.sla import EventKind, Side, TicketEvent


class Status(StrEnum):
    NEW = "new"
    ASSIGNED = "assigned"
    IN_PROGRESS = "in_progress"
    PENDING = "pending"
    RESOLVED = "resolved"
    CLOSED = "closed"


class Action(StrEnum):
    ASSIGN = "assign"
    START = "start"
    PAUSE = "pause"
    RESUME = "resume"
    RESOLVE = "resolve"
    CONFIRM = "confirm"
    REOPEN = "reopen"
    CLOSE = "close"
    AUTO_CLOSE = "auto_close"


# Stable reasons (sent to clients as the error's reason).
INVALID_TRANSITION = "invalid_transition"
WORKLOG_REQUIRED = "worklog_required"
NOT_REQUESTER = "not_requester"
NOT_ASSIGNEE = "not_assignee"
ROLE_NOT_ALLOWED = "role_not_allowed"
SELF_CONFIRMATION = "self_confirmation"
TAKEN_OFF_BY_ESCALATION = "taken_off_by_escalation"

_PERMISSION_REASONS = frozenset({NOT_REQUESTER, NOT_ASSIGNEE, ROLE_NOT_ALLOWED, SELF_CONFIRMATION,
                                 TAKEN_OFF_BY_ESCALATION})

# The escalation level at which a ticket is handed to the escalation team (sla.py: 1.5 x the target).
HAND_OFF_LEVEL = 3


class TicketRefused(TuoguanError):
    """An action the ticket's rules refuse.

    ``reason`` is a stable snake_case code. It is a TuoguanError, so the gRPC
    interceptor maps it by itself: PERMISSION_DENIED for the actor reasons
    (not_requester, not_assignee, role_not_allowed, self_confirmation,
    taken_off_by_escalation), FAILED_PRECONDITION for the others.
    """

    def __init__(self, reason: str, message: str):
        super().__init__(message, reason=reason)
        self.reason = reason
        self.message = message
        self.code = "PERMISSION_DENIED" if reason in _PERMISSION_REASONS else "FAILED_PRECONDITION"

    def __reduce__(self):
        return (type(self), (self.reason, self.message))


TRANSITIONS: dict[tuple[Status, Action], Status] = {
    (Status.NEW, Action.ASSIGN): Status.ASSIGNED,
    (Status.ASSIGNED, Action.ASSIGN): Status.ASSIGNED,
    (Status.IN_PROGRESS, Action.ASSIGN): Status.ASSIGNED,
    (Status.ASSIGNED, Action.START): Status.IN_PROGRESS,
    (Status.IN_PROGRESS, Action.PAUSE): Status.PENDING,
    (Status.PENDING, Action.RESUME): Status.IN_PROGRESS,
    (Status.IN_PROGRESS, Action.RESOLVE): Status.RESOLVED,
    (Status.PENDING, Action.RESOLVE): Status.RESOLVED,
    (Status.RESOLVED, Action.CONFIRM): Status.CLOSED,
    (Status.RESOLVED, Action.AUTO_CLOSE): Status.CLOSED,
    (Status.RESOLVED, Action.CLOSE): Status.CLOSED,
    (Status.RESOLVED, Action.REOPEN): Status.IN_PROGRESS,
    (Status.NEW, Action.CLOSE): Status.CLOSED,
    (Status.ASSIGNED, Action.CLOSE): Status.CLOSED,
}


def next_status(status: Status, action: Action, *, has_worklog: bool, require_worklog: bool,
                started: bool = True, assigned: bool = True) -> Status:
    """The status after ``action``; TicketRefused(invalid_transition | worklog_required) otherwise.

    ``started`` (its engineer started work on it: a STARTED since its last assignment) and ``assigned`` (it
    has an assignee) decide where a reopened resolution goes (``reopened_status``); a START needs an assignee
    (``invalid_transition`` otherwise: never in progress with nobody on it)."""
    status, action = Status(status), Action(action)
    target = TRANSITIONS.get((status, action))
    if target is None:
        raise TicketRefused(INVALID_TRANSITION, f"cannot {action.value.replace('_', ' ')} a ticket that is "
                                                f"{status.value.replace('_', ' ')}")
    if action == Action.RESOLVE and require_worklog and not has_worklog:
        raise TicketRefused(WORKLOG_REQUIRED, "log the work done on the ticket before resolving it")
    if action == Action.START and not assigned:
        # ASSIGNED to a team alone (a team's queue, the level-3 hand-off) has nobody on it: a dispatcher's
        # start made it IN_PROGRESS with nobody on it, in no engineer's queue, and its STARTED stopped the
        # response clock (the SLA's response) with nobody responding.
        raise TicketRefused(INVALID_TRANSITION, "cannot start a ticket nobody is assigned to: assign it to an "
                                                "engineer first")
    if action == Action.REOPEN:
        return reopened_status(started=started, assigned=assigned)
    return target


def reopened_status(*, started: bool, assigned: bool) -> Status:
    """Where a reopened resolution goes: back to the work in progress (IN_PROGRESS) when someone had started
    it and is still on it. Never IN_PROGRESS with nobody on it: without an assignee it goes back to the
    dispatcher (NEW, on the board as unassigned); assigned but never started (an alert that cleared by itself
    before its engineer started, firing again) back to ASSIGNED, in the engineer's queue to start. Its SLA
    reads the same either way: the response is still owed until someone starts."""
    if not assigned:
        return Status.NEW
    if not started:
        return Status.ASSIGNED
    return Status.IN_PROGRESS


# The statuses an alert's clearance resolves: any open one. From NEW or ASSIGNED (nobody started) it is the
# machine's own move, not in TRANSITIONS (no person resolves work nobody started): the resolution is no
# response (sla.py), so the ticket breaches nothing for the alert having cleared by itself, and the alert
# firing again reopens it to wait for someone as before (``reopened_status``).
_CLEARABLE = frozenset({Status.NEW, Status.ASSIGNED, Status.IN_PROGRESS, Status.PENDING})


def alert_cleared(status: Status) -> Status | None:
    """The status after the alert behind a ticket cleared: RESOLVED from any open status; None when there is
    nothing to resolve (resolved already, or closed)."""
    return Status.RESOLVED if Status(status) in _CLEARABLE else None


def handed_to_escalation_team(status: Status) -> tuple[Status, bool]:
    """The status after the level-3 hand-off to the escalation team (nobody assigned, on the dispatcher's board)
    and whether it ends a pause. ASSIGNED, IN_PROGRESS and PENDING become ASSIGNED, for a dispatcher to assign:
    a PENDING ticket left so had nobody on it and no way back but a RESUME, into IN_PROGRESS with nobody on it.
    Its pause ends with the hand-off (the engineer who paused it is off it; the next one pauses it again if the
    work is still held up), so the history records the resume. NEW stays NEW; nothing else is handed off."""
    status = Status(status)
    if status in (Status.ASSIGNED, Status.IN_PROGRESS, Status.PENDING):
        return Status.ASSIGNED, status == Status.PENDING
    return status, False


def allowed_actions(status: Status) -> frozenset[Action]:
    """The actions the lifecycle allows from ``status`` (whoever the actor is)."""
    status = Status(status)
    return frozenset(action for (source, action) in TRANSITIONS if source == status)


_WORKERS = frozenset({R.DISPATCHER, R.ADMIN})


def check_actor(action: Action, roles: frozenset[str], *, is_requester: bool, is_assignee: bool) -> None:
    """May someone with ``roles`` take ``action``? TicketRefused(role_not_allowed | not_assignee | not_requester).

    * assign: dispatcher, admin, or an engineer (the service checks that an
      engineer only takes an unassigned ticket for themself);
    * start, pause, resume, resolve: the assignee engineer, a dispatcher or an
      admin; resolve also the service role (an alert's resolution: from any
      open status, ``alert_cleared``; before anyone started it is no response);
    * confirm, reopen: the requester (whatever their role) or an admin; a confirmation never from someone
      whose work it bills (``refuse_self_confirmation``);
    * close: admin, dispatcher, or the service role;
    * auto_close: the service role only.
    """
    action = Action(action)
    roles = frozenset(roles)
    if action == Action.ASSIGN:
        if roles & (_WORKERS | {R.ENGINEER}):
            return
    elif action in (Action.START, Action.PAUSE, Action.RESUME, Action.RESOLVE):
        if roles & _WORKERS:
            return
        if action == Action.RESOLVE and R.SERVICE in roles:
            return
        if R.ENGINEER in roles:
            if is_assignee:
                return
            raise TicketRefused(NOT_ASSIGNEE, f"only the assigned engineer may {action.value} this ticket")
    elif action in (Action.CONFIRM, Action.REOPEN):
        if is_requester or R.ADMIN in roles:
            return
        raise TicketRefused(NOT_REQUESTER, f"only the requester may {action.value} the resolution")
    elif action == Action.CLOSE:
        if roles & (_WORKERS | {R.SERVICE}):
            return
    elif action == Action.AUTO_CLOSE:
        if R.SERVICE in roles:
            return
    shown = ", ".join(sorted(roles)) or "no role"
    raise TicketRefused(ROLE_NOT_ALLOWED, f"{action.value.replace('_', ' ')} is not allowed for {shown}")


def bills_work_of(person_id: str, *, assignee_id: str | None, worklog_engineers: Iterable[str]) -> bool:
    """Whether closing the ticket's resolution bills ``person_id``'s work: they are its engineer (the
    assignee) or logged time on it (``worklog_engineers``)."""
    return bool(person_id) and (person_id == assignee_id or person_id in set(worklog_engineers))


def refuse_self_confirmation(action: Action, status: Status, *, bills_actor: bool) -> None:
    """Raises TicketRefused(self_confirmation) when the confirmation of a resolution comes from someone whose
    work it bills (``bills_work_of``): the confirmation is what makes the worklogs billable, the one check by
    someone other than the engineer. An engineer who reported the problem themself (or named themself its
    requester), took it, logged time and resolved it would otherwise approve their own hours. A CONFIRM, and a
    CLOSE of a RESOLVED ticket (which bills as well), whatever the actor's roles: an admin or a dispatcher who
    did not work the ticket closes it. Anything else (another status: ``next_status`` decides) passes."""
    action, status = Action(action), Status(status)
    if not bills_actor or status != Status.RESOLVED or action not in (Action.CONFIRM, Action.CLOSE):
        return
    raise TicketRefused(SELF_CONFIRMATION, "the resolution bills your own work: someone else confirms it (a "
                                           "dispatcher or an admin closes it)")


def refuse_taking_back(*, escalation_level: int, was_assigned: bool) -> None:
    """Raises TicketRefused(taken_off_by_escalation) when an engineer would take for themself a ticket the
    level-3 hand-off took off them (or off the engineers before them, ``was_assigned``): the escalation
    reassigns a ticket its engineers have not fixed, and the engineer taking it back off the dispatcher's
    board would undo it. Other engineers (the escalation team's) take it; a dispatcher may still assign it
    to anyone, its first engineer included."""
    if escalation_level >= HAND_OFF_LEVEL and was_assigned:
        raise TicketRefused(TAKEN_OFF_BY_ESCALATION, "the escalation took this ticket off you: a dispatcher "
                                                     "assigns it")


def closes_by_itself(*, requester_worked: bool) -> bool:
    """Whether an unconfirmed resolution closes by itself (``auto_close_at``): not when its requester worked the
    ticket (``bills_work_of`` the requester): nobody else would ever have looked at it before its worklogs
    became billable. It waits for a dispatcher's or an admin's close."""
    return not requester_worked


HOSPITAL_HOURS = ServiceHours.parse("08:00-12:00,13:30-17:30")


def auto_close_at(resolved_at: dt.datetime, hours: ServiceHours, calendar: WorkingCalendar,
                  after_working_hours: float) -> dt.datetime:
    """When an unconfirmed resolution closes by itself: ``after_working_hours`` of working time after resolution.

    The requester confirms in the hospital's working hours, so pass
    HOSPITAL_HOURS (or the hospital's configured hours) as ``hours``, not the
    subsystem's service hours: a 24x7 subsystem's resolution still waits for
    the clinicians' working hours. 24x7 ``hours`` are refused with ValueError
    for that reason.
    """
    if hours.always:
        raise ValueError("auto-close counts the hospital's working hours: pass HOSPITAL_HOURS, not 24x7 hours")
    if after_working_hours < 0:
        raise ValueError(f"after_working_hours {after_working_hours} must not be negative")
    return add_working_time(hours, calendar, resolved_at, after_working_hours * 3600)


_EVENT_OF = {
    Action.ASSIGN: EventKind.ASSIGNED,
    Action.START: EventKind.STARTED,
    Action.PAUSE: EventKind.PAUSED,
    Action.RESUME: EventKind.RESUMED,
    Action.RESOLVE: EventKind.RESOLVED,
    Action.REOPEN: EventKind.REOPENED,
    Action.CONFIRM: EventKind.CLOSED,
    Action.CLOSE: EventKind.CLOSED,
    Action.AUTO_CLOSE: EventKind.CLOSED,
}


def event_for(action: Action, at: dt.datetime, *, side: Side | None = None) -> TicketEvent | None:
    """The SLA event an action produces (every action produces one today; None is kept for future actions).

    A PAUSE must name the side that stopped the work (ValueError otherwise);
    ``side`` is ignored for other actions.
    """
    kind = _EVENT_OF.get(Action(action))
    if kind is None:
        return None
    if kind == EventKind.PAUSED:
        if side is None:
            raise ValueError("a pause must name the side that stopped the work: hospital, contractor or vendor")
        return TicketEvent(at=at, kind=kind, side=Side(side))
    return TicketEvent(at=at, kind=kind)
