"""The platform's texts per clock hour (IDENTITY_SMS_TEXTS_PER_HOUR): once the
hour's are spent every code request is refused alike, writes nothing and texts
nothing, until the next hour. The real grpcio server in-process on a real
PostgreSQL, with the recording notifier and a clock the test moves (it starts
at 08:00 UTC)."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest

from identity.config import IdentityConfig
from identity.domain.password_reset import CodeMessage
from identity.domain.text_budget import TextBudget
from identity_testkit import PHONE, failure, request_code, sign_up_code, sign_up_patient
from tuoguan.identity.v1 import identity_pb2 as pb
from tuoguan_common.grpc_server import REASON_KEY, RETRY_AFTER_KEY

pytestmark = pytest.mark.integration

SPENT = (grpc.StatusCode.UNAVAILABLE, "sms_hourly_limit_reached", None)


def budget(per_hour: int) -> IdentityConfig:
    return IdentityConfig(texts=TextBudget(per_hour=per_hour))


def phone(i: int) -> str:
    return f"1370000{i:04d}"


def ask_sign_up_code(stub, number: str):
    return stub.RequestSignUpCode(pb.RequestSignUpCodeRequest(phone=number), timeout=10)


def retry_after(call) -> int:
    with pytest.raises(grpc.RpcError) as err:
        call()
    return int(dict(err.value.trailing_metadata())[RETRY_AFTER_KEY])


def code_rows(db) -> list[str]:
    with db.transaction() as cur:
        cur.execute("SELECT phone FROM password_reset_codes ORDER BY phone")
        return [row["phone"] for row in cur.fetchall()]


def texts_counted(db) -> dict:
    with db.transaction() as cur:
        cur.execute("SELECT hour, texts FROM texts_per_hour ORDER BY hour")
        return {row["hour"]: row["texts"] for row in cur.fetchall()}


def test_past_the_hours_texts_every_request_is_refused_alike_until_the_next_hour(serve_identity, notifier, clock,
                                                                                identity_db):
    stub = serve_identity(notifier=notifier, config=budget(2), clock=clock)
    sign_up_patient(stub)  # the hour's first text
    clock.advance(minutes=20)
    ask_sign_up_code(stub, phone(1))  # its second
    assert len(notifier.sent) == 2
    before = code_rows(identity_db)
    # Spent: a sign-up code for a new number, for a number with an account, a reset
    # code for a number with one and without one, all answered the same.
    for call in (lambda: ask_sign_up_code(stub, phone(2)), lambda: ask_sign_up_code(stub, PHONE),
                 lambda: request_code(stub, PHONE), lambda: request_code(stub, phone(3))):
        assert failure(call) == SPENT
    assert retry_after(lambda: request_code(stub, phone(3))) == 40 * 60, "until 09:00"
    assert len(notifier.sent) == 2, "nothing texted"
    assert code_rows(identity_db) == before, "no code, resend wait or day's count written"
    assert texts_counted(identity_db) == {clock.now.replace(minute=0): 2}
    # The next hour has its own texts; the refused requests left no resend wait behind.
    clock.advance(minutes=40)
    assert sign_up_code(stub, phone(2))
    request_code(stub, PHONE)
    assert notifier.messages[-2:] == [CodeMessage.SIGN_UP, CodeMessage.PASSWORD_RESET]
    assert failure(lambda: request_code(stub, phone(3))) == SPENT


@pytest.mark.parametrize("has_account", [True, False], ids=["account", "no-account"])
def test_the_hours_count_moves_alike_for_numbers_with_and_without_an_account(serve_identity, notifier, clock,
                                                                            identity_db, has_account):
    """Were a reset for a number without an account (which texts nothing) left out of the count, one probe
    and one more request would tell whoever asks whether the number has an account."""
    stub = serve_identity(notifier=notifier, config=budget(3), clock=clock)
    if has_account:
        sign_up_patient(stub)  # the hour's first text
    else:
        ask_sign_up_code(stub, phone(9))  # a first text all the same
    clock.advance(minutes=1)
    request_code(stub, PHONE)  # the probe: texted or not, it counts
    assert len(notifier.sent) == (2 if has_account else 1)
    assert texts_counted(identity_db) == {clock.now.replace(minute=0): 2}
    ask_sign_up_code(stub, phone(1))
    assert failure(lambda: ask_sign_up_code(stub, phone(2))) == SPENT


def test_concurrent_requests_send_no_more_than_the_hours_texts(serve_identity, notifier, clock, identity_db):
    stub = serve_identity(notifier=notifier, config=budget(5), clock=clock)

    def ask(i: int) -> str:
        try:
            ask_sign_up_code(stub, phone(i))
            return "sent"
        except grpc.RpcError as refused:
            return dict(refused.trailing_metadata())[REASON_KEY]

    # Four at a time: identity's own limit on sends under way, which would refuse a fifth otherwise.
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(ask, range(20)))
    assert sorted(answers) == ["sent"] * 5 + ["sms_hourly_limit_reached"] * 15
    assert len(notifier.sent) == 5
    assert texts_counted(identity_db) == {clock.now: 5}
    assert len(code_rows(identity_db)) == 5


def test_no_budget_counts_nothing_and_refuses_nothing(serve_identity, notifier, clock, identity_db):
    stub = serve_identity(notifier=notifier, config=budget(0), clock=clock)
    for i in range(3):
        ask_sign_up_code(stub, phone(i))
    assert len(notifier.sent) == 3 and texts_counted(identity_db) == {}


def test_counts_older_than_a_month_are_forgotten(serve_identity, notifier, clock, identity_db):
    stub = serve_identity(notifier=notifier, config=budget(10), clock=clock)
    first_hour = clock.now
    ask_sign_up_code(stub, phone(1))
    clock.advance(days=32)
    ask_sign_up_code(stub, phone(2))
    month_on = clock.now
    assert set(texts_counted(identity_db)) == {first_hour, month_on}, "kept a month and a day"
    clock.advance(hours=1)
    ask_sign_up_code(stub, phone(3))
    assert set(texts_counted(identity_db)) == {month_on, clock.now}
