"""Identity's errors; the gRPC interceptor maps each to its status once and
sends ``reason`` (and ``field``) as trailing metadata.

A refusal that ends after a known wait (``TooManyAttempts``, ``ResetTooSoon``)
carries it as ``retry_after_seconds``, for the interceptor to send as
``tuoguan-retry-after``: the gateway's Retry-After, rather than the couple of
seconds that suit a service shedding load."""
from __future__ import annotations

import math

from tuoguan_common.errors import (
    AlreadyExists, FailedPrecondition, InvalidArgument, NotFound, PermissionDenied, ResourceExhausted, Unauthenticated,
    Unavailable,
)


class InvalidAccountField(InvalidArgument):
    """A field breaks an account rule; ``reason`` says which rule, so the
    portal can explain it in the patient's language."""

    def __init__(self, field: str, problem: str, reason: str):
        super().__init__(field, problem)
        self.reason = reason


class PhoneTaken(AlreadyExists):
    # Told only to whoever brought the phone's code: its holder.
    reason = "phone_taken"

    def __init__(self) -> None:
        super().__init__("an account with this phone number exists: sign in, or reset its password "
                         "with the code sent to the phone")


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

    def __init__(self, retry_after_seconds: int) -> None:
        minutes = math.ceil(retry_after_seconds / 60)
        super().__init__(f"too many failed sign-ins: try again in {minutes} minute{'' if minutes == 1 else 's'}")
        self.retry_after_seconds = retry_after_seconds


class ResetTooSoon(ResourceExhausted):
    reason = "reset_too_soon"

    def __init__(self, retry_after_seconds: int, message: str | None = None) -> None:
        super().__init__(message or f"a code was sent moments ago: ask for a new one in {retry_after_seconds} seconds")
        self.retry_after_seconds = retry_after_seconds


class ResetCodesUsedUpToday(ResetTooSoon):
    reason = "reset_codes_used_up_today"

    def __init__(self, retry_after_seconds: int, per_day: int) -> None:
        hours, minutes = divmod(math.ceil(retry_after_seconds / 60), 60)
        super().__init__(retry_after_seconds, f"this phone has had its {per_day} codes for today: "
                                              f"ask for a new one in {hours} h {minutes} min")


class SmsUnavailable(Unavailable):
    # The SMS gateway did not take the code (it refused, timed out or could not
    # be reached): the code and its resend wait stand (a timed-out text may yet
    # arrive), and asking again works after the wait, ``retry_after_seconds``
    # (None from the notifier itself, which does not know it; the api says
    # it). A phone without an account gets it too while sends are failing.
    # Or too many sends were under way: then nothing was written.
    reason = "sms_unavailable"

    def __init__(self, retry_after_seconds: int | None = None) -> None:
        wait = f"in {retry_after_seconds} seconds" if retry_after_seconds else "in a moment"
        super().__init__(f"the code could not be sent by text message: try again {wait}")
        self.retry_after_seconds = retry_after_seconds


class SmsHourlyLimitReached(Unavailable):
    # The platform's texts for this clock hour are spent (domain/text_budget.py):
    # every code request is refused alike until the hour ends, and nothing was
    # written or sent.
    reason = "sms_hourly_limit_reached"

    def __init__(self, retry_after_seconds: int) -> None:
        minutes = math.ceil(retry_after_seconds / 60)
        super().__init__(f"no more codes can be sent by text message this hour: try again in {minutes} "
                         f"minute{'' if minutes == 1 else 's'}")
        self.retry_after_seconds = retry_after_seconds


class ResetCodeInvalid(InvalidArgument):
    # One answer for a wrong, used, replaced or exhausted code and for a phone
    # number without an account, so the answer does not tell which it was.
    reason = "reset_code_invalid"

    def __init__(self) -> None:
        super().__init__("code", "wrong or no longer valid: check it, or ask for a new one")


class ResetCodeExpired(InvalidArgument):
    reason = "reset_code_expired"

    def __init__(self) -> None:
        super().__init__("code", "has expired: ask for a new one")


class SignUpCodeInvalid(ResetCodeInvalid):
    reason = "sign_up_code_invalid"


class SignUpCodeExpired(ResetCodeExpired):
    reason = "sign_up_code_expired"


class AccountNotFound(NotFound):
    reason = "account_not_found"

    def __init__(self, message: str = "no account for this token") -> None:
        super().__init__(message)


class NotAnEngineer(FailedPrecondition):
    # Only an engineer's hours are priced by a grade: a patient, a dispatcher
    # or a clinician has none.
    reason = "not_an_engineer"

    def __init__(self) -> None:
        super().__init__("only an account holding the engineer role has a rate grade")


class OwnGrade(PermissionDenied):
    # An account holding both admin and engineer would price its own hours:
    # another admin grades it.
    reason = "own_grade"

    def __init__(self) -> None:
        super().__init__("an admin may not set their own grade: another admin sets it")


class DeviceTokenNotFound(NotFound):
    reason = "device_token_not_found"

    def __init__(self) -> None:
        super().__init__("no device token with this id was issued")


class NotASignInToken(PermissionDenied):
    reason = "not_a_sign_in_token"

    def __init__(self) -> None:
        super().__init__("only a token from signing in is signed out: an admin revokes a device token")
