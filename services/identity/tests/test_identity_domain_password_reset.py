"""The password reset rules, no I/O."""
from __future__ import annotations

import datetime as dt
import hmac
from dataclasses import replace

import pytest

from identity.config import IdentityConfig
from identity.domain import password_reset as reset
from identity.domain.password_reset import ResetCodePolicy, StoredCode, Verdict
from identity.exceptions import (InvalidAccountField, ResetCodeExpired, ResetCodeInvalid, ResetCodesUsedUpToday,
                                 ResetTooSoon)

NOW = dt.datetime(2026, 12, 1, 8, 0, tzinfo=dt.timezone.utc)
KEY = b"k" * 32
PHONE = "13800000001"
POLICY = ResetCodePolicy()


def stored_code(code="123456", *, attempts=0, issued_at=NOW, phone=PHONE, known=True):
    return StoredCode(digest=reset.code_digest(KEY, phone, code) if known else None,
                      issued_at=issued_at, expires_at=issued_at + POLICY.lifetime, attempts=attempts)


def test_codes_are_six_digits_zero_padded_and_expire_after_the_lifetime():
    issued = POLICY.issue(NOW, randbelow=lambda n: 42)
    assert issued == reset.IssuedCode(code="000042", issued_at=NOW, expires_at=NOW + dt.timedelta(minutes=10))
    codes = {POLICY.issue(NOW).code for _ in range(200)}
    assert all(len(c) == 6 and c.isdigit() for c in codes) and len(codes) > 150


def test_the_digest_is_keyed_and_bound_to_the_phone():
    digest = reset.code_digest(KEY, PHONE, "123456")
    assert len(digest) == 32 and b"123456" not in digest
    assert digest == reset.code_digest(KEY, PHONE, "123456")
    assert digest != reset.code_digest(KEY, "13800000002", "123456")
    assert digest != reset.code_digest(b"x" * 32, PHONE, "123456")


def test_a_new_code_no_sooner_than_the_resend_interval():
    assert POLICY.seconds_until_resend(None, NOW) == 0
    assert POLICY.seconds_until_resend(stored_code(), NOW) == 60
    assert POLICY.seconds_until_resend(stored_code(), NOW + dt.timedelta(seconds=59.2)) == 1
    assert POLICY.seconds_until_resend(stored_code(), NOW + dt.timedelta(seconds=60)) == 0
    assert POLICY.resend_after_seconds == 60
    refusal = POLICY.resend_refusal(stored_code(), NOW + dt.timedelta(seconds=30))
    assert isinstance(refusal, ResetTooSoon) and refusal.retry_after_seconds == 30
    assert refusal.reason == "reset_too_soon"
    assert POLICY.resend_refusal(None, NOW) is None


def test_a_phone_gets_at_most_ten_codes_a_day_counted_from_its_first():
    """Five guesses per code and a code a minute would be 7,200 guesses a day; ten codes a day make it 50."""
    previous = None
    at = NOW
    for n in range(1, POLICY.max_codes_per_day + 1):
        assert POLICY.resend_refusal(previous, at) is None, n
        day_started_at, codes_today = POLICY.count_code(previous, at)
        assert (day_started_at, codes_today) == (NOW, n)
        previous = replace(stored_code(issued_at=at), day_started_at=day_started_at, codes_today=codes_today)
        at += POLICY.resend_after
    refusal = POLICY.resend_refusal(previous, at)
    assert isinstance(refusal, ResetCodesUsedUpToday) and refusal.reason == "reset_codes_used_up_today"
    assert refusal.retry_after_seconds == (NOW + dt.timedelta(days=1) - at).total_seconds()
    assert "10 codes" in refusal.message and "23 h 50 min" in refusal.message
    # The day over, a new one starts with this code.
    next_day = NOW + dt.timedelta(days=1)
    assert POLICY.resend_refusal(previous, next_day) is None
    assert POLICY.count_code(previous, next_day) == (next_day, 1)


def test_the_right_code_in_time_is_accepted():
    assert POLICY.judge(stored_code(), reset.code_digest(KEY, PHONE, "123456"), NOW) is Verdict.ACCEPTED
    assert POLICY.judge(stored_code(attempts=4), reset.code_digest(KEY, PHONE, "123456"), NOW) is Verdict.ACCEPTED


def test_a_wrong_code_counts_a_missing_or_dead_one_is_invalid():
    right, other = reset.code_digest(KEY, PHONE, "123456"), reset.code_digest(KEY, PHONE, "654321")
    assert POLICY.judge(stored_code(), other, NOW) is Verdict.WRONG
    assert POLICY.judge(None, right, NOW) is Verdict.INVALID
    assert POLICY.judge(stored_code(attempts=5), right, NOW) is Verdict.INVALID
    # A phone without an account has no digest: nothing matches it.
    assert POLICY.judge(stored_code(known=False), bytes(32), NOW) is Verdict.WRONG


def test_expiry_is_decided_before_the_code_and_after_the_attempts():
    right = reset.code_digest(KEY, PHONE, "123456")
    at_expiry = NOW + POLICY.lifetime
    assert POLICY.judge(stored_code(), right, at_expiry - dt.timedelta(seconds=1)) is Verdict.ACCEPTED
    assert POLICY.judge(stored_code(), right, at_expiry) is Verdict.EXPIRED
    assert POLICY.judge(stored_code(), reset.code_digest(KEY, PHONE, "000000"), at_expiry) is Verdict.EXPIRED
    assert POLICY.judge(stored_code(attempts=5), right, at_expiry) is Verdict.INVALID


def test_verdicts_become_the_errors_with_field_and_reason():
    Verdict.ACCEPTED.raise_unless_accepted()
    for verdict, error, reason in ((Verdict.WRONG, ResetCodeInvalid, "reset_code_invalid"),
                                   (Verdict.INVALID, ResetCodeInvalid, "reset_code_invalid"),
                                   (Verdict.EXPIRED, ResetCodeExpired, "reset_code_expired")):
        with pytest.raises(error) as err:
            verdict.raise_unless_accepted()
        assert (err.value.code, err.value.field, err.value.reason) == ("INVALID_ARGUMENT", "code", reason)


@pytest.mark.parametrize("raw,reason", [
    ("", "required"), ("  ", "required"), ("12345", "reset_code_invalid"), ("1234567", "reset_code_invalid"),
    ("12a456", "reset_code_invalid"), ("１２３４５６", "reset_code_invalid"),
])
def test_malformed_codes_are_refused_before_any_lookup(raw, reason):
    with pytest.raises(InvalidAccountField) as err:
        reset.presented_code(raw)
    assert (err.value.field, err.value.reason) == ("code", reason)


def test_codes_are_taken_as_typed_without_surrounding_spaces():
    assert reset.presented_code(" 012345 ") == "012345"


@pytest.mark.parametrize("phone,masked", [("13800000001", "138****0001"), ("19912345678", "199****5678"),
                                          ("1234567", "*******")])
def test_masked_phone_numbers(phone, masked):
    assert reset.mask_phone(phone) == masked


def test_configuration_from_the_environment():
    assert IdentityConfig.from_env({}).reset == ResetCodePolicy()
    config = IdentityConfig.from_env({"IDENTITY_RESET_CODE_MINUTES": "0", "IDENTITY_RESET_RESEND_SECONDS": "5"})
    assert config.reset.lifetime == dt.timedelta(0) and config.reset.resend_after == dt.timedelta(seconds=5)
    with pytest.raises(SystemExit):
        IdentityConfig.from_env({"IDENTITY_RESET_CODE_MINUTES": "-1"})
    with pytest.raises(SystemExit):
        IdentityConfig.from_env({"IDENTITY_RESET_CODE_MINUTES": "ten"})


def test_digests_compare_in_constant_time(monkeypatch):
    seen = []
    real = hmac.compare_digest
    monkeypatch.setattr(reset.hmac, "compare_digest", lambda a, b: seen.append((a, b)) or real(a, b))
    POLICY.judge(stored_code(), reset.code_digest(KEY, PHONE, "654321"), NOW)
    assert len(seen) == 1


def test_a_sign_up_code_resets_no_password_and_an_accounts_code_opens_no_second_account():
    from identity.domain.password_reset import for_reset, for_sign_up
    from identity.exceptions import PhoneTaken
    now = dt.datetime(2026, 12, 1, 8, 0, tzinfo=dt.timezone.utc)
    sign_up = StoredCode(digest=b"d" * 32, issued_at=now, expires_at=now, attempts=0)
    account = StoredCode(digest=b"d" * 32, issued_at=now, expires_at=now, attempts=0, account_id="a-1")
    assert for_reset(Verdict.ACCEPTED, sign_up) is Verdict.INVALID
    assert for_reset(Verdict.ACCEPTED, account) is Verdict.ACCEPTED
    assert for_sign_up(Verdict.ACCEPTED, sign_up) is Verdict.ACCEPTED
    with pytest.raises(PhoneTaken):
        for_sign_up(Verdict.ACCEPTED, account)
    for verdict in (Verdict.WRONG, Verdict.EXPIRED, Verdict.INVALID):
        assert for_reset(verdict, sign_up) is verdict and for_sign_up(verdict, account) is verdict


def test_the_log_names_each_text_and_no_text_tells_whether_a_number_has_an_account():
    from identity.domain.password_reset import CodeMessage
    assert {m.value: m.what for m in CodeMessage} == {"password_reset": "password reset code",
                                                      "sign_up": "sign-up code"}
