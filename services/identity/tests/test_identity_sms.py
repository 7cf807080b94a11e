"""Reset codes by text message: the real grpcio server in-process on a real
PostgreSQL, with the production adapter (``sms.HttpSmsNotifier``, chosen by
``choose_notifier`` as ``main`` does) posting to a real local HTTP server that
stands in for the SMS provider's gateway (``sms_gateway``, conftest.py)."""
from __future__ import annotations

import concurrent.futures
import datetime as dt
import logging
import re
import time

import grpc
import pytest
from prometheus_client import REGISTRY

from identity.config import IdentityConfig, SmsGatewayConfig
from identity.domain.password_reset import ResetCodePolicy
from identity.notifications import choose_notifier
from identity.sms import HttpSmsNotifier
from identity_testkit import NEW_PASSWORD, PASSWORD, PHONE, failure, request_code, reset, sign_in, sign_up_patient
from tuoguan.identity.v1 import identity_pb2 as pb
from tuoguan_common.grpc_server import REASON_KEY, RETRY_AFTER_KEY

pytestmark = pytest.mark.integration

MASKED = "139****5678"
UNKNOWN = "13700000009"
API_KEY = "sk-test-4f1c9e"
UNAVAILABLE = (grpc.StatusCode.UNAVAILABLE, "sms_unavailable", None)
# What LogRecord carries of itself (times, thread ids...): not what was logged.
STANDARD_RECORD_FIELDS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


@pytest.fixture
def stub(serve_identity, sms_gateway, clock):
    config = IdentityConfig(sms=SmsGatewayConfig(url=sms_gateway.url, api_key=API_KEY, timeout_seconds=0.5))
    notifier = choose_notifier(config)
    assert isinstance(notifier, HttpSmsNotifier)
    return serve_identity(notifier=notifier, config=config, clock=clock)


def sign_up(stub, sms_gateway, phone=PHONE) -> str:
    """A patient signed up with the code texted to the stand-in gateway, which then forgets it:
    the tests count the reset codes' texts."""
    sign_up_patient(stub, phone, codes=lambda p: sms_gateway.codes(p)[-1])
    sms_gateway.received.clear()
    return phone


@pytest.fixture
def patient(stub, sms_gateway):
    return sign_up(stub, sms_gateway)


def after_the_resend_wait(clock) -> None:
    clock.now += dt.timedelta(seconds=ResetCodePolicy().resend_after_seconds + 1)



def code_row(db, phone=PHONE):
    with db.transaction() as cur:
        cur.execute("SELECT codes_today, attempts FROM password_reset_codes WHERE phone = %s", (phone,))
        return cur.fetchone()


def sends(outcome: str) -> float:
    return REGISTRY.get_sample_value("tuoguan_identity_sms_sends_total",
                                     {"template": "password_reset", "outcome": outcome}) or 0.0


def logged(caplog) -> str:
    """Every record's message and the fields it was logged with."""
    return " ".join(f"{r.getMessage()} {({k: v for k, v in vars(r).items() if k not in STANDARD_RECORD_FIELDS})}"
                    for r in caplog.records)


def test_a_reset_code_goes_by_text_message_once_and_sets_the_new_password(stub, patient, sms_gateway, caplog):
    caplog.set_level(logging.DEBUG)
    before = sends("sent")
    reply = request_code(stub)
    assert reply.expires_at == "2026-12-01T08:10:00Z" and reply.resend_after_seconds == 60
    [message] = sms_gateway.received
    assert message["path"] == sms_gateway.PATH
    headers = message["headers"]
    assert headers["authorization"] == f"Bearer {API_KEY}"
    assert headers["content-type"] == "application/json"
    assert re.fullmatch(r"[0-9a-f]{32}", headers["idempotency-key"])
    code = message["body"]["params"]["code"]
    assert re.fullmatch(r"[0-9]{6}", code)
    assert message["body"] == {"phone": PHONE, "template": "password_reset", "params": {"code": code, "minutes": 10},
                               "sign_name": "Tuoguan"}
    assert sends("sent") == before + 1
    assert reset(stub, code).device_cookie
    assert sign_in(stub, NEW_PASSWORD).access_token
    # The code, the full number and the key never reach the log; the masked number and the request id do.
    text = logged(caplog)
    assert "password reset code sent by SMS" in text and MASKED in text and headers["idempotency-key"] in text
    for secret in (code, PHONE, API_KEY):
        assert secret not in text


@pytest.mark.parametrize("how, outcome", [
    ("down", "unreachable"), ("error", "rejected"), ("redirect", "rejected"), ("timeout", "timeout"),
])
def test_a_code_the_gateway_does_not_take_is_unavailable_and_asking_again_waits_the_resend_wait(
        stub, patient, sms_gateway, identity_db, caplog, clock, how, outcome):
    caplog.set_level(logging.DEBUG)
    before = sends(outcome)
    sms_gateway.fail(how)
    started = time.monotonic()
    with pytest.raises(grpc.RpcError) as refused:
        request_code(stub)
    assert (refused.value.code(), dict(refused.value.trailing_metadata())[REASON_KEY]) == UNAVAILABLE[:2]
    wait = ResetCodePolicy().resend_after_seconds
    assert dict(refused.value.trailing_metadata())[RETRY_AFTER_KEY] == str(wait)
    assert f"try again in {wait} seconds" in refused.value.details()
    assert time.monotonic() - started < 5, "the send gives up after its timeout"
    assert sends(outcome) == before + 1
    # The code stands, and so do its resend wait and its place in the day's count:
    # a text that timed out may have reached the phone, and nobody may make it ring faster.
    assert code_row(identity_db)["codes_today"] == 2  # the sign-up's code, then this one
    tried = sms_gateway.codes(PHONE)
    assert [m["path"] for m in sms_gateway.received] == [sms_gateway.PATH] * len(tried), "no redirect is followed"
    sms_gateway.recover()
    assert failure(lambda: request_code(stub))[1] == "reset_too_soon"
    after_the_resend_wait(clock)
    request_code(stub)
    code = sms_gateway.codes(PHONE)[-1]
    assert len(sms_gateway.codes(PHONE)) == len(tried) + 1
    assert code_row(identity_db)["codes_today"] == 3
    for stale in set(tried) - {code}:
        assert failure(lambda: reset(stub, stale))[1] == "reset_code_invalid"
    reset(stub, code)
    assert sign_in(stub, NEW_PASSWORD).access_token
    text = logged(caplog)
    assert "password reset code not sent by SMS" in text
    for secret in (*tried, code, PHONE, API_KEY):
        assert secret not in text


def test_a_phone_without_an_account_gets_the_same_answer_and_no_message(stub, patient, sms_gateway, identity_db):
    known = request_code(stub)
    unknown = request_code(stub, UNKNOWN)
    assert unknown == known
    assert [m["body"]["phone"] for m in sms_gateway.received] == [PHONE]
    # Its limits are a known phone's too.
    assert failure(lambda: request_code(stub, UNKNOWN)) == failure(lambda: request_code(stub))
    assert code_row(identity_db, UNKNOWN)["codes_today"] == 1


def test_a_phone_without_an_account_is_answered_as_slowly_as_a_send(stub, sms_gateway):
    sms_gateway.delay = 0.4
    # Its sign-up code's send is one of the sends a decoy's wait is drawn from: as slow.
    sign_up(stub, sms_gateway)
    started = time.monotonic()
    request_code(stub)
    assert time.monotonic() - started >= 0.4
    started = time.monotonic()
    request_code(stub, UNKNOWN)
    assert time.monotonic() - started >= 0.35, "it waits as long as the last send took"
    assert len(sms_gateway.received) == 1


def test_while_sends_fail_a_phone_without_an_account_is_refused_alike(stub, patient, sms_gateway, identity_db,
                                                                        clock):
    sms_gateway.fail("error")
    assert failure(lambda: request_code(stub)) == UNAVAILABLE
    assert failure(lambda: request_code(stub, UNKNOWN)) == UNAVAILABLE
    # Each counted in its phone's day (the patient's after its sign-up code).
    assert (code_row(identity_db, UNKNOWN)["codes_today"], code_row(identity_db)["codes_today"]) == (1, 2)
    # Once an account's code goes out again, both are answered again.
    sms_gateway.recover()
    after_the_resend_wait(clock)
    request_code(stub)
    request_code(stub, UNKNOWN)
    assert [m["body"]["phone"] for m in sms_gateway.received] == [PHONE, PHONE]


def test_asking_again_and_again_while_the_gateway_times_out_sends_one_text(stub, patient, sms_gateway):
    sms_gateway.fail("timeout")
    answers = [failure(lambda: request_code(stub))[1] for _ in range(6)]
    assert answers == ["sms_unavailable"] + ["reset_too_soon"] * 5
    assert len(sms_gateway.codes(PHONE)) == 1, "the phone rang once"


def test_a_slow_gateway_takes_at_most_four_threads_and_sign_in_goes_on(stub, sms_gateway):
    phones = [f"1391234{i:04d}" for i in range(8)]
    for phone in phones:
        sign_up(stub, sms_gateway, phone)
    sms_gateway.delay = 1.5  # past the client's 0.5 s timeout: each send takes its whole timeout
    with concurrent.futures.ThreadPoolExecutor(len(phones)) as pool:
        asked = [pool.submit(lambda phone=phone: failure(lambda: request_code(stub, phone))[1]) for phone in phones]
        time.sleep(0.1)
        started = time.monotonic()
        assert sign_in(stub, PASSWORD, login=phones[0]).access_token
        assert time.monotonic() - started < 0.5 + 0.4, "a sign-in does not queue behind the sends"
        answers = [f.result() for f in asked]
    assert answers == ["sms_unavailable"] * len(phones)
    assert len(sms_gateway.received) == 4, "four sends at once, the others refused without one"


def test_a_sign_up_code_goes_in_one_text_whether_the_number_has_an_account_or_not(stub, patient, sms_gateway,
                                                                                    caplog):
    # Before, a number with an account got a template of its own (sign_up_account_exists): a provider refusing
    # it alone answered those numbers 503 and the others 202, and the log line said which numbers had accounts.
    caplog.set_level(logging.INFO, logger="identity.sms")
    stranger = "13700000009"
    for phone in (stranger, patient):
        stub.RequestSignUpCode(pb.RequestSignUpCodeRequest(phone=phone), timeout=10)
    templates = [message["body"]["template"] for message in sms_gateway.received]
    assert templates == ["sign_up", "sign_up"]
    lines = [record.getMessage() for record in caplog.records if record.name == "identity.sms"]
    assert lines == ["sign-up code sent by SMS"] * 2


def test_a_refused_reset_template_is_answered_alike_for_numbers_without_an_account_while_sign_ups_go_out(
        stub, patient, sms_gateway, clock):
    # The provider refuses the reset template alone: the patient's reset fails. A number without an account
    # is texted nothing and must be refused as the reset was, even though sign-up codes went out since:
    # before, the sign-up's send stood in for the last reset and the stranger was answered 202.
    sms_gateway.refused_templates.add("password_reset")
    assert failure(lambda: request_code(stub))[:2] == (grpc.StatusCode.UNAVAILABLE, "sms_unavailable")
    stub.RequestSignUpCode(pb.RequestSignUpCodeRequest(phone="13700000008"), timeout=10)
    assert sms_gateway.received[-1]["body"]["template"] == "sign_up"
    assert failure(lambda: request_code(stub, "13700000009"))[:2] == (grpc.StatusCode.UNAVAILABLE, "sms_unavailable")
