"""What the hospital accepts as an account.

Patients sign up with a mainland mobile number as their login; staff get a
short staff id from an admin. The two shapes cannot overlap (a staff id starts
with a letter), so one ``accounts.login`` column serves both.
"""
from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Container, Iterable

from tuoguan_common import errors
from tuoguan_common.roles import (
    ADMIN, CLINICIAN, CONSULTANT, DEVICE, DISPATCHER, ENGINEER, FINANCE, PATIENT, REGISTRATION_OFFICE, ROLES, SERVICE,
)

from ..exceptions import InvalidAccountField, NotASignInToken
from . import grades

# Mainland China mobile numbers: 11 digits, 1 then 3-9 (no +86, no spaces).
PATIENT_PHONE = re.compile(r"1[3-9][0-9]{9}")
# Staff ids: a letter, then letters, digits, dot, dash or underscore; 3-32 long.
STAFF_LOGIN = re.compile(r"[a-z][a-z0-9._-]{2,31}")
MIN_PASSWORD_LENGTH = 8
# argon2 accepts any length; the cap keeps one request from costing a
# megabyte of hashing.
MAX_PASSWORD_LENGTH = 128
MAX_DISPLAY_NAME_LENGTH = 40
MAX_IDEMPOTENCY_KEY_LENGTH = 128
# No login is longer (staff ids 32, phone numbers 11); a sign-in's login is
# written to the throttle's log, whose btree index refuses rows of a few
# kilobytes, so anything longer is refused before that write.
MAX_SIGN_IN_LOGIN_LENGTH = 64

# The roles a person on the staff may hold. Not DEVICE: that is a machine's
# (IssueDeviceToken signs it, subject "device:<name>"), and a person holding
# it could not sign out and would act with a machine's rights (ticketing's
# MACHINES). Not PATIENT or SERVICE either.
STAFF_ROLES = frozenset({
    REGISTRATION_OFFICE, ADMIN, FINANCE, CLINICIAN,
    ENGINEER, DISPATCHER, CONSULTANT,
})


@dataclass(frozen=True)
class NewAccount:
    login: str
    display_name: str
    roles: tuple[str, ...]
    # An engineer's rate grade (domain/grades.py); None for everyone else.
    grade: str | None = None


def _required(raw: str, field: str) -> str:
    value = (raw or "").strip()
    if not value:
        raise InvalidAccountField(field, "is required", "required")
    return value


def _no_controls(check, value: str, field: str) -> str:
    """The platform's rule on control characters (``tuoguan_common.errors``:
    PostgreSQL's text cannot hold NUL, so the write would fail as INTERNAL),
    refused as identity's own error with a reason."""
    try:
        return check(value, field)
    except errors.InvalidArgument as refused:
        raise InvalidAccountField(field, refused.problem, "control_characters") from None


def plain(value: str, field: str) -> str:
    """Free text: ``value`` unless it holds a control character other than tab and line breaks."""
    return _no_controls(errors.plain, value, field)


def patient_phone(raw: str, field: str = "phone") -> str:
    phone = _required(raw, field)
    if not PATIENT_PHONE.fullmatch(phone):
        raise InvalidAccountField(field, "must be an 11-digit mainland mobile number", "phone_format")
    return phone


def staff_login(raw: str, field: str = "login") -> str:
    login = _required(raw, field).lower()
    if not STAFF_LOGIN.fullmatch(login):
        raise InvalidAccountField(
            field, "must be 3-32 letters, digits, '.', '-' or '_', starting with a letter", "login_format",
        )
    return login


def sign_in_login(raw: str) -> str:
    """The login as stored: phone numbers as typed, staff ids in lower case.

    Not held to today's login rules (an older login stays valid), but refused
    when it could be no login at all (too long, a control character): the
    throttle records every attempt's login before the password is checked."""
    login = _required(raw, "login").lower()
    if len(login) > MAX_SIGN_IN_LOGIN_LENGTH:
        raise InvalidAccountField("login", f"must be at most {MAX_SIGN_IN_LOGIN_LENGTH} characters", "too_long")
    # One line: the throttle counts a known device's failures under the login
    # and a line break (domain/device_cookies.py), which no login may forge.
    return _no_controls(errors.one_line, login, "login")


@dataclass(frozen=True)
class PasswordPolicy:
    """What a new password is held to besides its length and its letters and
    digits (NIST SP 800-63B's "blocklist" check, without composition rules):

    * ``common``: the commonly used and breached passwords, in lower case, a
      password may not be whatever its case (``password_common``). Loaded by
      ``identity.common_passwords`` (package data: no I/O here).
    * ``personal``: whether a password may not hold the account's own
      identifiers: its phone number, whole or its last 8 digits
      (``password_contains_phone``), or its staff id (``password_contains_login``),
      the first words a sprayer tries with an account's login.

    Only new passwords (a sign-up, a reset, a staff account) are held to it:
    a sign-in takes any password it was set with (``presented_password``)."""
    common: Container[str]
    personal: bool = True


# The demo accounts' (seed.py): their passwords are published (README.md) and
# hold the staff ids on purpose (Admin1234), so they are held to the length and
# letters-and-digits rules only. Nothing a person chooses goes through it: the
# seed writes to the database itself, and the public sign-up is never skipped.
DEMO_PASSWORDS = PasswordPolicy(common=frozenset(), personal=False)
# A phone number's last 8 digits: what is left of it once the operator's prefix
# (138, 139...) is dropped, as people often do.
PHONE_TAIL_DIGITS = 8


def password_shape(raw: str, field: str = "password") -> str:
    """A password of the length and the letters and digits every new one needs."""
    # Never stripped: spaces a person typed are part of their password.
    if not raw:
        raise InvalidAccountField(field, "is required", "required")
    if len(raw) < MIN_PASSWORD_LENGTH:
        raise InvalidAccountField(field, f"must be at least {MIN_PASSWORD_LENGTH} characters", "password_too_short")
    if len(raw) > MAX_PASSWORD_LENGTH:
        raise InvalidAccountField(field, f"must be at most {MAX_PASSWORD_LENGTH} characters", "password_too_long")
    if not (any(c.isalpha() for c in raw) and any(c.isdigit() for c in raw)):
        raise InvalidAccountField(field, "must contain both letters and digits", "password_letters_and_digits")
    return raw


def password(raw: str, policy: PasswordPolicy, field: str = "password", *, phone: str = "", login: str = "") -> str:
    """A new password: of the right shape, not a common one, and not holding
    the account's ``phone`` number or staff ``login`` (given where the caller
    knows them: a patient's login is their phone). The refusals never repeat
    the password."""
    password_shape(raw, field)
    # Compared in lower case only: "Password1" is as common as "password1".
    folded = raw.lower()
    if folded in policy.common:
        raise InvalidAccountField(field, "is one of the most commonly used passwords: choose a less common one",
                                  "password_common")
    if policy.personal and phone and (phone in raw or phone[-PHONE_TAIL_DIGITS:] in raw):
        raise InvalidAccountField(field, "must not contain the account's phone number", "password_contains_phone")
    if policy.personal and login and login.lower() in folded:
        raise InvalidAccountField(field, "must not contain the account's staff id", "password_contains_login")
    return raw


def display_name(raw: str, field: str = "display_name") -> str:
    name = _required(raw, field)
    if len(name) > MAX_DISPLAY_NAME_LENGTH:
        raise InvalidAccountField(
            field, f"must be 1-{MAX_DISPLAY_NAME_LENGTH} characters", "display_name_length",
        )
    if any(not c.isprintable() for c in name):
        raise InvalidAccountField(field, "must not contain control characters", "display_name_characters")
    return name


def staff_roles(raw: Iterable[str], field: str = "roles") -> tuple[str, ...]:
    roles = tuple(sorted(set(raw)))
    if not roles:
        raise InvalidAccountField(field, "at least one role is required", "required")
    outside = [r for r in roles if r not in STAFF_ROLES]
    if outside:
        raise InvalidAccountField(
            field, f"not staff roles: {', '.join(outside)}; choose from {', '.join(sorted(STAFF_ROLES))}",
            "role_not_staff",
        )
    return roles


def listed_role(raw: str, field: str = "role") -> str:
    """The staff role whose accounts are listed: a role the platform knows
    (``unknown_role``) and a staff one (``role_not_staff``: patients are never listed)."""
    role = _required(raw, field).lower()
    if role not in ROLES:
        raise InvalidAccountField(field, f"is not a known role; choose from {', '.join(sorted(STAFF_ROLES))}",
                                  "unknown_role")
    if role not in STAFF_ROLES:
        raise InvalidAccountField(field, f"{role} is not a staff role; choose from {', '.join(sorted(STAFF_ROLES))}",
                                  "role_not_staff")
    return role


def idempotency_key(raw: str, field: str = "idempotency_key") -> str:
    key = _required(raw, field)
    if len(key) > MAX_IDEMPOTENCY_KEY_LENGTH:
        raise InvalidAccountField(field, f"must be at most {MAX_IDEMPOTENCY_KEY_LENGTH} characters", "too_long")
    return _no_controls(errors.one_line, key, field)  # every service's keys: one line


def presented_password(raw: str, field: str = "password") -> str:
    """A password offered at sign-in: not held to today's policy (older
    passwords stay valid), only present and short enough to hash."""
    if not raw:
        raise InvalidAccountField(field, "is required", "required")
    if len(raw) > MAX_PASSWORD_LENGTH:
        raise InvalidAccountField(field, f"must be at most {MAX_PASSWORD_LENGTH} characters", "password_too_long")
    return raw


def new_patient(phone: str, secret: str, display: str, policy: PasswordPolicy) -> NewAccount:
    """A patient's account; checks the fields in the order the sign-up form asks them."""
    login = patient_phone(phone)
    password(secret, policy, phone=login)
    return NewAccount(login=login, display_name=display_name(display), roles=(PATIENT,))


def new_staff(
    login: str, secret: str, display: str, roles: Iterable[str], grade: str = "", *, policy: PasswordPolicy,
) -> NewAccount:
    """A staff account; an engineer may open with a rate grade, or be graded later."""
    login = staff_login(login)
    password(secret, policy, login=login)
    name = display_name(display)
    held = staff_roles(roles)
    return NewAccount(login=login, display_name=name, roles=held, grade=grades.new_account_grade(grade, held))


def account_id(raw: str, field: str = "account_id") -> str:
    """An account's id (a UUID) in its canonical form."""
    value = _required(raw, field)
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise InvalidAccountField(field, "is not an account id", "account_id_format") from None


def check_sign_out(roles: frozenset[str], token_id: str) -> None:
    """Patients and staff sign out of the token they signed in with. A
    machine's token is not signed out by the machine (an admin revokes a
    device token, and a service's own token would lock the service out), and
    a token without an id could not be listed as revoked."""
    if roles & {DEVICE, SERVICE} or not token_id:
        raise NotASignInToken()
