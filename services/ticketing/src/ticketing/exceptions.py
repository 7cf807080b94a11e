"""Ticketing's errors: each is one of tuoguan_common's, so the interceptor maps
it to its gRPC status and sends the reason code as trailing metadata."""
from __future__ import annotations

from tuoguan_common.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied

from .domain.lifecycle import TicketRefused
from .domain.worklog import EngineerNotGraded, WorklogInFuture, WorklogOverlaps

# WorklogInFuture (INVALID_ARGUMENT naming started_at or minutes, reason worklog_in_future),
# WorklogOverlaps (FAILED_PRECONDITION, reason worklog_overlaps) and EngineerNotGraded
# (FAILED_PRECONDITION, reason engineer_not_graded: the caller's token carries no rate grade) are the
# worklog rules' own, raised by the domain; the store turns the database's exclusion violation into
# WorklogOverlaps.
__all__ = ["EngineerNotGraded", "InvalidArgument", "NotFound", "Refused", "WorklogInFuture", "WorklogOverlaps",
           "not_found", "refused"]


class Refused(FailedPrecondition):
    """The lifecycle said no: a transition that does not exist, a missing worklog."""


def refused(exc: TicketRefused) -> FailedPrecondition | PermissionDenied:
    """The gRPC-facing error of a lifecycle refusal: who may not is PERMISSION_DENIED, what may not is
    FAILED_PRECONDITION; the reason code travels either way."""
    if exc.reason in ("not_requester", "not_assignee", "role_not_allowed"):
        return PermissionDenied(exc.message, reason=exc.reason)
    return Refused(exc.message, reason=exc.reason)


def not_found(what: str) -> NotFound:
    return NotFound(f"no such {what}", reason=f"{what}_not_found")
