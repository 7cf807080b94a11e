"""Ticketing's errors: each is one of tuoguan_common's, so the interceptor maps
it to its gRPC status and sends the reason code as trailing metadata."""
from __future__ import annotations

import grpc
from tuoguan_common.errors import (
    FailedPrecondition, InvalidArgument, NotFound, PermissionDenied, TuoguanError, Unauthenticated, Unavailable,
)

from .domain.lifecycle import TicketRefused
from .domain.worklog import EngineerNotGraded, WorklogBeforeTicketOpened, WorklogInFuture, WorklogOverlaps

# WorklogInFuture (INVALID_ARGUMENT naming started_at or minutes, reason worklog_in_future),
# WorklogBeforeTicketOpened (INVALID_ARGUMENT naming started_at, reason worklog_before_ticket_opened),
# WorklogOverlaps (FAILED_PRECONDITION, reason worklog_overlaps) and EngineerNotGraded
# (FAILED_PRECONDITION, reason engineer_not_graded: the caller's token carries no rate grade) are the
# worklog rules' own, raised by the domain; the store turns the database's exclusion violation into
# WorklogOverlaps.
__all__ = ["AssigneeNotAnEngineer", "EngineerNotGraded", "InvalidArgument", "MajorIncidentNotAllowed", "NotFound",
           "Refused", "StaffDirectoryUnavailable", "WorklogBeforeTicketOpened", "WorklogInFuture", "WorklogOverlaps",
           "identity_failure", "not_found", "refused"]


class Refused(FailedPrecondition):
    """The lifecycle said no: a transition that does not exist, a missing worklog."""


def refused(exc: TicketRefused) -> FailedPrecondition | PermissionDenied:
    """The gRPC-facing error of a lifecycle refusal: who may not is PERMISSION_DENIED, what may not is
    FAILED_PRECONDITION; the reason code travels either way."""
    if exc.code == "PERMISSION_DENIED":  # the domain's own mapping (lifecycle.TicketRefused)
        return PermissionDenied(exc.message, reason=exc.reason)
    return Refused(exc.message, reason=exc.reason)


def not_found(what: str) -> NotFound:
    return NotFound(f"no such {what}", reason=f"{what}_not_found")


class AssigneeNotAnEngineer(FailedPrecondition):
    """An assignment to an account identity does not list as an engineer's: an unknown account, a clinician's,
    a dispatcher's. Nobody's queue would show the ticket and nobody could start it, while its SLA runs.

    FAILED_PRECONDITION, not NOT_FOUND: the id is well formed and may well be an account's (a clinician's);
    what fails is the rule that only engineers take tickets, and ticketing does not (and need not) tell an
    unknown account from one that exists without the role. NOT_FOUND would also read as "no such ticket" to a
    client of ``POST /tickets/{id}/actions/assign``. The field is ``assignee_id``."""

    reason = "assignee_not_an_engineer"

    def __init__(self):
        super().__init__("assignee_id: the account is not an engineer's: a ticket is assigned to an engineer, "
                         "who sees it in their queue and starts it")
        self.field = "assignee_id"


class MajorIncidentNotAllowed(PermissionDenied):
    """A major incident declared by someone outside the O&M team (a clinician, the registration office,
    finance, the consultants): it makes the ticket P1 whatever its impact and urgency, so its 15-minute response
    and 4-hour resolution, and their breaches, are what the contractor's performance fee is measured on. The
    service desk (engineers, dispatchers, admins) declares it, as the portal's form offers it to them only; the
    JSON API and gRPC took it from anyone. PERMISSION_DENIED, reason role_not_allowed."""

    reason = "role_not_allowed"

    def __init__(self):
        super().__init__("only the O&M team (engineers, dispatchers, admins) declares a major incident: report "
                         "the impact and urgency, and the service desk raises it if it is one")


class StaffDirectoryUnavailable(Unavailable):
    """Identity did not answer whether the assignee is an engineer (down, too slow, failing): the assignment is
    refused, never made unchecked. UNAVAILABLE: the same request succeeds once identity answers."""

    reason = "staff_directory_unavailable"

    def __init__(self):
        super().__init__("cannot check with identity that the assignee is an engineer right now: try again "
                         "shortly")


def identity_failure(exc: grpc.RpcError) -> TuoguanError:
    """The error of a failed call to identity's ListStaff, in one place: identity refusing the caller's own
    token (revoked, or the account's tokens withdrawn, before ticketing's list of revoked tokens caught up) is
    that refusal; anything else (UNAVAILABLE, DEADLINE_EXCEEDED, INTERNAL, ...) is StaffDirectoryUnavailable."""
    code = exc.code() if hasattr(exc, "code") else None
    if code == grpc.StatusCode.UNAUTHENTICATED:
        return Unauthenticated("identity refused the access token: sign in again")
    if code == grpc.StatusCode.PERMISSION_DENIED:
        return PermissionDenied("identity does not let this account list the engineers")
    return StaffDirectoryUnavailable()
