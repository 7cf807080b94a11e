"""Device cookies, as pure functions: a cookie names its device only for the
account and generation it was issued to, until it expires, and unaltered."""
from __future__ import annotations

import datetime as dt

import pytest

from identity.domain import device_cookies

KEY = b"k" * 32
NOW = dt.datetime(2026, 12, 1, 8, 0, tzinfo=dt.timezone.utc)
DEVICE = "0123456789abcdef0123456789abcdef"
HASH = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA"


def cookie(**changes) -> str:
    fields = {"key": KEY, "account_id": "acc-1", "password_hash": HASH, "device_id": DEVICE, "now": NOW} | changes
    return device_cookies.issue(**fields)


def test_a_cookie_names_its_device_for_its_account_until_it_expires():
    issued = cookie()
    assert device_cookies.device_of(KEY, "acc-1", HASH, issued, NOW) == DEVICE
    almost = NOW + device_cookies.LIFETIME - dt.timedelta(seconds=1)
    assert device_cookies.device_of(KEY, "acc-1", HASH, issued, almost) == DEVICE
    assert device_cookies.device_of(KEY, "acc-1", HASH, issued, NOW + device_cookies.LIFETIME) is None


@pytest.mark.parametrize("account_id,password_hash,key", [
    ("acc-2", HASH, KEY),  # another account's
    (None, HASH, KEY),  # the login has no account
    ("acc-1", HASH.replace("aGFzaA", "bmV3"), KEY),  # the password changed since (a reset)
    ("acc-1", HASH, b"x" * 32),  # another secret's
])
def test_a_cookie_is_nobody_elses(account_id, password_hash, key):
    assert device_cookies.device_of(key, account_id, password_hash, cookie(), NOW) is None


def test_the_cookies_key_is_their_own():
    assert device_cookies.derive_key(b"s" * 32) not in (b"s" * 32, device_cookies.derive_key(b"t" * 32))
    assert len(device_cookies.derive_key(b"s" * 32)) == 32


def _flip(text: str, at: int) -> str:
    return text[:at] + ("A" if text[at] != "A" else "B") + text[at + 1:]


@pytest.mark.parametrize("presented", [
    "", "v1", "v1..", "v2" + cookie()[2:], "v1.!!!.???", "v1.é.é", cookie() + "A",
    _flip(cookie(), 5), _flip(cookie(), len(cookie()) - 3),
], ids=["empty", "version-only", "empty-parts", "other-version", "not-base64", "not-ascii", "longer-mac",
        "payload-altered", "mac-altered"])
def test_a_forged_or_altered_cookie_names_no_device(presented):
    assert device_cookies.device_of(KEY, "acc-1", HASH, presented, NOW) is None


def test_a_cookie_is_short_and_anything_long_is_none():
    assert len(cookie()) < device_cookies.MAX_LENGTH
    assert device_cookies.device_of(KEY, "acc-1", HASH, cookie() + "=" * device_cookies.MAX_LENGTH, NOW) is None


def test_a_cookie_holds_nothing_but_a_random_device_and_its_expiry():
    issued = cookie(account_id="13912345678")
    assert "13912345678" not in issued and "acc" not in issued
    assert device_cookies.new_device_id() != device_cookies.new_device_id()
    assert len(device_cookies.new_device_id()) == 2 * device_cookies.DEVICE_ID_BYTES


def test_a_device_is_throttled_apart_from_the_login():
    assert device_cookies.throttle_login("13912345678", None) == "13912345678"
    assert device_cookies.throttle_login("13912345678", DEVICE) != "13912345678"
    assert device_cookies.throttle_login("13912345678", DEVICE) != device_cookies.throttle_login("13912345678", "ab")
