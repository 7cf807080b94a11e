"""Withdrawing an account's tokens all at once: when an engineer's grade
changes (their tokens carry the old price of their hours) or a password is
reset (whoever signed in with the old one, maybe a thief), identity moves the
account's token generation on, lists the account on its revocation list with
the generation a token must carry, and the apis refuse every older token
after their next read of the list. The account's next sign-in works."""
from __future__ import annotations

import threading
import uuid
from pathlib import Path

import grpc
import jwt
import pytest
from prometheus_client import REGISTRY

from identity.api import revoked_tokens
from identity.config import IdentityConfig
from identity.domain.password_reset import ResetCodePolicy
from identity_testkit import NEW_PASSWORD, PASSWORD, request_code, reset, sign_in, \
    sign_up_patient
from tuoguan.identity.v1 import identity_pb2 as pb
from tuoguan_common import auth
from tuoguan_common.revocations import RevocationList

pytestmark = pytest.mark.integration

ADMIN_ID = str(uuid.uuid4())
ENGINEER_PASSWORD = "Engineer2026"


@pytest.fixture
def revocations(identity_db):
    """The list as every api keeps it, read from identity's tables, refreshed by the test."""
    return RevocationList("identity-withdrawal-test", revoked_tokens(identity_db), refresh_seconds=3600)


@pytest.fixture
def identity(serve_identity, token_keys, revocations, clock, notifier):
    return serve_identity(verifier=auth.TokenVerifier(Path(token_keys["public"]).read_bytes(), revocations),
                          clock=clock, notifier=notifier, config=IdentityConfig(reset=ResetCodePolicy()))


@pytest.fixture
def admin(issuer):
    return auth.bearer_metadata(issuer.issue(ADMIN_ID, [auth.ADMIN]))


def claims(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


def who(identity, token: str) -> str:
    return identity.GetMyAccount(pb.GetMyAccountRequest(), metadata=auth.bearer_metadata(token), timeout=10).account.login


def refused(identity, token: str) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as err:
        who(identity, token)
    return err.value.code(), err.value.details()


def withdrawn(identity) -> dict[str, int]:
    answer = identity.ListRevokedTokens(pb.ListRevokedTokensRequest(), timeout=10)
    return {a.account_id: a.token_generation for a in answer.withdrawn_accounts}


def engineer(identity, admin, grade="junior") -> pb.Account:
    return identity.CreateStaffAccount(pb.CreateStaffAccountRequest(
        login="li.qiang", password=ENGINEER_PASSWORD, display_name="李强", roles=[pb.ROLE_ENGINEER], grade=grade,
        idempotency_key=uuid.uuid4().hex), metadata=admin, timeout=10).account


def set_grade(identity, admin, account_id: str, grade: str) -> pb.Account:
    return identity.SetStaffGrade(pb.SetStaffGradeRequest(account_id=account_id, grade=grade),
                                  metadata=admin, timeout=10).account


def sign_in_engineer(identity) -> str:
    return identity.SignIn(pb.SignInRequest(login="li.qiang", password=ENGINEER_PASSWORD), timeout=10).access_token


def test_a_new_grade_signs_the_engineer_out_and_the_next_sign_in_carries_it(identity, admin, revocations):
    account = engineer(identity, admin)
    phone, laptop = sign_in_engineer(identity), sign_in_engineer(identity)
    assert claims(phone)["grade"] == "junior" and "gen" not in claims(phone), "a never-withdrawn account: generation 0"
    assert who(identity, phone) == "li.qiang"   # verified and remembered before the change

    set_grade(identity, admin, account.account_id, "senior")
    assert withdrawn(identity) == {account.account_id: 1}
    assert who(identity, phone) == "li.qiang", "until the api reads the list again"
    assert revocations.refresh()
    for token in (phone, laptop):
        code, details = refused(identity, token)
        assert code == grpc.StatusCode.UNAUTHENTICATED and "sign in again" in details
    assert REGISTRY.get_sample_value("tuoguan_token_withdrawn_accounts", {"service": "identity-withdrawal-test"}) == 1

    fresh = sign_in_engineer(identity)
    assert (claims(fresh)["grade"], claims(fresh)["gen"]) == ("senior", 1)
    assert who(identity, fresh) == "li.qiang"

    # The grade the engineer holds already changes nothing: no one is signed out.
    set_grade(identity, admin, account.account_id, "senior")
    assert withdrawn(identity) == {account.account_id: 1}
    assert revocations.refresh() and who(identity, fresh) == "li.qiang"
    # A second change withdraws the tokens of the first.
    set_grade(identity, admin, account.account_id, "expert")
    assert withdrawn(identity) == {account.account_id: 2} and revocations.refresh()
    assert refused(identity, fresh)[0] == grpc.StatusCode.UNAUTHENTICATED
    assert claims(sign_in_engineer(identity))["gen"] == 2


def test_a_sign_in_that_read_the_account_before_a_grade_change_signs_a_token_that_is_refused(
        serve_identity, token_keys, revocations, admin, monkeypatch):
    """The sign-in read the old grade, then spent its time on argon2 while the admin changed the grade: the
    token it signs afterwards carries the old grade and the old generation, so it is refused like the others."""
    import identity.api

    reading, go_on = threading.Event(), threading.Event()

    class SlowPasswords(identity.api.Passwords):
        def verify(self, password_hash, password):
            # Only the sign-in checks a password here: it waits for the admin's change.
            reading.set()
            go_on.wait(10)
            return super().verify(password_hash, password)

    monkeypatch.setattr(identity.api, "Passwords", SlowPasswords)
    stub = serve_identity(verifier=auth.TokenVerifier(Path(token_keys["public"]).read_bytes(), revocations))
    account = engineer(stub, admin)
    tokens: list[str] = []
    racing = threading.Thread(target=lambda: tokens.append(sign_in_engineer(stub)))
    racing.start()
    assert reading.wait(10)
    set_grade(stub, admin, account.account_id, "senior")
    go_on.set()
    racing.join(10)
    [late] = tokens
    assert claims(late)["grade"] == "junior" and "gen" not in claims(late), "signed from the read before the change"
    assert revocations.refresh()
    assert refused(stub, late)[0] == grpc.StatusCode.UNAUTHENTICATED


def test_a_password_reset_signs_out_every_session_of_the_account_and_no_other(identity, notifier, revocations,
                                                                               identity_db):
    patient = sign_up_patient(identity)
    other = sign_up_patient(identity, "13812345678")
    thief, own = sign_in(identity, PASSWORD).access_token, sign_in(identity, PASSWORD).access_token
    bystander = sign_in(identity, PASSWORD, login=other).access_token

    request_code(identity)
    reset(identity, notifier.last_code())
    assert revocations.refresh()
    for token in (thief, own):
        assert refused(identity, token)[0] == grpc.StatusCode.UNAUTHENTICATED
    assert who(identity, bystander) == other
    fresh = sign_in(identity, NEW_PASSWORD).access_token
    assert who(identity, fresh) == patient and claims(fresh)["gen"] == 1
    [account_id] = withdrawn(identity)
    with identity_db.transaction() as cur:
        cur.execute("SELECT login FROM accounts WHERE id = %s", (uuid.UUID(account_id),))
        assert cur.fetchone()["login"] == patient


def test_a_withdrawn_account_leaves_the_list_once_no_older_token_can_be_alive(identity, admin, clock):
    """A sign-in token lives 15 minutes, a verifier allows 10 s past its expiry, and a sign-in that read the
    account before the withdrawal may sign a little after it: listed 5 minutes more."""
    account = engineer(identity, admin)
    set_grade(identity, admin, account.account_id, "senior")
    clock.advance(minutes=15 + 5, seconds=auth.CLOCK_SKEW_SECONDS - 1)
    assert withdrawn(identity) == {account.account_id: 1}
    clock.advance(seconds=2)
    assert withdrawn(identity) == {}
    # Its tokens still carry the generation: withdrawing again goes on from it.
    set_grade(identity, admin, account.account_id, "expert")
    assert withdrawn(identity) == {account.account_id: 2}
