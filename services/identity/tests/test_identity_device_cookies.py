"""Strangers' wrong passwords lock a login for strangers only: a device the
account signed in on (its device cookie) still signs in, and is throttled on
its own count. Through the real api on a real PostgreSQL."""
from __future__ import annotations

import grpc
import pytest
from identity_testkit import PASSWORD, PHONE, failure, sign_up_patient

from identity.store import IdentityStore
from tuoguan.identity.v1 import identity_pb2 as pb
from tuoguan_common import outbox

pytestmark = pytest.mark.integration

LOCKED = (grpc.StatusCode.RESOURCE_EXHAUSTED, "too_many_attempts")
WRONG = (grpc.StatusCode.UNAUTHENTICATED, "bad_credentials")


def sign_in(stub, password=PASSWORD, cookie="", login=PHONE):
    return stub.SignIn(pb.SignInRequest(login=login, password=password, device_cookie=cookie), timeout=10)


def lock_out_strangers(stub, login=PHONE):
    for _ in range(5):
        assert failure(lambda: sign_in(stub, "Guess2026", login=login))[:2] == WRONG
    assert failure(lambda: sign_in(stub, login=login))[:2] == LOCKED


@pytest.fixture
def patient(identity):
    return sign_up_patient(identity)


def test_strangers_guesses_do_not_lock_out_a_device_the_account_signed_in_on(identity, patient):
    cookie = sign_in(identity).device_cookie
    assert cookie
    lock_out_strangers(identity)
    # The owner's phone, whose cookie the attacker does not have, still gets in...
    again = sign_in(identity, cookie=cookie)
    assert again.account.login == PHONE and again.access_token and again.device_cookie
    # ...with the cookie it was given this time too, and that does not let strangers back in.
    assert sign_in(identity, cookie=again.device_cookie).access_token
    assert failure(lambda: sign_in(identity))[:2] == LOCKED


def test_a_device_guessing_is_throttled_on_its_own_count(identity, patient):
    cookie = sign_in(identity).device_cookie
    for _ in range(5):
        assert failure(lambda: sign_in(identity, "Guess2026", cookie))[:2] == WRONG
    assert failure(lambda: sign_in(identity, cookie=cookie))[:2] == LOCKED
    # Its guesses are its own: the login is not locked for the account's other devices.
    assert sign_in(identity).access_token


@pytest.mark.parametrize("forged", ["", "v1.AAAA.AAAA", "not a cookie", "设备"], ids=["none", "forged", "junk", "cjk"])
def test_without_a_cookie_of_the_account_a_sign_in_is_a_strangers(identity, patient, forged):
    lock_out_strangers(identity)
    assert failure(lambda: sign_in(identity, cookie=forged))[:2] == LOCKED


def test_another_accounts_cookie_is_a_strangers(identity, patient):
    other = sign_up_patient(identity, phone="13700000000")
    cookie = sign_in(identity, login=other).device_cookie
    lock_out_strangers(identity)
    assert failure(lambda: sign_in(identity, cookie=cookie))[:2] == LOCKED


def test_an_unknown_login_with_a_cookie_is_answered_as_any_wrong_password(identity, patient):
    cookie = sign_in(identity).device_cookie
    assert failure(lambda: sign_in(identity, cookie=cookie, login="13700000001"))[:2] == WRONG


def test_a_withdrawal_of_the_accounts_tokens_keeps_its_cookies(identity, patient, identity_db):
    # A grade change withdraws the tokens (store.withdraw_tokens); staff have no reset to get back in with,
    # so their devices stay known. A password change voids the cookies (test_identity_password_reset.py).
    cookie = sign_in(identity).device_cookie
    store = IdentityStore(identity_db)
    account_id = store.account_by_login(PHONE).account_id
    with store.transaction() as cur:
        store.withdraw_tokens(cur, account_id, outbox.utcnow())
    lock_out_strangers(identity)
    assert sign_in(identity, cookie=cookie).access_token


def test_a_login_cannot_name_a_device_to_lock_it_out(identity, patient):
    # Failures of a known device are counted under its login and a line break: no login may hold one.
    cookie = sign_in(identity).device_cookie
    code, reason, field = failure(lambda: sign_in(identity, "Guess2026", login=PHONE + "\n" + "0" * 32))
    assert (code, reason, field) == (grpc.StatusCode.INVALID_ARGUMENT, "control_characters", "login")
    assert sign_in(identity, cookie=cookie).access_token
