"""The SLA state of a ticket, computed from its event history alone.

Nothing is stored but the events, so a corrected pause or a changed calendar
re-rates every ticket consistently: call compute_sla again.

Rules
-----
* Events are sorted by ``at`` (stable, so same-instant events keep their
  order). Events before the first OPENED, later OPENED events and anything
  after CLOSED are ignored. ``now`` earlier than the last event is taken as
  the last event's instant (clock skew between processes must not raise).
* Response: the first STARTED after OPENED. The response clock runs in
  service time from OPENED and is not paused. Responding at the due instant
  meets the target. A RESOLVED before anyone started (the lifecycle lets
  only the machine do that: an alert that cleared by itself) is no response,
  but nobody owes one while it stands: the wait stops at that instant, and a
  REOPENED (the alert fired again) sets it running again from the reopen,
  with the service time already waited counted, the time in between not: a
  P1 alert that cleared after 5 minutes and fires again days later has 10
  minutes of its 15 left, not a breach days old. CLOSED without a response
  (a duplicate closed from NEW) stops it for good: judged at the close,
  whenever the ticket is read afterwards.
* Resolution: a clock of service time from OPENED until RESOLVED. A pause by
  the HOSPITAL or a VENDOR stops it until RESUMED (or RESOLVED); a pause by the
  CONTRACTOR does not stop it (nor does a pause that names no side). REOPENED
  restarts the same clock at the reopen instant: elapsed time keeps
  accumulating. CLOSED ends everything.
* PRIORITY_CHANGED switches the targets from then on: the new priority's
  targets are compared with the total elapsed time (so lowering the priority
  can lift a breach, raising it can cause one). A priority change made by the
  SLA escalation itself (``TicketEvent.escalation=True``) changes the ticket's
  priority but keeps the targets it was being measured against, so raising
  the priority at level 2 does not jump the ticket straight to level 3. Once
  resolved, the resolution is judged with the targets in force when it was
  resolved; a reopen picks up the current ones.
* Breach: elapsed service time strictly greater than the target. Escalation
  level 1 (notify) from ``warn_at`` x target, 2 (breached: raise priority one
  step) beyond the target, 3 (reassign / notify the contractor's manager)
  beyond 1.5 x target. A resolved or closed ticket has level 0 if it met its
  target, else the level its final elapsed time reached (2 or 3). A response
  breach is reported by ``response_breached``; escalation levels follow the
  resolution clock only.
"""
from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from operator import attrgetter
from types import MappingProxyType

from ticketing.domain.calendar import ServiceHours, WorkingCalendar, _add_us, _working_us, from_us, to_us
from ticketing.domain.priority import Priority


class Side(StrEnum):
    HOSPITAL = "hospital"
    CONTRACTOR = "contractor"
    VENDOR = "vendor"


class EventKind(StrEnum):
    OPENED = "opened"
    ASSIGNED = "assigned"
    STARTED = "started"
    PAUSED = "paused"
    RESUMED = "resumed"
    RESOLVED = "resolved"
    REOPENED = "reopened"
    CLOSED = "closed"
    PRIORITY_CHANGED = "priority_changed"


@dataclass(frozen=True)
class TicketEvent:
    at: dt.datetime
    kind: EventKind
    side: Side | None = None          # PAUSED: whose side stopped the work
    priority: Priority | None = None  # OPENED and PRIORITY_CHANGED carry it
    # PRIORITY_CHANGED made by the SLA escalation (level 2): the priority rises
    # but the SLA targets stay those the ticket was measured against.
    escalation: bool = False


@dataclass(frozen=True)
class SlaTargets:
    response: dt.timedelta
    resolution: dt.timedelta

    def __post_init__(self) -> None:
        if self.response <= dt.timedelta(0) or self.resolution <= dt.timedelta(0):
            raise ValueError(f"SLA targets must be positive: response {self.response}, resolution {self.resolution}")


_DEFAULT_TARGETS = {
    Priority.P1: SlaTargets(dt.timedelta(minutes=15), dt.timedelta(hours=4)),
    Priority.P2: SlaTargets(dt.timedelta(minutes=30), dt.timedelta(hours=8)),
    # 3 and 5 working days of the hospital's 8-hour day.
    Priority.P3: SlaTargets(dt.timedelta(hours=2), dt.timedelta(hours=24)),
    Priority.P4: SlaTargets(dt.timedelta(hours=8), dt.timedelta(hours=40)),
}


@dataclass(frozen=True)
class SlaPolicy:
    targets: Mapping[Priority, SlaTargets]
    warn_at: float = 0.75        # escalation level 1 (notify) at this fraction of the resolution target
    # level 2 = breached (raise priority one step), level 3 = breached by 50% more
    # (reassign / notify the contractor's manager)

    def __post_init__(self) -> None:
        targets = {Priority.parse(p): t for p, t in dict(self.targets).items()}
        missing = [p.name for p in Priority if p not in targets]
        if missing:
            raise ValueError(f"SLA policy: no targets for {', '.join(missing)}")
        if not 0 < self.warn_at < 1:
            raise ValueError(f"SLA policy: warn_at {self.warn_at} must be between 0 and 1")
        object.__setattr__(self, "targets", MappingProxyType(targets))

    def __hash__(self) -> int:
        return hash((tuple(sorted(self.targets.items())), self.warn_at))

    @classmethod
    def default(cls) -> SlaPolicy:
        """P1 15 min / 4 h, P2 30 min / 8 h, P3 2 h / 24 h, P4 8 h / 40 h of service time."""
        return cls(_DEFAULT_TARGETS)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Mapping[str, float]], *, warn_at: float = 0.75) -> SlaPolicy:
        """``{"P1": {"response_minutes": 15, "resolution_minutes": 240}, ...}``; ValueError naming the bad entry."""
        targets = {}
        for key, row in data.items():
            priority = Priority.parse(key)
            try:
                targets[priority] = SlaTargets(dt.timedelta(minutes=float(row["response_minutes"])),
                                               dt.timedelta(minutes=float(row["resolution_minutes"])))
            except (KeyError, TypeError, ValueError) as exc:
                raise ValueError(f"SLA policy {priority.name}: needs positive response_minutes and "
                                 f"resolution_minutes ({exc})") from None
        return cls(targets, warn_at=warn_at)


@dataclass(frozen=True)
class SlaState:
    priority: Priority
    response_due: dt.datetime
    responded_at: dt.datetime | None
    response_breached: bool
    resolution_target_seconds: float
    # service time counted so far (to resolved_at or now), excluding pauses that stop the clock
    resolution_elapsed_seconds: float
    resolution_due: dt.datetime | None    # None while the clock is stopped
    resolved_at: dt.datetime | None
    resolution_breached: bool
    paused_by: Side | None                # the side of the current pause, if paused
    clock_stopped: bool                   # paused by HOSPITAL or VENDOR (a CONTRACTOR pause does NOT stop the clock)
    escalation_level: int                 # 0..3 (0 once resolved or closed and not breached)
    # Additions: when the ticket was closed, and the earliest instant at which
    # escalation_level will rise if nothing happens (None when it cannot: the
    # clock is not running, or the level is already 3). A worker's timer
    # fires at next_escalation_at.
    closed_at: dt.datetime | None = None
    next_escalation_at: dt.datetime | None = None
    # The first instant the response can be breached (the wait one microsecond beyond its target), while it is
    # owed: the worker's next check. ``response_due`` (the target reached, met by a response then) can be
    # the end of a service window, and the breach the next opening, a weekend or a holiday later. None when
    # not computed (a state built by hand): ``response_due`` stands in.
    response_breach_at: dt.datetime | None = None
    # The priority whose resolution target judges the ticket (``resolution_target_seconds``): the targets in
    # force when it was resolved, else the current ones. After the escalation's own raise (level 2) it is the
    # priority from before the raise, ``priority`` the raised one. None when not computed (a state built by hand).
    sla_priority: Priority | None = None

    @property
    def urgency_seconds(self) -> float:
        """Seconds of service time left before the resolution breach (negative once breached)."""
        return self.resolution_target_seconds - self.resolution_elapsed_seconds

    @property
    def running(self) -> bool:
        """The resolution clock is counting (open, and not stopped by a pause)."""
        return self.resolved_at is None and self.closed_at is None and not self.clock_stopped


_STOPPING_SIDES = frozenset({Side.HOSPITAL, Side.VENDOR})


def _td_us(delta: dt.timedelta) -> int:
    return delta // dt.timedelta(microseconds=1)


def _level(elapsed: int, target: int, warn_at: float) -> int:
    if 2 * elapsed > 3 * target:
        return 3
    if elapsed > target:
        return 2
    if elapsed >= warn_at * target:
        return 1
    return 0


def compute_sla(events: Sequence[TicketEvent], hours: ServiceHours, calendar: WorkingCalendar, policy: SlaPolicy,
                now: dt.datetime) -> SlaState:
    """The SLA state of a ticket as of ``now``, from its events (see the module's rules)."""
    ordered = sorted(events, key=attrgetter("at"))
    opened_index = next((i for i, e in enumerate(ordered) if e.kind == EventKind.OPENED), None)
    if opened_index is None:
        raise ValueError("ticket events have no OPENED event")
    opened = ordered[opened_index]
    if opened.priority is None:
        raise ValueError("the OPENED event carries no priority")
    now_us = to_us(now)
    if ordered:
        now_us = max(now_us, to_us(ordered[-1].at))

    priority = target_priority = Priority(opened.priority)
    opened_us = to_us(opened.at)
    responded_us: int | None = None
    response_priority: Priority | None = None
    # The spans of time a response was owed (closed ones), and the start of the one still open: none
    # owed while a machine's resolution stands, nor after a response or a close.
    owed: list[tuple[int, int]] = []
    owed_since: int | None = opened_us

    def stop_owing(at_us: int) -> None:
        nonlocal owed_since
        if owed_since is not None:
            owed.append((owed_since, at_us))
            owed_since = None
    resolved_us: int | None = None
    resolution_priority: Priority | None = None
    closed_us: int | None = None
    paused_by: Side | None = None
    # Closed segments of running clock (start, end, service length) and the
    # start of the currently running one (None when stopped).
    segments: list[tuple[int, int, int]] = []
    running_since: int | None = opened_us

    def stop(at_us: int) -> None:
        nonlocal running_since
        if running_since is not None:
            segments.append((running_since, at_us, _working_us(hours, calendar, running_since, at_us)))
            running_since = None

    for event in ordered[opened_index + 1:]:
        kind = event.kind
        at_us = to_us(event.at)
        if kind == EventKind.OPENED:
            continue
        if kind == EventKind.CLOSED:
            stop(at_us)
            closed_us = at_us
            paused_by = None
            stop_owing(at_us)
            break
        if kind == EventKind.PRIORITY_CHANGED:
            if event.priority is None:
                raise ValueError(f"PRIORITY_CHANGED at {event.at.isoformat()} carries no priority")
            priority = Priority(event.priority)
            if not event.escalation:
                target_priority = priority
        elif kind == EventKind.STARTED and responded_us is None:
            responded_us = at_us
            response_priority = target_priority
            stop_owing(at_us)
        if kind == EventKind.RESOLVED:
            if resolved_us is None:
                stop(at_us)
                resolved_us = at_us
                resolution_priority = target_priority
                paused_by = None
                stop_owing(at_us)
        elif kind == EventKind.REOPENED:
            if resolved_us is not None:
                resolved_us = resolution_priority = None
                running_since = at_us
                if responded_us is None:
                    owed_since = at_us
        elif kind == EventKind.PAUSED:
            if resolved_us is None:
                side = Side(event.side) if event.side is not None else None
                if side in _STOPPING_SIDES:
                    stop(at_us)
                elif running_since is None:  # a contractor pause after a stopping one: the clock runs again
                    running_since = at_us
                paused_by = side if side is not None else Side.CONTRACTOR
        elif kind == EventKind.RESUMED:
            if resolved_us is None and paused_by is not None:
                if running_since is None:
                    running_since = at_us
                paused_by = None

    # Response.
    if response_priority is None:
        response_priority = target_priority
    response_target_us = _td_us(policy.targets[response_priority].response)
    spans = owed + ([(owed_since, now_us)] if owed_since is not None else [])
    span_lengths = [(start, end, _working_us(hours, calendar, start, end)) for start, end in spans]
    waited_us = sum(length for _, _, length in span_lengths)
    response_breached = waited_us > response_target_us

    def wait_reaches(amount_us: int) -> int:
        """The instant the wait reached (or reaches, or would have reached) ``amount_us`` of service time."""
        left_us = amount_us
        for start, _end, length in span_lengths:
            if left_us <= length:
                return _add_us(hours, calendar, start, left_us)
            left_us -= length
        return _add_us(hours, calendar, spans[-1][1] if spans else opened_us, left_us)

    response_due_us = wait_reaches(response_target_us)
    # Breached strictly beyond the target: at a window's end the target is reached there, the breach only at
    # the next opening (as the resolution clock's next level is target + 1 µs).
    response_breach_us = wait_reaches(response_target_us + 1)

    # Resolution.
    judged = resolution_priority if resolved_us is not None else target_priority
    target_us = _td_us(policy.targets[judged].resolution)
    elapsed_us = sum(length for _, _, length in segments)
    if running_since is not None:
        elapsed_us += _working_us(hours, calendar, running_since, now_us)
    finished = resolved_us is not None or closed_us is not None
    clock_stopped = not finished and running_since is None
    breached = elapsed_us > target_us

    def instant_at(amount_us: int) -> int | None:
        """When the clock's total reached (or will reach) amount_us, or None if it has not and is not running."""
        before = 0
        for start, _end, length in segments:
            if before + length >= amount_us:
                return _add_us(hours, calendar, start, amount_us - before)
            before += length
        if running_since is not None:
            return _add_us(hours, calendar, running_since, amount_us - before)
        return None

    if clock_stopped:
        due_us = None
    elif finished:
        due_us = instant_at(target_us) if elapsed_us >= target_us else None
    else:
        due_us = instant_at(target_us)

    level = _level(elapsed_us, target_us, policy.warn_at)
    if finished and not breached:
        level = 0
    next_us = None
    if running_since is not None and level < 3:
        # The smallest elapsed amount at which the level exceeds the current one.
        upcoming = (math.ceil(policy.warn_at * target_us), target_us + 1, (3 * target_us) // 2 + 1)[level]
        next_us = instant_at(upcoming)

    return SlaState(
        priority=priority,
        response_due=from_us(response_due_us),
        responded_at=from_us(responded_us) if responded_us is not None else None,
        response_breached=response_breached,
        resolution_target_seconds=target_us / 1_000_000,
        resolution_elapsed_seconds=elapsed_us / 1_000_000,
        resolution_due=from_us(due_us) if due_us is not None else None,
        resolved_at=from_us(resolved_us) if resolved_us is not None else None,
        resolution_breached=breached,
        paused_by=paused_by if not finished else None,
        clock_stopped=clock_stopped,
        escalation_level=level,
        closed_at=from_us(closed_us) if closed_us is not None else None,
        next_escalation_at=from_us(next_us) if next_us is not None else None,
        response_breach_at=from_us(response_breach_us),
        sla_priority=judged,
    )
