"""Device tokens' rules: a machine's name, how long its token lasts, the id
that names an issued token, and why it was revoked. Pure: no I/O."""
from __future__ import annotations

import re

from ..exceptions import InvalidAccountField
from .accounts import plain

# Device tokens: "device:<name>", role DEVICE, valid for whole days.
DEVICE_NAME = re.compile(r"[a-z0-9-]{1,64}")
MAX_DEVICE_TOKEN_DAYS = 366
# A token's id is its jti: uuid4().hex.
TOKEN_ID = re.compile(r"[0-9a-f]{32}")
MAX_REVOKE_REASON = 500


def device_name(raw: str, field: str = "device_name") -> str:
    if not raw:
        raise InvalidAccountField(field, "is required", "required")
    if not DEVICE_NAME.fullmatch(raw):
        raise InvalidAccountField(field, "must be 1-64 characters of a-z, 0-9 and '-'", "device_name_format")
    return raw


def valid_days(raw: int, field: str = "valid_days") -> int:
    if not 1 <= raw <= MAX_DEVICE_TOKEN_DAYS:
        raise InvalidAccountField(field, f"must be 1-{MAX_DEVICE_TOKEN_DAYS} days", "valid_days_range")
    return raw


def token_id(raw: str, field: str = "token_id") -> str:
    value = (raw or "").strip().lower()
    if not value:
        raise InvalidAccountField(field, "is required", "required")
    if not TOKEN_ID.fullmatch(value):
        raise InvalidAccountField(field, "must be the 32 hexadecimal digits IssueDeviceToken answered", "token_id_format")
    return value


def revoke_reason(raw: str, field: str = "reason") -> str:
    reason = (raw or "").strip()
    if not reason:
        raise InvalidAccountField(field, "is required: say why, for the record", "required")
    if len(reason) > MAX_REVOKE_REASON:
        raise InvalidAccountField(field, f"must be at most {MAX_REVOKE_REASON} characters", "too_long")
    # Free text an admin typed, kept in a text column: lines and tabs, but no other control character.
    return plain(reason, field)
