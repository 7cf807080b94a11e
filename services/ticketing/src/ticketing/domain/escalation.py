"""When the worker must look at a ticket's SLA again."""
from __future__ import annotations

import datetime as dt

from .sla import SlaState


def next_check_at(state: SlaState, now: dt.datetime) -> dt.datetime | None:
    """The next instant a threshold is crossed if nothing else happens: the response
    target (until someone responds) or the next escalation level; None when the
    clock cannot move (resolved, closed, stopped by a pause) and nothing is pending."""
    candidates = [state.next_escalation_at] if state.next_escalation_at else []
    awaiting_response = state.responded_at is None and state.resolved_at is None and state.closed_at is None
    if awaiting_response and not state.response_breached:
        candidates.append(state.response_due)
    if not candidates:
        return None
    return max(min(candidates), now)
