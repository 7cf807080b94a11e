"""Identity's errors; the gRPC interceptor maps each to its status once and
sends ``reason`` (and ``field``) as trailing metadata."""
from __future__ import annotations

from tuoguan_common.errors import AlreadyExists, InvalidArgument, NotFound, ResourceExhausted, Unauthenticated


class InvalidAccountField(InvalidArgument):
    """A field breaks an account rule; ``reason`` says which rule, so the
    portal can explain it in the patient's language."""

    def __init__(self, field: str, problem: str, reason: str):
        super().__init__(field, problem)
        self.reason = reason


class PhoneTaken(AlreadyExists):
    reason = "phone_taken"

    def __init__(self) -> None:
        super().__init__("an account with this phone number exists: sign in instead")


class LoginTaken(AlreadyExists):
    reason = "login_taken"

    def __init__(self) -> None:
        super().__init__("an account with this login exists")


class BadCredentials(Unauthenticated):
    # One message for an unknown login and a wrong password alike, so the
    # answer does not tell which logins exist.
    reason = "bad_credentials"

    def __init__(self) -> None:
        super().__init__("wrong login or password")


class TooManyAttempts(ResourceExhausted):
    reason = "too_many_attempts"

    def __init__(self, retry_after_minutes: int) -> None:
        super().__init__(f"too many failed sign-ins: try again in {retry_after_minutes} minutes")


class AccountNotFound(NotFound):
    reason = "account_not_found"

    def __init__(self) -> None:
        super().__init__("no account for this token")
