"""When the worker must look at a ticket's SLA again."""
from __future__ import annotations

import datetime as dt

from .sla import SlaState


def next_check_at(state: SlaState, now: dt.datetime, *, response_breach_reported: bool,
                  level_reached: int = 0) -> dt.datetime | None:
    """The next instant a threshold is crossed if nothing else happens: the response
    breach (``response_breach_at``, until someone responds) or the next escalation level; None when the
    clock cannot move (resolved, closed, stopped by a pause) and nothing is pending.

    ``now`` when the response is breached and the breach not reported yet: a
    response made after its due instant, before the worker looked, is still a
    breach to announce, and the next level may be hours away. ``now`` too when the
    SLA stands at a higher escalation level than the ticket has been taken to
    (``level_reached``): a ticket resolved past a level, then reopened, was not
    open when the level was due, and the next one may be hours away."""
    candidates = [state.next_escalation_at] if state.next_escalation_at else []
    awaiting_response = state.responded_at is None and state.resolved_at is None and state.closed_at is None
    if awaiting_response and not state.response_breached:
        # The first instant it can be breached, not the target's instant: a response due at a window's end
        # is breached only at the next opening, and "now" on every tick until then kept the worker at it.
        candidates.append(state.response_breach_at or state.response_due)
    if (state.response_breached and not response_breach_reported) or state.escalation_level > level_reached:
        candidates.append(now)
    if not candidates:
        return None
    return max(min(candidates), now)
