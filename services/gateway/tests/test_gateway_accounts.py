"""Sign-up, sign-in and accounts through HTTP, against the real identity api."""
from __future__ import annotations

import secrets

import jwt
import pytest
from gateway_testkit import CODES, JSON_CONTENT, Caller, error, escaped_json, fresh_phone, new_key, sign_up

pytestmark = pytest.mark.integration


def test_a_patient_signs_up_signs_in_and_sees_their_account(http):
    phone = fresh_phone()
    asked = http.post("/api/v1/auth/signup/code", json={"phone": phone})
    assert asked.status_code == 202, asked.text
    assert set(asked.json()) == {"expires_at", "resend_after_seconds"} and asked.json()["resend_after_seconds"] == 60
    key = new_key()
    body = {"phone": phone, "code": CODES.last_code(phone), "password": "Patient2026", "display_name": "周文静"}
    signed_up = http.post("/api/v1/auth/signup", headers=key, json=body)
    assert signed_up.status_code == 201, signed_up.text
    # Its answer lost, the same request again: the same account, no other.
    assert http.post("/api/v1/auth/signup", headers=key, json=body).json() == signed_up.json()
    assert signed_up.json() | {"account_id": ""} == {
        "account_id": "", "login": phone, "display_name": "周文静", "roles": ["patient"], "grade": ""}
    me = Caller(http, phone, "Patient2026")
    reply = http.get("/api/v1/me", headers=me.headers)
    assert reply.status_code == 200 and reply.json() == signed_up.json()


def test_service_refusals_name_the_field_and_reason(http):
    bad_phone = {"phone": "12345", "code": "123456", "password": "Patient2026", "display_name": "周文静"}
    assert error(http.post("/api/v1/auth/signup", headers=new_key(), json=bad_phone)) == \
        (422, "phone_format", "phone")
    weak = bad_phone | {"phone": fresh_phone(), "password": "password"}
    assert error(http.post("/api/v1/auth/signup", headers=new_key(), json=weak)) == \
        (422, "password_letters_and_digits", "password")
    assert error(http.post("/api/v1/auth/signup/code", json={"phone": "12345"})) == (422, "phone_format", "phone")


def test_a_common_password_or_one_holding_the_phone_is_422_with_the_field_and_opens_nothing(http):
    phone = fresh_phone()
    body = {"phone": phone, "code": "123456", "display_name": "周文静"}
    for password, reason in (("Woaini1314", "password_common"), ("password1", "password_common"),
                             (f"zwj{phone}", "password_contains_phone"), (f"Zwj{phone[-8:]}", "password_contains_phone")):
        refused = http.post("/api/v1/auth/signup", headers=new_key(), json=body | {"password": password})
        assert error(refused) == (422, reason, "password")
        assert password not in refused.text and phone not in refused.text
    # Refused before the code was judged: asked now, it opens the account with another password.
    assert sign_up(http, phone).status_code == 201
    assert Caller(http, phone, "Patient2026").account["login"] == phone


def test_a_staff_password_holding_the_staff_id_is_422(http, demo):
    login = f"fin{fresh_phone()[-6:]}"
    body = {"login": login, "password": f"{login.upper()}x1", "display_name": "孙丽", "roles": ["finance"]}
    refused = http.post("/api/v1/admin/staff-accounts", headers=demo("admin").headers | new_key(), json=body)
    assert error(refused) == (422, "password_contains_login", "password")
    assert error(http.post("/api/v1/auth/signin", json={"login": login, "password": body["password"]}))[0] == 401


def test_no_account_opens_without_the_code_sent_to_the_phone(http):
    phone = fresh_phone()
    body = {"phone": phone, "password": "Patient2026", "display_name": "周文静"}
    assert error(http.post("/api/v1/auth/signup", headers=new_key(), json=body | {"code": ""})) == \
        (422, "required", "code")
    # Nobody asked a code for this number: any code is wrong.
    assert error(http.post("/api/v1/auth/signup", headers=new_key(), json=body | {"code": "123456"})) == \
        (422, "sign_up_code_invalid", "code")
    assert http.post("/api/v1/auth/signup/code", json={"phone": phone}).status_code == 202
    wrong = f"{(int(CODES.last_code(phone)) + 1) % 10**6:06d}"
    assert error(http.post("/api/v1/auth/signup", headers=new_key(), json=body | {"code": wrong})) == \
        (422, "sign_up_code_invalid", "code")
    assert error(http.post("/api/v1/auth/signin", json={"login": phone, "password": "Patient2026"}))[0] == 401
    # Asked again at once: too soon for this number.
    again = http.post("/api/v1/auth/signup/code", json={"phone": phone})
    assert error(again)[:2] == (429, "reset_too_soon") and int(again.headers["Retry-After"]) > 0

def test_malformed_requests_are_422_with_the_field_and_never_echo_input(http):
    reply = http.post("/api/v1/auth/signup", headers=new_key(),
                      json={"phone": fresh_phone(), "code": "123456", "password": 12345678})
    assert error(reply)[0::2] == (422, "password")
    assert "12345678" not in reply.text
    missing_key = http.post("/api/v1/auth/signup", json={"phone": fresh_phone(), "code": "123456",
                                                         "password": "Patient2026", "display_name": "周文静"})
    assert error(missing_key) == (422, "invalid_argument", "Idempotency-Key")


@pytest.mark.parametrize("token", ["abc\xe9", "a\tb", "tok\x80en", "a" * 4097, "a" * 17_000],
                         ids=["non-ascii", "tab", "byte", "longer-than-any-token", "past-grpc-metadata-limit"])
def test_a_token_that_could_not_travel_to_a_service_is_401_not_a_failure(http, token):
    # Not a token any service could verify, and gRPC metadata could not carry it at all
    # (past 16 KiB the call failed RESOURCE_EXHAUSTED: a 429 "try again").
    for path in ("/api/v1/departments", "/api/v1/me"):
        reply = http.get(path, headers={"Authorization": f"Bearer {token}".encode("latin-1")})
        assert error(reply) == (401, "unauthenticated", None)
        assert reply.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(("path", "body", "field"), [
    ("/api/v1/auth/signup", {"phone": "13912345670", "code": "123456", "password": "Patient2026",
                             "display_name": "\ud800"}, "display_name"),
    ("/api/v1/auth/signup/code", {"phone": "1380000\udfff0001"}, "phone"),
    ("/api/v1/auth/signin", {"login": "13800000001", "password": "\ud800"}, "password"),
    ("/api/v1/auth/password-reset", {"phone": "1380000\udfff0001"}, "phone"),
])
def test_a_lone_surrogate_is_422_naming_its_field(http, path, body, field):
    # JSON may spell one ("\ud800"); a proto string (UTF-8) cannot hold it.
    reply = http.post(path, content=escaped_json(body), headers=JSON_CONTENT | new_key())
    assert error(reply) == (422, "invalid_argument", field)


def test_a_phone_number_signs_up_once_and_its_code_then_resets_the_password(http, patient):
    phone = patient.account["login"]
    # Asked for a number with an account: the same answer, the text says so (with a code for its password).
    assert sign_up(http, phone, password="Other2026", display_name="另一人").status_code == 409
    code = CODES.last_code(phone)
    again = {"phone": phone, "code": code, "password": "Other2026", "display_name": "另一人"}
    assert error(http.post("/api/v1/auth/signup", headers=new_key(), json=again)) == (409, "phone_taken", None)
    reset = http.post("/api/v1/auth/password-reset/confirm", headers=new_key(),
                      json={"phone": phone, "code": code, "new_password": "Renewed2027"})
    assert reset.status_code == 200 and reset.json()["device_cookie"], reset.text
    assert Caller(http, phone, "Renewed2027").account == patient.account


def test_bad_credentials_are_401_and_do_not_say_which_part_was_wrong(http, patient):
    wrong_password = http.post("/api/v1/auth/signin", json={"login": patient.account["login"], "password": "x1x1x1x1"})
    unknown = http.post("/api/v1/auth/signin", json={"login": fresh_phone(), "password": "x1x1x1x1"})
    assert wrong_password.json() == unknown.json()
    assert error(wrong_password) == (401, "bad_credentials", None)
    assert wrong_password.headers["WWW-Authenticate"] == "Bearer"


def test_repeated_failures_are_429(http, patient):
    login = patient.account["login"]
    for _ in range(5):
        http.post("/api/v1/auth/signin", json={"login": login, "password": "Wrong2026"})
    reply = http.post("/api/v1/auth/signin", json={"login": login, "password": "Patient2026"})
    assert error(reply) == (429, "too_many_attempts", None)
    # How long (identity's wait, not the default for load shedding): test_gateway_errors.py.
    assert "retry-after" in reply.headers


def test_strangers_failures_do_not_lock_out_a_device_that_keeps_its_cookie(http, patient):
    login = patient.account["login"]
    signed_in = http.post("/api/v1/auth/signin", json={"login": login, "password": "Patient2026"})
    cookie = signed_in.json()["device_cookie"]
    assert cookie
    for _ in range(5):
        http.post("/api/v1/auth/signin", json={"login": login, "password": "Wrong2026"})
    assert error(http.post("/api/v1/auth/signin", json={"login": login, "password": "Patient2026"})) == \
        (429, "too_many_attempts", None)
    again = http.post("/api/v1/auth/signin", json={"login": login, "password": "Patient2026", "device_cookie": cookie})
    assert again.status_code == 200, again.text
    assert again.json()["account"]["login"] == login and again.json()["device_cookie"]


@pytest.mark.parametrize("login,reason", [
    ("office\u0000", "control_characters"),
    # Past the btree index's row size on the throttle's log, as random text that does not compress.
    (secrets.token_hex(1600), "too_long"),
])
def test_a_login_that_can_be_no_login_is_422_naming_it_and_records_no_attempt(http, identity_database, login, reason):
    reply = http.post("/api/v1/auth/signin", json={"login": login, "password": "Office1234"})
    assert error(reply) == (422, reason, "login")
    with identity_database.transaction() as cur:
        cur.execute("SELECT count(*) AS n FROM sign_in_failures WHERE length(login) > 64")
        assert cur.fetchone()["n"] == 0


def test_my_account_needs_a_valid_token(http):
    assert error(http.get("/api/v1/me"))[0] == 401
    assert error(http.get("/api/v1/me", headers={"Authorization": "Bearer not-a-token"}))[0] == 401


def test_admins_open_staff_accounts_the_service_decides_who_is_admin(http, patient, demo):
    admin = demo("admin")
    body = {"login": f"fin{fresh_phone()[-6:]}", "password": "Finance2026", "display_name": "孙丽", "roles": ["finance"]}
    assert error(http.post("/api/v1/admin/staff-accounts", headers=patient.headers | new_key(), json=body))[0] == 403
    created = http.post("/api/v1/admin/staff-accounts", headers=admin.headers | new_key(), json=body)
    assert created.status_code == 201 and created.json()["roles"] == ["finance"]
    assert Caller(http, body["login"], "Finance2026").account["roles"] == ["finance"]
    not_a_role = body | {"roles": ["surgeon"]}
    assert error(http.post("/api/v1/admin/staff-accounts", headers=admin.headers | new_key(), json=not_a_role))[::2] \
        == (422, "roles.0")


def test_admins_grade_engineers_and_the_next_sign_in_carries_the_grade(http, demo, fakes):
    admin, dispatcher = demo("admin"), demo("dispatcher")
    login = f"eng{fresh_phone()[-6:]}"
    opened = http.post("/api/v1/admin/staff-accounts", headers=admin.headers | new_key(), json={
        "login": login, "password": "Engineer2026", "display_name": "郑浩", "roles": ["engineer"]})
    assert opened.status_code == 201 and opened.json()["grade"] == "", opened.text
    account_id = opened.json()["account_id"]
    ungraded = Caller(http, login, "Engineer2026")
    assert ungraded.account["grade"] == ""
    assert "grade" not in jwt.decode(ungraded.token, options={"verify_signature": False})
    # Ticketing (here its stand-in, by the same rule) records no time for an engineer without a grade.
    ticket = http.post("/api/v1/tickets", headers=ungraded.headers | new_key(), json={
        "kind": "incident", "subsystem_code": "PACS", "title": "阅片工作站黑屏", "impact": "low", "urgency": "low"})
    assert ticket.status_code == 201, ticket.text
    worklogs = f"/api/v1/tickets/{ticket.json()['ticket_id']}/worklogs"
    worklog = {"activity": "repair", "started_at": "2026-11-26T09:30:00+08:00", "minutes": 30}
    assert error(http.post(worklogs, headers=ungraded.headers | new_key(), json=worklog)) == \
        (409, "engineer_not_graded", None)

    path = f"/api/v1/admin/staff-accounts/{account_id}/grade"
    assert error(http.put(path, headers=dispatcher.headers, json={"grade": "senior"}))[0] == 403
    graded = http.put(path, headers=admin.headers, json={"grade": "senior"})
    assert graded.status_code == 200, graded.text
    assert graded.json() == opened.json() | {"grade": "senior"}
    assert http.put(path, headers=admin.headers, json={"grade": "senior"}).json() == graded.json()
    # The token already issued keeps what it was issued with; the next sign-in carries the grade.
    assert error(http.post(worklogs, headers=ungraded.headers | new_key(), json=worklog))[1] == "engineer_not_graded"
    engineer = Caller(http, login, "Engineer2026")
    assert engineer.account["grade"] == "senior"
    assert jwt.decode(engineer.token, options={"verify_signature": False})["grade"] == "senior"
    logged = http.post(worklogs, headers=engineer.headers | new_key(), json=worklog)
    assert logged.status_code == 201 and logged.json()["grade"] == "senior", logged.text
    assert error(http.post(worklogs, headers=engineer.headers | new_key(),
                           json=worklog | {"grade": "expert", "started_at": "2026-11-26T10:30:00+08:00"})) == \
        (422, "invalid_argument", "grade")
    assert http.get("/api/v1/me", headers=engineer.headers).json()["grade"] == "senior"


def test_grade_refusals_are_mapped(http, demo):
    admin = demo("admin")
    engineer_id = demo("engineer").account["account_id"]
    path = f"/api/v1/admin/staff-accounts/{engineer_id}/grade"
    assert error(http.put(path, headers=admin.headers, json={"grade": "guru"}))[::2] == (422, "grade")
    assert error(http.put(path, headers=admin.headers, json={}))[::2] == (422, "grade")
    office_id = demo("office").account["account_id"]
    assert error(http.put(f"/api/v1/admin/staff-accounts/{office_id}/grade", headers=admin.headers,
                          json={"grade": "senior"}))[:2] == (409, "not_an_engineer")
    assert error(http.put("/api/v1/admin/staff-accounts/00000000-0000-0000-0000-000000000000/grade",
                          headers=admin.headers, json={"grade": "senior"}))[0] == 404
    assert error(http.put(path, json={"grade": "senior"}))[0] == 401
    assert error(http.put(f"/api/v1/admin/staff-accounts/{admin.account['account_id']}/grade", headers=admin.headers,
                          json={"grade": "senior"}))[:2] == (403, "own_grade")
    # Only an engineer's account opens with a grade.
    body = {"login": f"fin{fresh_phone()[-6:]}", "password": "Finance2026", "display_name": "孙丽",
            "roles": ["finance"], "grade": "senior"}
    assert error(http.post("/api/v1/admin/staff-accounts", headers=admin.headers | new_key(), json=body))[::2] == \
        (422, "grade")
    expert = body | {"login": f"eng{fresh_phone()[-6:]}", "roles": ["engineer"], "grade": "expert"}
    created = http.post("/api/v1/admin/staff-accounts", headers=admin.headers | new_key(), json=expert)
    assert created.status_code == 201 and created.json()["grade"] == "expert", created.text
    assert Caller(http, expert["login"], "Finance2026").account["grade"] == "expert"


def test_admins_and_dispatchers_list_the_engineers_with_their_grades(http, demo, patient):
    admin, dispatcher = demo("admin"), demo("dispatcher")
    login = f"eng{fresh_phone()[-6:]}"
    opened = http.post("/api/v1/admin/staff-accounts", headers=admin.headers | new_key(), json={
        "login": login, "password": "Engineer2026", "display_name": "郑浩", "roles": ["engineer"]})
    assert opened.status_code == 201, opened.text
    listed = http.get("/api/v1/admin/staff-accounts", headers=admin.headers, params={"role": "engineer"})
    assert listed.status_code == 200, listed.text
    accounts = {a["login"]: a for a in listed.json()["accounts"]}
    # Whom to grade: the new engineer, with the id the grade endpoint takes; the seeded ones are graded.
    assert accounts[login] == opened.json() | {"grade": ""}
    assert (accounts["engineer"]["grade"], accounts["engineer2"]["grade"]) == ("senior", "intermediate")
    assert accounts["engineer"]["roles"] == ["engineer"] and accounts["engineer"]["display_name"] == "周杰"
    assert all("engineer" in a["roles"] for a in accounts.values())
    # Engineers unless another role is named; dispatchers may list too.
    assert http.get("/api/v1/admin/staff-accounts", headers=dispatcher.headers).json() == listed.json()
    graded = http.put(f"/api/v1/admin/staff-accounts/{opened.json()['account_id']}/grade", headers=admin.headers,
                      json={"grade": "junior"})
    assert graded.status_code == 200, graded.text
    again = http.get("/api/v1/admin/staff-accounts", headers=admin.headers).json()["accounts"]
    assert [a["grade"] for a in again if a["login"] == login] == ["junior"]
    dispatchers = http.get("/api/v1/admin/staff-accounts", headers=admin.headers, params={"role": "dispatcher"})
    assert "dispatcher" in {a["login"] for a in dispatchers.json()["accounts"]}
    assert all("dispatcher" in a["roles"] for a in dispatchers.json()["accounts"])


def test_listing_staff_refusals_are_mapped(http, demo, patient):
    admin, engineer = demo("admin"), demo("engineer")
    path = "/api/v1/admin/staff-accounts"
    assert error(http.get(path, headers=engineer.headers))[0] == 403
    assert error(http.get(path, headers=patient.headers))[0] == 403
    assert error(http.get(path))[0] == 401
    assert error(http.get(path, headers=admin.headers, params={"role": "janitor"})) == (422, "unknown_role", "role")
    assert error(http.get(path, headers=admin.headers, params={"role": "patient"})) == (422, "role_not_staff", "role")
    assert error(http.get(path, headers=admin.headers, params={"role": ""}))[::2] == (422, "role")


def test_signing_out_records_the_token_and_a_device_token_is_left_to_admins(http, patient, identity_database, issuer):
    token_id = jwt.decode(patient.token, options={"verify_signature": False})["jti"]
    assert http.post("/api/v1/auth/signout", headers=patient.headers).status_code == 204
    with identity_database.transaction() as cur:
        cur.execute("SELECT account_id FROM signed_out_tokens WHERE token_id = %s", (token_id,))
        assert cur.fetchone()["account_id"] == patient.account["account_id"]
    device = {"Authorization": f"Bearer {issuer.issue('device:alertmanager', ['device'])}"}
    assert error(http.post("/api/v1/auth/signout", headers=device))[:2] == (403, "not_a_sign_in_token")
