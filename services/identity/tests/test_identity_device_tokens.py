"""Long-lived device tokens (Alertmanager, the specimen bank's devices): only
admins issue them, and every service's verifier accepts them with the one
role DEVICE until they expire."""
from __future__ import annotations

import datetime as dt
import time
import uuid
from pathlib import Path

import grpc
import jwt
import pytest

from tuoguan.identity.v1 import identity_pb2 as pb
from tuoguan_common import auth
from tuoguan_common.errors import Unauthenticated
from tuoguan_common.grpc_server import FIELD_KEY, REASON_KEY
from tuoguan_common.revocations import RevocationList, Revoked

pytestmark = pytest.mark.integration

DAY = 86_400


def token_of(issuer, *roles):
    return auth.bearer_metadata(issuer.issue(str(uuid.uuid4()), list(roles)))


def issue(stub, metadata, name="alertmanager", days=90, key=None):
    return stub.IssueDeviceToken(pb.IssueDeviceTokenRequest(device_name=name, valid_days=days,
                                                            idempotency_key=uuid.uuid4().hex if key is None else key),
                                 metadata=metadata, timeout=10)


def failure(call):
    with pytest.raises(grpc.RpcError) as err:
        call()
    trailing = dict(err.value.trailing_metadata() or ())
    return err.value.code(), trailing.get(REASON_KEY), trailing.get(FIELD_KEY)


def claims(token):
    return jwt.decode(token, options={"verify_signature": False})


def parse_rfc3339(text):
    assert text.endswith("Z")
    return dt.datetime.fromisoformat(text.removesuffix("Z") + "+00:00")


def test_an_admin_gets_a_device_token_the_services_accept(identity, issuer, verifier):
    before = int(time.time())
    reply = issue(identity, token_of(issuer, auth.ADMIN), name="alertmanager", days=90)
    after = int(time.time())
    principal = verifier.verify(reply.access_token)
    assert principal.subject == "device:alertmanager"
    assert principal.roles == {auth.DEVICE}
    signed = claims(reply.access_token)
    assert signed["exp"] - signed["iat"] == 90 * DAY
    assert before + 90 * DAY <= signed["exp"] <= after + 90 * DAY
    # expires_at is the signed expiry, in RFC 3339 UTC.
    assert parse_rfc3339(reply.expires_at) == dt.datetime.fromtimestamp(signed["exp"], dt.timezone.utc)


@pytest.mark.parametrize("name,days", [("x", 1), ("a" * 64, 366), ("freezer-b2-07", 30), ("0-9", 7)])
def test_the_bounds_of_name_and_days_are_accepted(identity, issuer, verifier, name, days):
    reply = issue(identity, token_of(issuer, auth.ADMIN), name=name, days=days)
    assert verifier.verify(reply.access_token).subject == f"device:{name}"
    signed = claims(reply.access_token)
    assert signed["exp"] - signed["iat"] == days * DAY


def test_each_token_is_distinct_and_sign_in_tokens_stay_short(identity, issuer):
    admin = token_of(issuer, auth.ADMIN)
    first, second = issue(identity, admin), issue(identity, admin)
    assert first.access_token != second.access_token
    # The override is per call: the issuer's own lifetime is unchanged.
    ordinary = claims(issuer.issue("acc-1", [auth.PATIENT]))
    assert ordinary["exp"] - ordinary["iat"] == auth.DEFAULT_TTL_SECONDS


@pytest.mark.parametrize("roles", [
    [auth.PATIENT], [auth.REGISTRATION_OFFICE], [auth.FINANCE], [auth.DEVICE], [auth.ENGINEER, auth.DISPATCHER],
])
def test_only_admins_issue_device_tokens(identity, issuer, roles):
    code, reason, _ = failure(lambda: issue(identity, token_of(issuer, *roles)))
    assert (code, reason) == (grpc.StatusCode.PERMISSION_DENIED, "permission_denied")


def test_permission_is_checked_before_the_request(identity, issuer):
    # A caller who may not issue tokens learns nothing about what a valid request is.
    code, _, _ = failure(lambda: issue(identity, token_of(issuer, auth.PATIENT), name="BAD NAME", days=0))
    assert code == grpc.StatusCode.PERMISSION_DENIED


def test_without_a_token_it_is_unauthenticated(identity):
    code, _, _ = failure(lambda: issue(identity, ()))
    assert code == grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize("name,reason", [
    ("", "required"),
    ("Alertmanager", "device_name_format"),
    ("freezer_b2", "device_name_format"),
    ("freezer b2", "device_name_format"),
    ("device:x", "device_name_format"),
    (" alertmanager", "device_name_format"),
    ("冰箱", "device_name_format"),
    ("a" * 65, "device_name_format"),
])
def test_bad_device_names_are_invalid_argument(identity, issuer, name, reason):
    code, got_reason, field = failure(lambda: issue(identity, token_of(issuer, auth.ADMIN), name=name))
    assert (code, field, got_reason) == (grpc.StatusCode.INVALID_ARGUMENT, "device_name", reason)


@pytest.mark.parametrize("days", [0, -1, 367, 10_000])
def test_bad_validity_is_invalid_argument(identity, issuer, days):
    code, reason, field = failure(lambda: issue(identity, token_of(issuer, auth.ADMIN), days=days))
    assert (code, field, reason) == (grpc.StatusCode.INVALID_ARGUMENT, "valid_days", "valid_days_range")


def test_a_retry_with_the_same_key_answers_the_same_token_and_issues_no_other(identity, issuer, verifier,
                                                                               identity_db):
    admin = token_of(issuer, auth.ADMIN)
    first = issue(identity, admin, name="freezer-b2-07", days=30, key="issue-1")
    again = issue(identity, admin, name="freezer-b2-07", days=30, key="issue-1")
    assert again == first
    assert verifier.verify(again.access_token).subject == "device:freezer-b2-07"
    listed = identity.ListDeviceTokens(pb.ListDeviceTokensRequest(device_name="freezer-b2-07"), metadata=admin)
    assert [t.token_id for t in listed.tokens] == [first.token_id]
    # The key's stored answer holds the token's id, not the token (nor its signature).
    with identity_db.transaction() as cur:
        cur.execute("SELECT encode(response, 'escape') AS response FROM idempotency_keys "
                    "WHERE scope = 'IssueDeviceToken'")
        [stored] = [row["response"] for row in cur.fetchall()]
    assert first.token_id in stored and first.access_token.rsplit(".", 1)[1] not in stored
    # Another request with the key is refused; a key of another admin is another key.
    code, reason, field = failure(lambda: issue(identity, admin, name="freezer-b2-07", days=31, key="issue-1"))
    assert (code, field) == (grpc.StatusCode.INVALID_ARGUMENT, "idempotency_key")
    other = issue(identity, token_of(issuer, auth.ADMIN), name="freezer-b2-07", days=30, key="issue-1")
    assert other.token_id != first.token_id


def test_retries_racing_each_other_get_one_token(identity, issuer, identity_db):
    from concurrent.futures import ThreadPoolExecutor

    admin = token_of(issuer, auth.ADMIN)
    with ThreadPoolExecutor(max_workers=8) as pool:
        replies = list(pool.map(lambda _: issue(identity, admin, name="racer", key="same-key"), range(8)))
    assert len({(r.token_id, r.access_token) for r in replies}) == 1
    with identity_db.transaction() as cur:
        cur.execute("SELECT count(*) AS n FROM device_tokens WHERE device_name = 'racer'")
        assert cur.fetchone()["n"] == 1


@pytest.mark.parametrize("key,reason", [("", "required"), ("  ", "required"), ("k" * 129, "too_long"),
                                        ("key\x00", "control_characters")])
def test_an_issue_without_a_usable_key_is_refused_and_issues_nothing(identity, issuer, identity_db, key, reason):
    code, got_reason, field = failure(lambda: issue(identity, token_of(issuer, auth.ADMIN), key=key))
    assert (code, field, got_reason) == (grpc.StatusCode.INVALID_ARGUMENT, "idempotency_key", reason)
    with identity_db.transaction() as cur:
        cur.execute("SELECT count(*) AS n FROM device_tokens")
        assert cur.fetchone()["n"] == 0


# Revocation: identity records every token it issues (never the token itself).

def revoke(stub, metadata, token_id, reason="leaked in a support ticket"):
    return stub.RevokeDeviceToken(pb.RevokeDeviceTokenRequest(token_id=token_id, reason=reason),
                                  metadata=metadata, timeout=10).token


def revoked_ids(stub):
    # No token: every api asks for the list, whoever it is.
    return list(stub.ListRevokedTokens(pb.ListRevokedTokensRequest(), timeout=10).token_ids)


def test_an_admin_lists_and_revokes_a_device_token_and_the_apis_learn_it(identity, issuer, identity_db):
    admin_id = str(uuid.uuid4())
    admin = auth.bearer_metadata(issuer.issue(admin_id, [auth.ADMIN]))
    kept, leaked = issue(identity, admin, name="alertmanager"), issue(identity, admin, name="alertmanager")
    assert leaked.token_id == claims(leaked.access_token)["jti"] and len(leaked.token_id) == 32
    listed = identity.ListDeviceTokens(pb.ListDeviceTokensRequest(device_name="alertmanager"), metadata=admin).tokens
    assert {t.token_id for t in listed} == {kept.token_id, leaked.token_id}
    assert all(t.issued_by == admin_id and not t.revoked_at and t.expires_at for t in listed)
    with identity_db.transaction() as cur:
        cur.execute("SELECT string_agg(t::text, ' ') AS everything FROM device_tokens t")
        assert leaked.access_token not in cur.fetchone()["everything"], "the token itself is never stored"
    assert revoked_ids(identity) == []

    first = revoke(identity, admin, leaked.token_id)
    assert (first.token_id, first.revoked_by, first.revoke_reason) == (leaked.token_id, admin_id,
                                                                       "leaked in a support ticket")
    assert first.revoked_at
    again = revoke(identity, auth.bearer_metadata(issuer.issue("another-admin", [auth.ADMIN])), leaked.token_id.upper(),
                   reason="second thoughts")
    assert again == first, "a second revocation changes nothing"
    assert revoked_ids(identity) == [leaked.token_id]
    states = {t.token_id: t.revoked_at for t in identity.ListDeviceTokens(pb.ListDeviceTokensRequest(),
                                                                          metadata=admin).tokens}
    assert states == {kept.token_id: "", leaked.token_id: first.revoked_at}


def test_a_verifier_refuses_a_revoked_token_once_its_list_is_refreshed(identity, issuer, token_keys):
    admin = token_of(issuer, auth.ADMIN)
    device = issue(identity, admin, name="freezer-b2-07")
    revocations = RevocationList("test", lambda: Revoked(frozenset(revoked_ids(identity))), refresh_seconds=3600)
    checking = auth.TokenVerifier(Path(token_keys["public"]).read_bytes(), revocations)
    assert checking.verify(device.access_token).subject == "device:freezer-b2-07"
    revoke(identity, admin, device.token_id)
    assert checking.verify(device.access_token).subject == "device:freezer-b2-07", "until the list is read again"
    assert revocations.refresh()
    with pytest.raises(Unauthenticated, match="revoked"):
        checking.verify(device.access_token)


def test_expired_tokens_leave_the_lists_unless_asked_for(identity, issuer, identity_db):
    admin = token_of(issuer, auth.ADMIN)
    old = issue(identity, admin, name="retired-scanner")
    revoke(identity, admin, old.token_id)
    with identity_db.transaction() as cur:
        cur.execute("UPDATE device_tokens SET issued_at = now() - interval '2 days', "
                    "expires_at = now() - interval '1 day' WHERE token_id = %s", (old.token_id,))
    assert revoked_ids(identity) == [], "an expired token is refused anyway"
    assert identity.ListDeviceTokens(pb.ListDeviceTokensRequest(device_name="retired-scanner"),
                                     metadata=admin).tokens == []
    everything = identity.ListDeviceTokens(pb.ListDeviceTokensRequest(device_name="retired-scanner",
                                                                      include_expired=True), metadata=admin).tokens
    assert [t.token_id for t in everything] == [old.token_id]


@pytest.mark.parametrize("roles", [[auth.PATIENT], [auth.DEVICE], [auth.ENGINEER, auth.DISPATCHER]])
def test_only_admins_list_and_revoke(identity, issuer, roles):
    token_id = issue(identity, token_of(issuer, auth.ADMIN)).token_id
    caller = token_of(issuer, *roles)
    assert failure(lambda: identity.ListDeviceTokens(pb.ListDeviceTokensRequest(), metadata=caller))[0] == \
        grpc.StatusCode.PERMISSION_DENIED
    assert failure(lambda: revoke(identity, caller, token_id))[0] == grpc.StatusCode.PERMISSION_DENIED
    assert revoked_ids(identity) == []


@pytest.mark.parametrize("token_id,reason,expected", [
    ("", "leaked", (grpc.StatusCode.INVALID_ARGUMENT, "required", "token_id")),
    ("not-a-token-id", "leaked", (grpc.StatusCode.INVALID_ARGUMENT, "token_id_format", "token_id")),
    ("0" * 32, "", (grpc.StatusCode.INVALID_ARGUMENT, "required", "reason")),
    ("0" * 32, "x" * 501, (grpc.StatusCode.INVALID_ARGUMENT, "too_long", "reason")),
    ("0" * 32, "leaked\x00", (grpc.StatusCode.INVALID_ARGUMENT, "control_characters", "reason")),
    ("0" * 32, "leaked", (grpc.StatusCode.NOT_FOUND, "device_token_not_found", None)),
])
def test_bad_revocations_say_which_field_and_write_nothing(identity, issuer, token_id, reason, expected):
    issue(identity, token_of(issuer, auth.ADMIN))
    assert failure(lambda: revoke(identity, token_of(issuer, auth.ADMIN), token_id, reason)) == expected
    assert revoked_ids(identity) == []
