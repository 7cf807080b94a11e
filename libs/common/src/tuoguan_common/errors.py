"""Error types shared by every service, each mapped once to a gRPC status.

A service's ``exceptions`` module subclasses these; the gRPC server
interceptor turns any of them into the status code and a message that names
the field and the reason. Nothing else catches them. Codes are the names of
grpc.StatusCode members, so domain code can raise these without importing grpc.
"""
from __future__ import annotations

import datetime
import re
import uuid


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


class TokenRevoked(Unauthenticated):
    """A token signed out or revoked: refused like any bad token, but it
    names its caller (``principal``), so signing out again is no error."""

    def __init__(self, message: str, principal: object):
        super().__init__(message)
        self.principal = principal


class PermissionDenied(TuoguanError):
    code = "PERMISSION_DENIED"
    reason = "permission_denied"


class Unavailable(TuoguanError):
    code = "UNAVAILABLE"
    reason = "unavailable"


# C0 controls but tab, line feed and carriage return, and DEL: never meant in
# a name, a reason or a key, and PostgreSQL's text cannot hold NUL at all (the
# write would fail as a whole, a surge's shared batch with it).
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_ANY_CONTROL = re.compile("[\x00-\x1f\x7f]")
MAX_IDEMPOTENCY_KEY_LENGTH = 200


def _without(controls: re.Pattern, value: str, field: str) -> str:
    if controls.search(value):
        raise InvalidArgument(field, "must not contain control characters")
    return value


def plain(value: str, field: str) -> str:
    """The text as given; raises InvalidArgument when it holds a control
    character other than tab and line breaks (free text: a name, a reason)."""
    return _without(_CONTROL, value, field)


def one_line(value: str, field: str) -> str:
    """The text as given; raises InvalidArgument when it holds any control
    character, tab and line breaks included (a key, a code: one line)."""
    return _without(_ANY_CONTROL, value, field)


def require(value: str, field: str) -> str:
    """A required text field, stripped; raises InvalidArgument when empty
    or when it holds a control character."""
    value = (value or "").strip()
    if not value:
        raise InvalidArgument(field, "is required")
    return plain(value, field)


def text(value: str, field: str, limit: int, *, required: bool = True) -> str:
    """A text field, stripped, at most ``limit`` characters, no control characters."""
    value = (value or "").strip()
    if required and not value:
        raise InvalidArgument(field, "is required")
    if len(value) > limit:
        raise InvalidArgument(field, f"must be at most {limit} characters")
    return plain(value, field)


def entity_id(value: str, field: str, *, required: bool = True) -> str | None:
    """A record's id (a UUID) in its canonical form; None when absent and not required."""
    value = (value or "").strip()
    if not value:
        if required:
            raise InvalidArgument(field, "is required")
        return None
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise InvalidArgument(field, "is not a valid id") from None


# ASCII digits only (\d would take any script's).
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
# Far enough for any calendar the hospital keeps, near enough that a date
# plus a search's span or a week's arithmetic never leaves what Python holds.
FIRST_DATE, LAST_DATE = datetime.date(1900, 1, 1), datetime.date(2999, 12, 31)


def calendar_date(value: str, field: str) -> datetime.date | None:
    """A day as YYYY-MM-DD (nothing else fromisoformat reads, like 2026-W48-4),
    between 1900 and 2999; None when absent."""
    value = (value or "").strip()
    if not value:
        return None
    try:
        day = datetime.date.fromisoformat(value) if _ISO_DATE.fullmatch(value) else None
    except ValueError:
        day = None
    if day is None:
        raise InvalidArgument(field, "must be a date as YYYY-MM-DD")
    if not FIRST_DATE <= day <= LAST_DATE:
        raise InvalidArgument(field, f"must be between {FIRST_DATE} and {LAST_DATE}")
    return day


def idempotency_key(value: str) -> str:
    """Every write's idempotency key: required, at most 200 characters, one line."""
    value = one_line(require(value, "idempotency_key"), "idempotency_key")
    if len(value) > MAX_IDEMPOTENCY_KEY_LENGTH:
        raise InvalidArgument("idempotency_key", f"must be at most {MAX_IDEMPOTENCY_KEY_LENGTH} characters")
    return value
