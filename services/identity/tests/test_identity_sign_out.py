"""Signing out: the token the call carries goes on the revocation list, until
it expires, and the apis that read the list refuse it. Identity here checks
tokens with its own list (read from its table, as in production), refreshed by
the test rather than every 30 s."""
from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path

import grpc
import jwt
import pytest
from prometheus_client import REGISTRY

from identity.api import revoked_tokens
from identity_testkit import sign_up_code
from tuoguan.identity.v1 import identity_pb2 as pb
from tuoguan_common import auth
from tuoguan_common.grpc_server import REASON_KEY
from tuoguan_common.revocations import RevocationList

pytestmark = pytest.mark.integration

PHONE, PASSWORD = "13912345678", "Secret2026"


def sign_up(stub):
    return stub.SignUpPatient(pb.SignUpPatientRequest(phone=PHONE, password=PASSWORD, display_name="赵雅琴",
                                                      code=sign_up_code(stub, PHONE),
                                                      idempotency_key=uuid.uuid4().hex), timeout=10)


def sign_in(stub):
    return stub.SignIn(pb.SignInRequest(login=PHONE, password=PASSWORD), timeout=10)


@pytest.fixture
def revocations(identity_db):
    return RevocationList("identity-sign-out-test", revoked_tokens(identity_db), refresh_seconds=3600)


@pytest.fixture
def identity(serve_identity, token_keys, revocations):
    return serve_identity(verifier=auth.TokenVerifier(Path(token_keys["public"]).read_bytes(), revocations))


def as_caller(token):
    return auth.bearer_metadata(token)


def refusal(call):
    with pytest.raises(grpc.RpcError) as err:
        call()
    return err.value.code(), dict(err.value.trailing_metadata() or ()).get(REASON_KEY), err.value.details()


def signed_out(db):
    with db.transaction() as cur:
        cur.execute("SELECT token_id, account_id, expires_at FROM signed_out_tokens ORDER BY token_id")
        return cur.fetchall()


def sign_outs():
    return REGISTRY.get_sample_value("tuoguan_identity_sign_outs_total") or 0.0


def test_a_signed_out_token_is_refused_and_signing_in_again_works(identity, identity_db, revocations):
    account = sign_up(identity).account
    token = sign_in(identity).access_token
    claims = jwt.decode(token, options={"verify_signature": False})
    assert identity.GetMyAccount(pb.GetMyAccountRequest(), metadata=as_caller(token)).account == account
    counted = sign_outs()

    identity.SignOut(pb.SignOutRequest(), metadata=as_caller(token), timeout=10)
    [row] = signed_out(identity_db)
    assert (row["token_id"], row["account_id"]) == (claims["jti"], account.account_id)
    assert row["expires_at"] == dt.datetime.fromtimestamp(claims["exp"], dt.timezone.utc)
    assert identity.ListRevokedTokens(pb.ListRevokedTokensRequest()).token_ids == [claims["jti"]]
    assert sign_outs() == counted + 1

    assert revocations.refresh()
    code, _, details = refusal(lambda: identity.GetMyAccount(pb.GetMyAccountRequest(), metadata=as_caller(token)))
    assert code == grpc.StatusCode.UNAUTHENTICATED and "revoked" in details
    # Signing out again (a retry, a second tab) is no error and writes nothing.
    identity.SignOut(pb.SignOutRequest(), metadata=as_caller(token), timeout=10)
    assert len(signed_out(identity_db)) == 1 and sign_outs() == counted + 1

    fresh = sign_in(identity).access_token
    assert identity.GetMyAccount(pb.GetMyAccountRequest(), metadata=as_caller(fresh)).account == account


def test_signing_out_one_token_leaves_the_others(identity, revocations):
    sign_up(identity)
    phone, laptop = sign_in(identity).access_token, sign_in(identity).access_token
    identity.SignOut(pb.SignOutRequest(), metadata=as_caller(laptop), timeout=10)
    assert revocations.refresh()
    assert refusal(lambda: identity.GetMyAccount(pb.GetMyAccountRequest(), metadata=as_caller(laptop)))[0] == \
        grpc.StatusCode.UNAUTHENTICATED
    assert identity.GetMyAccount(pb.GetMyAccountRequest(), metadata=as_caller(phone)).account.login


def test_without_a_token_there_is_no_one_to_sign_out(identity, identity_db):
    assert refusal(lambda: identity.SignOut(pb.SignOutRequest(), timeout=10))[0] == grpc.StatusCode.UNAUTHENTICATED
    assert signed_out(identity_db) == []


@pytest.mark.parametrize("subject,roles", [("device:alertmanager", [auth.DEVICE]),
                                           ("registration-worker", [auth.SERVICE])])
def test_a_machine_token_is_not_signed_out(identity, identity_db, issuer, subject, roles):
    token = issuer.issue(subject, roles)
    code, reason, _ = refusal(lambda: identity.SignOut(pb.SignOutRequest(), metadata=as_caller(token), timeout=10))
    assert (code, reason) == (grpc.StatusCode.PERMISSION_DENIED, "not_a_sign_in_token")
    assert signed_out(identity_db) == []


def test_sign_outs_leave_the_list_once_their_tokens_expire_and_the_leeway_is_over(identity, identity_db, issuer):
    staff = [issuer.issue(str(uuid.uuid4()), [auth.REGISTRATION_OFFICE]) for _ in range(3)]
    for token in staff:
        identity.SignOut(pb.SignOutRequest(), metadata=as_caller(token), timeout=10)
    expired, in_leeway, live = (jwt.decode(t, options={"verify_signature": False})["jti"] for t in staff)
    with identity_db.transaction() as cur:
        cur.execute("UPDATE signed_out_tokens SET expires_at = now() - interval '1 minute' WHERE token_id = %s",
                    (expired,))
        cur.execute("UPDATE signed_out_tokens SET expires_at = now() - interval '3 seconds' WHERE token_id = %s",
                    (in_leeway,))
    # A token a few seconds past "exp" still passes a verifier's leeway: it stays listed.
    assert identity.ListRevokedTokens(pb.ListRevokedTokensRequest()).token_ids == sorted([in_leeway, live])
    identity.SignOut(pb.SignOutRequest(), metadata=as_caller(issuer.issue(str(uuid.uuid4()), [auth.PATIENT])),
                     timeout=10)
    assert expired not in {row["token_id"] for row in signed_out(identity_db)}, "the next sign-out clears it away"
