"""Signing up with a code sent to the phone: only whoever holds a number opens
an account with it, and asking for a code tells nobody whether the number
has an account. The real grpcio server in-process on a real PostgreSQL, with
the recording notifier and a clock the test moves."""
from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest

from identity.config import IdentityConfig
from identity.domain.password_reset import CodeMessage, ResetCodePolicy
from identity_testkit import (
    NEW_PASSWORD, PASSWORD, PHONE, failure, request_code, reset, sign_in, sign_up_code, sign_up_patient,
)
from tuoguan.identity.v1 import identity_pb2 as pb
from tuoguan_common.grpc_server import REASON_KEY

pytestmark = pytest.mark.integration

INVALID = (grpc.StatusCode.INVALID_ARGUMENT, "sign_up_code_invalid", "code")
EXPIRED = (grpc.StatusCode.INVALID_ARGUMENT, "sign_up_code_expired", "code")


@pytest.fixture
def stub(serve_identity, notifier, clock):
    return serve_identity(notifier=notifier, config=IdentityConfig(reset=ResetCodePolicy()), clock=clock)


def sign_up(stub, code: str, phone: str = PHONE, key: str | None = None, name: str = "赵雅琴"):
    return stub.SignUpPatient(pb.SignUpPatientRequest(
        phone=phone, password=PASSWORD, display_name=name, code=code, idempotency_key=key or uuid.uuid4().hex),
        timeout=10)


def accounts(db) -> list[str]:
    with db.transaction() as cur:
        cur.execute("SELECT login FROM accounts ORDER BY login")
        return [row["login"] for row in cur.fetchall()]


def code_row(db, phone: str = PHONE, columns: str = "attempts, account_id"):
    with db.transaction() as cur:
        cur.execute(f"SELECT {columns} FROM password_reset_codes WHERE phone = %s", (phone,))
        return cur.fetchone()


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 10**6:06d}"


def test_a_number_without_an_account_gets_a_sign_up_code_that_opens_one_once(stub, notifier, identity_db):
    asked = stub.RequestSignUpCode(pb.RequestSignUpCodeRequest(phone=PHONE), timeout=10)
    assert asked.resend_after_seconds == 60 and asked.expires_at.endswith("Z")
    assert notifier.messages == [CodeMessage.SIGN_UP]
    code = notifier.last_code()
    account = sign_up(stub, code).account
    assert account.login == PHONE and list(account.roles) == [pb.ROLE_PATIENT]
    assert sign_in(stub, PASSWORD).account == account
    # Spent, and the account's now; the resend wait is over (a reset code may be asked for at once),
    # the phone's day of codes is not (the sign-up's code counts in it).
    row = code_row(identity_db)
    assert (row["attempts"], str(row["account_id"])) == (5, account.account_id)
    assert failure(lambda: sign_up(stub, code, name="另一个人")) == INVALID
    request_code(stub)
    assert notifier.messages[-1] is CodeMessage.PASSWORD_RESET
    assert code_row(identity_db, columns="codes_today")["codes_today"] == 2


def test_no_account_opens_without_the_right_code(stub, notifier, identity_db):
    code = sign_up_code(stub)
    assert failure(lambda: sign_up(stub, wrong(code))) == INVALID
    # A number nobody asked a code for: the same answer.
    assert failure(lambda: sign_up(stub, code, phone="13700000009")) == INVALID
    assert accounts(identity_db) == []
    assert code_row(identity_db)["attempts"] == 1, "the wrong code counted"
    # The right one still works after a wrong one.
    assert sign_up(stub, code).account.login == PHONE


def test_five_wrong_codes_kill_it(stub, identity_db):
    code = sign_up_code(stub)
    for _ in range(5):
        assert failure(lambda: sign_up(stub, wrong(code))) == INVALID
    assert failure(lambda: sign_up(stub, code)) == INVALID
    assert accounts(identity_db) == []


def test_an_expired_code_says_so(stub, clock, identity_db):
    code = sign_up_code(stub)
    clock.advance(minutes=10)
    assert failure(lambda: sign_up(stub, code)) == EXPIRED
    assert accounts(identity_db) == []


def test_a_number_with_an_account_is_answered_alike_and_its_code_resets_the_password(stub, notifier, clock,
                                                                                    identity_db):
    sign_up_patient(stub)
    clock.advance(minutes=1)
    unknown = stub.RequestSignUpCode(pb.RequestSignUpCodeRequest(phone="13700000009"), timeout=10)
    taken = stub.RequestSignUpCode(pb.RequestSignUpCodeRequest(phone=PHONE), timeout=10)
    assert (taken.expires_at, taken.resend_after_seconds) == (unknown.expires_at, unknown.resend_after_seconds)
    # Each number is texted, in the same text: a provider refusing one template cannot answer them apart.
    assert notifier.messages[-2:] == [CodeMessage.SIGN_UP, CodeMessage.SIGN_UP]
    code = notifier.last_code()
    # Who brings the code holds the phone: they may be told the number has an account.
    assert failure(lambda: sign_up(stub, code, name="另一个人")) == \
        (grpc.StatusCode.ALREADY_EXISTS, "phone_taken", None)
    assert accounts(identity_db) == [PHONE]
    assert code_row(identity_db)["attempts"] == 0, "not spent by the refused sign-up"
    reset(stub, code)
    assert sign_in(stub, NEW_PASSWORD).account.login == PHONE


def test_a_sign_up_code_resets_no_password(stub, identity_db):
    code = sign_up_code(stub)
    assert failure(lambda: reset(stub, code)) == (grpc.StatusCode.INVALID_ARGUMENT, "reset_code_invalid", "code")
    assert code_row(identity_db)["attempts"] == 0
    assert sign_up(stub, code).account.login == PHONE


def test_sign_up_and_reset_codes_share_the_phones_resend_wait_and_day(stub, notifier, clock):
    sign_up_code(stub)
    assert failure(lambda: request_code(stub))[:2] == (grpc.StatusCode.RESOURCE_EXHAUSTED, "reset_too_soon")
    for _ in range(9):
        clock.advance(minutes=1)
        request_code(stub)
    clock.advance(minutes=1)
    refused = failure(lambda: stub.RequestSignUpCode(pb.RequestSignUpCodeRequest(phone=PHONE), timeout=10))
    assert refused[:2] == (grpc.StatusCode.RESOURCE_EXHAUSTED, "reset_codes_used_up_today")
    # The number has no account: its reset codes were not texted, only the sign-up code.
    assert notifier.messages == [CodeMessage.SIGN_UP]


def test_a_retried_sign_up_answers_the_first_and_one_code_opens_one_account(stub, identity_db):
    code = sign_up_code(stub)
    first = sign_up(stub, code, key="sign-up-1").account
    assert sign_up(stub, code, key="sign-up-1").account == first
    # Another request with the spent code: nothing.
    assert failure(lambda: sign_up(stub, code)) == INVALID
    assert accounts(identity_db) == [PHONE]


def test_concurrent_sign_ups_with_one_code_open_one_account(stub, identity_db):
    code = sign_up_code(stub)

    def attempt(i: int):
        try:
            return sign_up(stub, code, name=f"赵雅琴{i}").account.login
        except grpc.RpcError as refused:
            return dict(refused.trailing_metadata())[REASON_KEY]

    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(attempt, range(6)))
    assert sorted(answers) == [PHONE] + ["sign_up_code_invalid"] * 5
    assert accounts(identity_db) == [PHONE]


def test_a_bad_field_is_refused_before_the_code_is_judged(stub, identity_db):
    code = sign_up_code(stub)
    refused = failure(lambda: stub.SignUpPatient(pb.SignUpPatientRequest(
        phone=PHONE, password="short1", display_name="赵雅琴", code=wrong(code), idempotency_key="k"), timeout=10))
    assert refused == (grpc.StatusCode.INVALID_ARGUMENT, "password_too_short", "password")
    assert code_row(identity_db)["attempts"] == 0, "no attempt spent"
