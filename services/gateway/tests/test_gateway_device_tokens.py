"""Device tokens through HTTP, against the real identity api: an admin issues,
lists and revokes them; nobody else may; a bad id or reason is refused with
the field at fault."""
from __future__ import annotations

import datetime as dt
import re
import uuid

import jwt
import pytest
from gateway_testkit import error, new_key

from identity.store import DeviceTokenRecord, IdentityStore

pytestmark = pytest.mark.integration

ROUTE = "/api/v1/admin/device-tokens"
TOKEN_ID = re.compile(r"[0-9a-f]{32}")
REASON = "posted in a chat by mistake / 误发到群聊"


def new_device() -> str:
    # A device of its own per test: the identity database lives for the whole session.
    return f"freezer-{uuid.uuid4().hex[:8]}"


def issue(http, caller, device: str, key: dict[str, str] | None = None) -> dict:
    reply = http.post(ROUTE, headers=caller.headers | (key or new_key()), json={"device_name": device, "valid_days": 30})
    assert reply.status_code == 201, reply.text
    return reply.json()


def listed(http, caller, **params) -> list[dict]:
    reply = http.get(ROUTE, headers=caller.headers, params=params)
    assert reply.status_code == 200, reply.text
    return reply.json()["tokens"]


def revoke(http, caller, token_id: str, body: dict | None = None):
    return http.post(f"{ROUTE}/{token_id}/revoke", headers=caller.headers,
                     json={"reason": REASON} if body is None else body)


@pytest.fixture
def admin(demo):
    return demo("admin")


def test_an_admin_issues_lists_and_revokes_a_device_token(http, admin):
    device = new_device()
    issued = issue(http, admin, device)
    token_id = issued["token_id"]
    assert set(issued) == {"access_token", "expires_at", "token_id"} and TOKEN_ID.fullmatch(token_id), token_id
    # The id is the token's own jti: what the apis look up in the revocation list.
    assert jwt.decode(issued["access_token"], options={"verify_signature": False})["jti"] == token_id

    (token,) = listed(http, admin, device_name=device)
    assert token == {
        "token_id": token_id, "device_name": device, "issued_at": token["issued_at"],
        "expires_at": issued["expires_at"], "issued_by": admin.account["account_id"],
        "revoked_at": "", "revoked_by": "", "revoke_reason": "",
    }
    issued_at = dt.datetime.fromisoformat(token["issued_at"])
    assert dt.timedelta(days=30) == dt.datetime.fromisoformat(token["expires_at"]) - issued_at
    assert abs(dt.datetime.now(dt.timezone.utc) - issued_at) < dt.timedelta(minutes=5)

    reply = revoke(http, admin, token_id)
    assert reply.status_code == 200, reply.text
    revoked = reply.json()
    assert revoked == token | {"revoked_at": revoked["revoked_at"], "revoked_by": admin.account["account_id"],
                               "revoke_reason": REASON}
    assert issued_at <= dt.datetime.fromisoformat(revoked["revoked_at"])

    # A second revocation (another reason, later) keeps the first on record.
    again = revoke(http, admin, token_id, {"reason": "device retired"})
    assert again.status_code == 200, again.text
    assert again.json() == revoked
    assert listed(http, admin, device_name=device) == [revoked]


def test_a_retried_issue_answers_the_same_token_and_issues_no_other(http, admin, verifier):
    device, key = new_device(), new_key()
    first = issue(http, admin, device, key)
    again = issue(http, admin, device, key)
    assert again == first
    assert verifier.verify(again["access_token"]).subject == f"device:{device}"
    assert [t["token_id"] for t in listed(http, admin, device_name=device)] == [first["token_id"]]
    # The key for another request is refused, and issues nothing either.
    other = http.post(ROUTE, headers=admin.headers | key, json={"device_name": device, "valid_days": 31})
    assert error(other) == (422, "idempotency_key_reused", "idempotency_key")
    assert len(listed(http, admin, device_name=device)) == 1


def test_an_issue_without_an_idempotency_key_is_422_and_issues_nothing(http, admin):
    device = new_device()
    reply = http.post(ROUTE, headers=admin.headers, json={"device_name": device, "valid_days": 30})
    assert error(reply) == (422, "invalid_argument", "Idempotency-Key")
    assert listed(http, admin, device_name=device) == []


def test_the_list_filters_by_device_and_hides_expired_tokens_unless_asked(http, admin, identity_database):
    device, other = new_device(), new_device()
    older = issue(http, admin, device)["token_id"]
    newer = issue(http, admin, device)["token_id"]
    elsewhere = issue(http, admin, other)["token_id"]
    # A token that expired yesterday; no route can issue one, so identity's store records it.
    expired = uuid.uuid4().hex
    now = dt.datetime.now(dt.timezone.utc)
    IdentityStore(identity_database).record_device_token(DeviceTokenRecord(
        token_id=expired, device_name=device, issued_by=admin.account["account_id"],
        issued_at=now - dt.timedelta(days=31), expires_at=now - dt.timedelta(days=1),
        revoked_at=None, revoked_by=None, revoke_reason=None))

    assert [t["token_id"] for t in listed(http, admin, device_name=device)] == [newer, older]
    assert [t["token_id"] for t in listed(http, admin, device_name=device, include_expired="true")] == \
        [newer, older, expired]
    everyone = {t["token_id"] for t in listed(http, admin)}
    assert {older, newer, elsewhere} <= everyone and expired not in everyone


@pytest.mark.parametrize("who", ["patient", "engineer", "office"])
def test_only_admins_list_and_revoke_device_tokens(http, admin, demo, patient, who):
    caller = patient if who == "patient" else demo(who)
    device = new_device()
    token_id = issue(http, admin, device)["token_id"]
    assert error(http.get(ROUTE, headers=caller.headers)) == (403, "permission_denied", None)
    assert error(revoke(http, caller, token_id)) == (403, "permission_denied", None)
    assert error(http.post(f"{ROUTE}/{token_id}/revoke", json={"reason": REASON})) == \
        (401, "unauthenticated", None)
    assert error(http.get(ROUTE)) == (401, "unauthenticated", None)
    # Nor did the refused attempts revoke it.
    assert [t["revoked_at"] for t in listed(http, admin, device_name=device)] == [""]


def test_bad_ids_and_reasons_are_refused_with_the_field(http, admin):
    device = new_device()
    token_id = issue(http, admin, device)["token_id"]
    assert error(revoke(http, admin, "not-a-token-id"))[::2] == (422, "token_id")
    assert error(revoke(http, admin, token_id[:31]))[::2] == (422, "token_id")
    assert error(revoke(http, admin, uuid.uuid4().hex)) == (404, "device_token_not_found", None)
    assert error(revoke(http, admin, token_id, {}))[::2] == (422, "reason")
    assert error(revoke(http, admin, token_id, {"reason": ""}))[::2] == (422, "reason")
    assert error(revoke(http, admin, token_id, {"reason": "x" * 501}))[::2] == (422, "reason")
    # PostgreSQL's text cannot hold NUL: the field's fault, not a failed service (502).
    assert error(revoke(http, admin, token_id, {"reason": "leaked\u0000"})) == (422, "control_characters", "reason")
    assert [t["revoked_at"] for t in listed(http, admin, device_name=device)] == [""]

    longest = revoke(http, admin, token_id, {"reason": "x" * 500})
    assert longest.status_code == 200 and longest.json()["revoke_reason"] == "x" * 500



@pytest.mark.parametrize("valid_days", [True, "30"], ids=["boolean", "string"])
def test_valid_days_is_a_json_integer_or_422_and_issues_nothing(http, admin, valid_days):
    """true became one day and "30" thirty: a token issued from what the OpenAPI (integer) says is no such
    field, and a boolean is no number of days at all."""
    device = new_device()
    reply = http.post(ROUTE, headers=admin.headers | new_key(), json={"device_name": device, "valid_days": valid_days})
    assert error(reply) == (422, "invalid_argument", "valid_days")
    assert listed(http, admin, device_name=device) == []
