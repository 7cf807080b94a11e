"""Device tokens' rules, pure: names, lifetimes, ids and revocation reasons."""
from __future__ import annotations

import uuid

import pytest

from identity.domain import device_tokens
from identity.exceptions import InvalidAccountField


def refusal(call) -> tuple[str, str]:
    with pytest.raises(InvalidAccountField) as err:
        call()
    return err.value.field, err.value.reason


def test_a_token_id_is_the_jti_as_issued_spaces_and_case_aside():
    jti = uuid.uuid4().hex
    assert device_tokens.token_id(jti) == jti
    assert device_tokens.token_id(f"  {jti.upper()} ") == jti


@pytest.mark.parametrize("raw,reason", [("", "required"), ("   ", "required"), ("0" * 31, "token_id_format"),
                                        ("0" * 33, "token_id_format"), ("g" * 32, "token_id_format"),
                                        (str(uuid.uuid4()), "token_id_format")])
def test_anything_else_is_not_a_token_id(raw, reason):
    assert refusal(lambda: device_tokens.token_id(raw)) == ("token_id", reason)


def test_a_revocation_needs_a_reason_of_at_most_500_characters():
    assert device_tokens.revoke_reason("  leaked in a ticket ") == "leaked in a ticket"
    assert device_tokens.revoke_reason("x" * 500) == "x" * 500
    assert refusal(lambda: device_tokens.revoke_reason(" ")) == ("reason", "required")
    assert refusal(lambda: device_tokens.revoke_reason("x" * 501)) == ("reason", "too_long")


def test_a_revocation_reason_holds_no_control_character():
    assert device_tokens.revoke_reason("leaked\n(see ticket 42)") == "leaked\n(see ticket 42)"
    assert refusal(lambda: device_tokens.revoke_reason("leak\x00")) == ("reason", "control_characters")
    assert refusal(lambda: device_tokens.revoke_reason("leak\x08ed")) == ("reason", "control_characters")


def test_lifetimes_are_one_to_366_days():
    assert [device_tokens.valid_days(d) for d in (1, 366)] == [1, 366]
    assert refusal(lambda: device_tokens.valid_days(0)) == ("valid_days", "valid_days_range")
    assert refusal(lambda: device_tokens.valid_days(367)) == ("valid_days", "valid_days_range")
