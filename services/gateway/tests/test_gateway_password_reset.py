"""Resetting a forgotten password through HTTP, against the real identity api.

The identity api here runs with its development notifier, which logs each
code with the phone number masked; the tests read the code from that line.
"""
from __future__ import annotations

import logging
import re
import uuid

import httpx
import pytest
from gateway_testkit import Caller, error, fresh_phone

from gateway.portal.web import DEVICE_COOKIE

pytestmark = pytest.mark.integration

RESET = "/api/v1/auth/password-reset"
CONFIRM = "/api/v1/auth/password-reset/confirm"
SIGN_IN = "/api/v1/auth/signin"


def confirm(http, body: dict, key: str | None = None):
    return http.post(CONFIRM, json=body, headers={"Idempotency-Key": key or str(uuid.uuid4())})


@pytest.fixture
def codes(caplog):
    """The codes identity's development notifier logged, by masked phone number."""
    caplog.set_level(logging.INFO, logger="identity.notifications")

    def sent_to(phone: str) -> list[str]:
        masked = f"{phone[:3]}****{phone[-4:]}"
        return [r.code for r in caplog.records
                if r.getMessage() == "password reset code" and getattr(r, "phone_masked", None) == masked]

    return sent_to


def test_a_patient_resets_a_forgotten_password(http, patient, codes):
    phone = patient.account["login"]
    asked = http.post(RESET, json={"phone": phone})
    assert asked.status_code == 202, asked.text
    assert set(asked.json()) == {"expires_at", "resend_after_seconds"}
    assert asked.json()["resend_after_seconds"] == 60 and asked.json()["expires_at"].endswith("Z")
    [code] = codes(phone)
    key = str(uuid.uuid4())
    done = confirm(http, {"phone": phone, "code": code, "new_password": "Renewed2027"}, key)
    assert done.status_code == 200, done.text
    assert set(done.json()) == {"device_cookie"} and done.json()["device_cookie"]
    # Its answer lost, the same request again: the first answer, though the code is used up, and a cookie too.
    replayed = confirm(http, {"phone": phone, "code": code, "new_password": "Renewed2027"}, key)
    assert replayed.status_code == 200, replayed.text
    assert replayed.json()["device_cookie"]
    assert Caller(http, phone, "Renewed2027").account["login"] == phone
    old = http.post("/api/v1/auth/signin", json={"login": phone, "password": "Patient2026"})
    assert error(old) == (401, "bad_credentials", None)
    # The code worked once.
    again = confirm(http, {"phone": phone, "code": code, "new_password": "Another2028"})
    assert error(again) == (422, "reset_code_invalid", "code")


def test_an_unknown_phone_gets_the_same_answer_and_no_code(http, patient, codes):
    known = http.post(RESET, json={"phone": patient.account["login"]})
    unknown_phone = fresh_phone()
    unknown = http.post(RESET, json={"phone": unknown_phone})
    assert (unknown.status_code, unknown.json().keys()) == (known.status_code, known.json().keys())
    assert unknown.json()["resend_after_seconds"] == known.json()["resend_after_seconds"]
    assert codes(unknown_phone) == []


def test_a_second_code_too_soon_is_429_with_retry_after(http, patient, codes):
    phone = patient.account["login"]
    assert http.post(RESET, json={"phone": phone}).status_code == 202
    reply = http.post(RESET, json={"phone": phone})
    assert error(reply) == (429, "reset_too_soon", None)
    assert "retry-after" in reply.headers
    assert len(codes(phone)) == 1


def test_refusals_name_the_field_and_reason(http, patient, codes):
    phone = patient.account["login"]
    http.post(RESET, json={"phone": phone})
    [code] = codes(phone)
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    assert error(confirm(http, {"phone": phone, "code": wrong, "new_password": "Renewed2027"})) == \
        (422, "reset_code_invalid", "code")
    weak = confirm(http, {"phone": phone, "code": code, "new_password": "password"})
    assert error(weak) == (422, "password_letters_and_digits", "new_password")
    assert "password" not in weak.json()["error"]["message"].replace("new_password", "")
    assert error(http.post(RESET, json={"phone": "12345"})) == (422, "phone_format", "phone")
    missing = confirm(http, {"phone": phone, "new_password": "Renewed2027"})
    assert error(missing) == (422, "invalid_argument", "code")
    # None of these spent the code.
    assert confirm(http, {"phone": phone, "code": code, "new_password": "Renewed2027"}).status_code == 200


def test_a_common_new_password_or_one_holding_the_phone_is_422_and_spends_no_code(http, patient, codes):
    phone = patient.account["login"]
    http.post(RESET, json={"phone": phone})
    [code] = codes(phone)
    for password, reason in (("1qaz2wsx", "password_common"), ("QQ123456", "password_common"),
                             (f"new{phone[-8:]}", "password_contains_phone")):
        refused = confirm(http, {"phone": phone, "code": code, "new_password": password})
        assert error(refused) == (422, reason, "new_password")
    # The old password still signs in, and the code still resets it.
    assert Caller(http, phone, "Patient2026").account["login"] == phone
    assert confirm(http, {"phone": phone, "code": code, "new_password": "Renewed2027"}).status_code == 200


def test_five_wrong_codes_kill_it(http, patient, codes):
    phone = patient.account["login"]
    http.post(RESET, json={"phone": phone})
    [code] = codes(phone)
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    for _ in range(5):
        confirm(http, {"phone": phone, "code": wrong, "new_password": "Renewed2027"})
    dead = confirm(http, {"phone": phone, "code": code, "new_password": "Renewed2027"})
    assert error(dead) == (422, "reset_code_invalid", "code")
    assert Caller(http, phone, "Patient2026").account["login"] == phone


def test_a_reset_without_an_idempotency_key_is_refused(http, patient, codes):
    phone = patient.account["login"]
    http.post(RESET, json={"phone": phone})
    [code] = codes(phone)
    unkeyed = http.post(CONFIRM, json={"phone": phone, "code": code, "new_password": "Renewed2027"})
    assert unkeyed.status_code == 422 and "Idempotency-Key" in unkeyed.text
    assert confirm(http, {"phone": phone, "code": code, "new_password": "Renewed2027"}).status_code == 200


def lock_out(http, login: str) -> None:
    """Strangers' wrong passwords, until identity locks the login (for them)."""
    for _ in range(5):
        http.post(SIGN_IN, json={"login": login, "password": "Wrong2026x"})
    locked = http.post(SIGN_IN, json={"login": login, "password": "Renewed2027"})
    assert error(locked) == (429, "too_many_attempts", None)


@pytest.mark.parametrize("replayed", [False, True], ids=["first_answer", "replayed_answer"])
def test_the_device_cookie_a_reset_answers_signs_in_past_strangers_lockout(http, patient, codes, replayed):
    phone = patient.account["login"]
    assert http.post(RESET, json={"phone": phone}).status_code == 202
    [code] = codes(phone)
    key = str(uuid.uuid4())
    done = confirm(http, {"phone": phone, "code": code, "new_password": "Renewed2027"}, key)
    assert done.status_code == 200, done.text
    if replayed:
        done = confirm(http, {"phone": phone, "code": code, "new_password": "Renewed2027"}, key)
        assert done.status_code == 200, done.text
    cookie = done.json()["device_cookie"]
    # After the reset: a reset clears the login's throttle, and strangers then lock it again.
    lock_out(http, phone)
    # Identity's own cookie for this login, not any string: a made-up one is refused like none.
    forged = http.post(SIGN_IN, json={"login": phone, "password": "Renewed2027", "device_cookie": cookie[::-1]})
    assert error(forged) == (429, "too_many_attempts", None)
    trusted = http.post(SIGN_IN, json={"login": phone, "password": "Renewed2027", "device_cookie": cookie})
    assert trusted.status_code == 200, trusted.text
    assert trusted.json()["account"]["login"] == phone and trusted.json()["access_token"]


def test_the_openapi_describes_the_reset_reply():
    from gateway.app import create_app

    spec = create_app().openapi()
    answers = spec["paths"][CONFIRM]["post"]["responses"]
    assert "204" not in answers
    schema = answers["200"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    assert set(spec["components"]["schemas"][schema]["properties"]) == {"device_cookie"}


def test_the_portal_keeps_the_device_cookie_a_reset_answers(gateway_url, patient, codes):
    phone = patient.account["login"]
    with httpx.Client(base_url=gateway_url, timeout=20) as browser:
        def csrf(path: str) -> str:
            return re.search(r'name="csrf" value="([^"]+)"', browser.get(path).text).group(1)

        asked = browser.post("/reset", data={"phone": phone, "csrf": csrf("/reset")})
        key = re.search(r'name="key" value="([^"]+)"', asked.text).group(1)
        [code] = codes(phone)
        done = browser.post("/reset/confirm", data={"phone": phone, "code": code, "new_password": "Renewed2027",
                                                    "key": key, "csrf": csrf("/reset")})
        assert done.status_code == 303 and done.headers["location"] == "/signin"
        assert browser.cookies.get(DEVICE_COOKIE)


def test_the_portal_asked_again_at_once_goes_on_to_the_code_sent_a_moment_ago(gateway_url, patient, codes):
    phone = patient.account["login"]
    with httpx.Client(base_url=gateway_url, timeout=20, headers={"Accept-Language": "zh-CN"}) as browser:
        token = re.search(r'name="csrf" value="([^"]+)"', browser.get("/reset").text).group(1)
        assert browser.post("/reset", data={"phone": phone, "csrf": token}).status_code == 200
        again = browser.post("/reset", data={"phone": phone, "csrf": token})
        assert again.status_code == 200 and 'action="/reset/confirm"' in again.text
        assert "刚才已向其发送验证码" in again.text
    assert len(codes(phone)) == 1, "no second code"
