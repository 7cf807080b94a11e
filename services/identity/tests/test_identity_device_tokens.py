"""Long-lived device tokens (Alertmanager, the specimen bank's devices): only
admins issue them, and every service's verifier accepts them with the one
role DEVICE until they expire."""
from __future__ import annotations

import datetime as dt
import time
import uuid

import grpc
import jwt
import pytest

from tuoguan.identity.v1 import identity_pb2 as pb
from tuoguan_common import auth
from tuoguan_common.grpc_server import FIELD_KEY, REASON_KEY

pytestmark = pytest.mark.integration

DAY = 86_400


def token_of(issuer, *roles):
    return auth.bearer_metadata(issuer.issue(str(uuid.uuid4()), list(roles)))


def issue(stub, metadata, name="alertmanager", days=90):
    return stub.IssueDeviceToken(pb.IssueDeviceTokenRequest(device_name=name, valid_days=days),
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
