"""One-time codes sent to a phone: to reset a forgotten password, and to prove
a phone is the patient's before an account signs in with it.

A patient asks for a code; identity keeps only a keyed hash of it (HMAC-SHA256
with a server secret, bound to the phone number), an expiry and an attempt
counter. The code works once, until it expires, and dies after
``max_attempts`` wrong guesses. A new code replaces the previous one, but no
sooner than ``resend_after`` after it, and a phone gets at most
``max_codes_per_day`` codes in a day (counted from the first): a fresh code
per minute would otherwise give ``max_attempts`` fresh guesses per minute,
thousands a day, and flood the phone. An unknown phone number is treated
exactly like a known one (same answers, same rate limit), except that no code
is sent and none can ever match. A sign-up code is sent to any phone: a
number without an account gets a sign-up code, a number with one a text
saying so, with a reset code; both kinds share the phone's one current code
and its limits. Pure: no I/O, time is a parameter.
"""
from __future__ import annotations

import datetime as dt
import enum
import hashlib
import hmac
import math
import re
import secrets
from dataclasses import dataclass
from typing import Callable

from ..exceptions import (
    InvalidAccountField, PhoneTaken, ResetCodeExpired, ResetCodeInvalid, ResetCodesUsedUpToday, ResetTooSoon,
)

CODE_DIGITS = 6
CODE_FORMAT = re.compile(rf"[0-9]{{{CODE_DIGITS}}}")
DAY = dt.timedelta(days=1)


@dataclass(frozen=True)
class ResetCodePolicy:
    lifetime: dt.timedelta = dt.timedelta(minutes=10)
    resend_after: dt.timedelta = dt.timedelta(seconds=60)
    max_attempts: int = 5
    # With max_attempts, at most 50 guesses of a million codes a day per phone.
    max_codes_per_day: int = 10
    # An expired code is still answered as "expired" (not "invalid") for this
    # long, then forgotten.
    retention: dt.timedelta = dt.timedelta(days=1)

    @property
    def lifetime_minutes(self) -> int:
        """The lifetime as the patient is told it: whole minutes, rounded down, at least 1."""
        return max(1, int(self.lifetime.total_seconds() // 60))

    @property
    def resend_after_seconds(self) -> int:
        return math.ceil(self.resend_after.total_seconds())

    def issue(self, now: dt.datetime, randbelow: Callable[[int], int] = secrets.randbelow) -> "IssuedCode":
        """A fresh code and when it stops working."""
        code = f"{randbelow(10 ** CODE_DIGITS):0{CODE_DIGITS}d}"
        return IssuedCode(code=code, issued_at=now, expires_at=now + self.lifetime)

    def seconds_until_resend(self, previous: "StoredCode | None", now: dt.datetime) -> int:
        """0 when a new code may be issued; otherwise the whole seconds to wait
        for ``resend_after`` to pass since the last code."""
        if previous is None:
            return 0
        return max(0, math.ceil((previous.issued_at + self.resend_after - now).total_seconds()))

    def seconds_until_day_ends(self, previous: "StoredCode | None", now: dt.datetime) -> int:
        """0 while the phone may have another code today; otherwise the whole
        seconds until its day of ``max_codes_per_day`` codes ends."""
        if previous is None or previous.day_started_at is None or previous.codes_today < self.max_codes_per_day:
            return 0
        return max(0, math.ceil((previous.day_started_at + DAY - now).total_seconds()))

    def resend_refusal(self, previous: "StoredCode | None", now: dt.datetime) -> ResetTooSoon | None:
        """Why no new code may be issued now (the day's codes used up, or the
        last one too recent), with the wait; None when one may."""
        day = self.seconds_until_day_ends(previous, now)
        if day:
            return ResetCodesUsedUpToday(day, self.max_codes_per_day)
        wait = self.seconds_until_resend(previous, now)
        return ResetTooSoon(wait) if wait else None

    def count_code(self, previous: "StoredCode | None", now: dt.datetime) -> tuple[dt.datetime, int]:
        """The day a code issued now counts in (when it started) and its count, this code included."""
        if previous is None or previous.day_started_at is None or now >= previous.day_started_at + DAY:
            return now, 1
        return previous.day_started_at, previous.codes_today + 1

    def resend_wait_over(self, now: dt.datetime) -> dt.datetime:
        """An issue time whose resend wait is over at ``now``: a sign-up spends its
        code so, as only the phone's holder brings it (the day's count stays)."""
        return now - self.resend_after

    def forget_before(self, now: dt.datetime) -> dt.datetime:
        """Codes that expired before this moment are deleted."""
        return now - self.retention

    def judge(self, stored: "StoredCode | None", presented_digest: bytes, now: dt.datetime) -> "Verdict":
        """What a presented code earns. The digests are compared in constant time."""
        if stored is None or stored.attempts >= self.max_attempts:
            return Verdict.INVALID
        if now >= stored.expires_at:
            return Verdict.EXPIRED
        # An unknown phone has no digest: compared against a zero digest, so it
        # takes the same path and never matches.
        expected = stored.digest if stored.digest is not None else bytes(len(presented_digest))
        if hmac.compare_digest(expected, presented_digest) and stored.digest is not None:
            return Verdict.ACCEPTED
        return Verdict.WRONG


class CodeMessage(enum.Enum):
    """The text message a code goes in: the SMS provider's template name."""

    PASSWORD_RESET = "password_reset"
    # Every number asking for a sign-up code gets this one text, with an account
    # or without (its code then resets the password; whoever brings it back
    # holds the phone and may be told). A text of its own for numbers with an
    # account went out or failed apart: a provider refusing that template alone
    # answered those numbers 503 and the others 202, and the log named them.
    SIGN_UP = "sign_up"

    @property
    def what(self) -> str:
        """How the log names the code (never the code itself, outside development)."""
        return {CodeMessage.PASSWORD_RESET: "password reset code", CodeMessage.SIGN_UP: "sign-up code"}[self]


@dataclass(frozen=True)
class IssuedCode:
    code: str
    issued_at: dt.datetime
    expires_at: dt.datetime


@dataclass(frozen=True)
class StoredCode:
    """What the store keeps of the current code of a phone number."""

    digest: bytes | None  # None: a reset asked for a phone without an account, no code was sent
    issued_at: dt.datetime
    expires_at: dt.datetime
    attempts: int
    # The phone's day of codes: when its first code was issued, and how many since.
    day_started_at: dt.datetime | None = None
    codes_today: int = 0
    # The account the phone signed in to when the code was issued; None for a
    # sign-up code sent to a number without one.
    account_id: str | None = None


class Verdict(enum.Enum):
    ACCEPTED = "accepted"
    WRONG = "wrong"  # counts as an attempt
    INVALID = "invalid"  # no code, used, replaced, or dead after too many attempts
    EXPIRED = "expired"

    def raise_unless_accepted(self, invalid: type[Exception] = ResetCodeInvalid,
                              expired: type[Exception] = ResetCodeExpired) -> None:
        if self is Verdict.EXPIRED:
            raise expired()
        if self in (Verdict.WRONG, Verdict.INVALID):
            raise invalid()


def for_reset(verdict: Verdict, stored: StoredCode | None) -> Verdict:
    """A code resets a password only if it was sent to an account's phone: a
    sign-up code of a number without an account is answered as any invalid
    code (and costs no attempt)."""
    if verdict is Verdict.ACCEPTED and stored is not None and stored.account_id is None:
        return Verdict.INVALID
    return verdict


def for_sign_up(verdict: Verdict, stored: StoredCode | None) -> Verdict:
    """A right code sent to a number with an account opens no second one; the
    caller has proved they hold the phone, so they may be told (and its code
    still resets the password)."""
    if verdict is Verdict.ACCEPTED and stored is not None and stored.account_id is not None:
        raise PhoneTaken()
    return verdict


def code_digest(key: bytes, phone: str, code: str) -> bytes:
    """HMAC-SHA256 of the code, bound to the phone number: the database alone
    does not give the codes away, and one phone's code is useless for another."""
    return hmac.new(key, f"{phone}:{code}".encode(), hashlib.sha256).digest()


def presented_code(raw: str, field: str = "code", invalid: type[ResetCodeInvalid] = ResetCodeInvalid) -> str:
    """The code as typed (spaces around it ignored). A malformed code is refused
    before any lookup, so it costs no attempt; with the reason of ``invalid``,
    as a wrong code is."""
    code = (raw or "").strip()
    if not code:
        raise InvalidAccountField(field, "is required", "required")
    if not CODE_FORMAT.fullmatch(code):
        raise InvalidAccountField(field, f"must be the {CODE_DIGITS} digits sent to the phone", invalid.reason)
    return code


def mask_phone(phone: str) -> str:
    """13800000001 -> 138****0001: enough for a person to recognise their number."""
    if len(phone) < 8:
        return "*" * len(phone)
    return f"{phone[:3]}{'*' * (len(phone) - 7)}{phone[-4:]}"
