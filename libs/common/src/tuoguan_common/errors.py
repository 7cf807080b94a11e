"""Error types shared by every service, each mapped once to a gRPC status.

A service's ``exceptions`` module subclasses these; the gRPC server
interceptor turns any of them into the status code and a message that names
the field and the reason. Nothing else catches them. Codes are the names of
grpc.StatusCode members, so domain code can raise these without importing grpc.
"""
from __future__ import annotations


class TuoguanError(Exception):
    code: str = "INTERNAL"
    # Stable machine-readable reason, sent as trailing metadata so clients
    # (the gateway, the portal) can show a message in the user's language.
    reason: str = "internal"

    def __init__(self, message: str, *, reason: str | None = None):
        super().__init__(message)
        self.message = message
        if reason:
            self.reason = reason


class InvalidArgument(TuoguanError):
    code = "INVALID_ARGUMENT"
    reason = "invalid_argument"

    def __init__(self, field: str, problem: str):
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class NotFound(TuoguanError):
    code = "NOT_FOUND"
    reason = "not_found"


class AlreadyExists(TuoguanError):
    code = "ALREADY_EXISTS"
    reason = "already_exists"


class FailedPrecondition(TuoguanError):
    code = "FAILED_PRECONDITION"
    reason = "failed_precondition"


class ResourceExhausted(TuoguanError):
    code = "RESOURCE_EXHAUSTED"
    reason = "resource_exhausted"


class Unauthenticated(TuoguanError):
    code = "UNAUTHENTICATED"
    reason = "unauthenticated"


class PermissionDenied(TuoguanError):
    code = "PERMISSION_DENIED"
    reason = "permission_denied"


class Unavailable(TuoguanError):
    code = "UNAVAILABLE"
    reason = "unavailable"


def require(value: str, field: str) -> str:
    """A required text field, stripped; raises InvalidArgument when empty."""
    value = (value or "").strip()
    if not value:
        raise InvalidArgument(field, "is required")
    return value
