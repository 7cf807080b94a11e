"""Identity's gRPC API against a real PostgreSQL, the server in-process."""
from __future__ import annotations

import datetime as dt
import logging
import secrets
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest

from identity.api import IdentityServicer
from identity.exceptions import BadCredentials, TooManyAttempts
from identity.notifications import LogNotifier
from identity.passwords import Passwords
from identity.seed import DEMO_PATIENTS, DEMO_STAFF, seed
from identity.store import IdentityStore
from identity_testkit import sign_up_code
from tuoguan.identity.v1 import identity_pb2 as pb
from tuoguan_common import auth, metrics
from tuoguan_common.grpc_server import FIELD_KEY, REASON_KEY, RETRY_AFTER_KEY

pytestmark = pytest.mark.integration

PHONE = "13912345678"
PASSWORD = "Secret2026"


def sign_up(stub, phone=PHONE, password=PASSWORD, name="赵雅琴", key=None, code=None):
    """Signs up with ``code``, or with a sign-up code asked for now."""
    return stub.SignUpPatient(pb.SignUpPatientRequest(
        phone=phone, password=password, display_name=name, idempotency_key=key or uuid.uuid4().hex,
        code=code or sign_up_code(stub, phone),
    ), timeout=10)


def sign_in(stub, login=PHONE, password=PASSWORD):
    return stub.SignIn(pb.SignInRequest(login=login, password=password), timeout=10)


def failure(call):
    with pytest.raises(grpc.RpcError) as err:
        call()
    trailing = dict(err.value.trailing_metadata() or ())
    return err.value.code(), trailing.get(REASON_KEY), trailing.get(FIELD_KEY), err.value.details()


def rows(db, sql, *args):
    with db.transaction() as cur:
        cur.execute(sql, args)
        return cur.fetchall()


def test_sign_up_stores_an_argon2id_hash_never_the_password(identity, identity_db):
    account = sign_up(identity).account
    assert account.login == PHONE and account.display_name == "赵雅琴"
    assert list(account.roles) == [pb.ROLE_PATIENT]
    [row] = rows(identity_db, "SELECT password_hash, a::text AS everything FROM accounts a")
    assert row["password_hash"].startswith("$argon2id$")
    assert PASSWORD not in row["everything"]
    keys = rows(identity_db, "SELECT k::text AS everything FROM idempotency_keys k")
    assert keys and all(PASSWORD not in k["everything"] for k in keys)


@pytest.mark.parametrize("changes,field,reason", [
    ({"phone": "12345678901"}, "phone", "phone_format"),
    ({"phone": ""}, "phone", "required"),
    ({"password": "short1"}, "password", "password_too_short"),
    ({"password": "onlyletters"}, "password", "password_letters_and_digits"),
    ({"password": "Woaini1314"}, "password", "password_common"),
    ({"password": f"Zx{PHONE}"}, "password", "password_contains_phone"),
    ({"name": "名" * 41}, "display_name", "display_name_length"),
    ({"key": " "}, "idempotency_key", "required"),
    # PostgreSQL's text cannot hold NUL: refused as the field's fault, not failed as INTERNAL.
    ({"name": "赵\x00雅琴"}, "display_name", "display_name_characters"),
    ({"key": "signup\x00"}, "idempotency_key", "control_characters"),
    ({"code": " "}, "code", "required"),
    ({"code": "12a456"}, "code", "sign_up_code_invalid"),
])
def test_bad_sign_up_is_invalid_argument_naming_the_field(identity, identity_db, changes, field, reason):
    # Judged before any code is looked up: a well-formed code, whichever, is as good here.
    code, got_reason, got_field, _ = failure(lambda: sign_up(identity, **{"code": "000000", **changes}))
    assert (code, got_field, got_reason) == (grpc.StatusCode.INVALID_ARGUMENT, field, reason)
    assert rows(identity_db, "SELECT 1 FROM accounts") == []


@pytest.mark.parametrize("password,reason", [
    ("qq123456", "password_common"), ("PASSWORD1", "password_common"),
    (f"a{PHONE}", "password_contains_phone"), (f"Zhao{PHONE[-8:]}", "password_contains_phone"),
])
def test_a_common_or_personal_password_opens_no_account_and_spends_no_code(identity, identity_db, password, reason):
    code = sign_up_code(identity)
    before = rows(identity_db, "SELECT p::text AS everything FROM password_reset_codes p")
    status, got_reason, field, details = failure(lambda: sign_up(identity, password=password, code=code))
    assert (status, got_reason, field) == (grpc.StatusCode.INVALID_ARGUMENT, reason, "password")
    assert password not in details and PHONE not in details
    assert rows(identity_db, "SELECT 1 FROM accounts") == []
    assert rows(identity_db, "SELECT 1 FROM idempotency_keys") == []
    assert rows(identity_db, "SELECT p::text AS everything FROM password_reset_codes p") == before
    # The code still opens the account, with a password of no list.
    assert sign_up(identity, code=code).account.login == PHONE


def test_passwords_set_before_the_policy_still_sign_in(identity, identity_db):
    """Only new passwords are held to the lists: an account whose password is
    listed now (set before, or a demo one) signs in as it always did."""
    sign_up(identity)
    with identity_db.transaction() as cur:
        cur.execute("UPDATE accounts SET password_hash = %s WHERE login = %s",
                    (Passwords().hash("password1"), PHONE))
    assert sign_in(identity, password="password1").access_token


def test_a_phone_number_signs_up_once(identity):
    sign_up(identity)
    code, reason, _, _ = failure(lambda: sign_up(identity, name="另一个人"))
    assert (code, reason) == (grpc.StatusCode.ALREADY_EXISTS, "phone_taken")


def test_repeating_a_sign_up_returns_the_first_answer(identity, identity_db):
    # A retry resends the request as it was: the same code, spent by the first.
    code = sign_up_code(identity)
    first = sign_up(identity, key="signup-1", code=code).account
    again = sign_up(identity, key="signup-1", code=code).account
    assert again == first
    assert len(rows(identity_db, "SELECT 1 FROM accounts")) == 1
    # The same key for another request, or without the right password, is refused.
    for changes in ({"name": "别的名字"}, {"password": "Other2026x"}):
        code_, _, field, _ = failure(lambda: sign_up(identity, key="signup-1", code=code, **changes))
        assert (code_, field) == (grpc.StatusCode.INVALID_ARGUMENT, "idempotency_key")


def test_replaying_a_sign_up_to_guess_its_password_is_throttled_as_signing_in_is(identity):
    code = sign_up_code(identity)
    sign_up(identity, key="signup-1", code=code)
    for _ in range(5):
        status, _, field, _ = failure(lambda: sign_up(identity, key="signup-1", password="Guess2026x", code=code))
        assert (status, field) == (grpc.StatusCode.INVALID_ARGUMENT, "idempotency_key")
    # The sixth guess is refused before the password is checked, and so is a stranger's sign-in: one count.
    assert failure(lambda: sign_up(identity, key="signup-1", password=PASSWORD, code=code))[1] == "too_many_attempts"
    assert failure(lambda: sign_in(identity))[1] == "too_many_attempts"


def test_a_retried_sign_up_with_its_password_forgets_the_failures_before_it(identity):
    code = sign_up_code(identity)
    sign_up(identity, key="signup-1", code=code)
    for _ in range(4):
        failure(lambda: sign_in(identity, password="Wrong2026"))
    assert sign_up(identity, key="signup-1", code=code).account.login == PHONE
    for _ in range(4):
        failure(lambda: sign_in(identity, password="Wrong2026"))
    assert sign_in(identity).access_token


def test_sign_in_issues_a_token_the_services_accept(identity, verifier):
    account = sign_up(identity).account
    reply = sign_in(identity)
    assert reply.account == account and reply.expires_in_seconds == auth.DEFAULT_TTL_SECONDS
    principal = verifier.verify(reply.access_token)
    assert principal.subject == account.account_id and principal.roles == {auth.PATIENT}
    mine = identity.GetMyAccount(pb.GetMyAccountRequest(), metadata=auth.bearer_metadata(reply.access_token))
    assert mine.account == account


def test_my_account_needs_a_token(identity, issuer):
    code, _, _, _ = failure(lambda: identity.GetMyAccount(pb.GetMyAccountRequest()))
    assert code == grpc.StatusCode.UNAUTHENTICATED
    stranger = issuer.issue(str(uuid.uuid4()), [auth.PATIENT])
    code, reason, _, _ = failure(
        lambda: identity.GetMyAccount(pb.GetMyAccountRequest(), metadata=auth.bearer_metadata(stranger)))
    assert (code, reason) == (grpc.StatusCode.NOT_FOUND, "account_not_found")


def test_wrong_password_and_unknown_login_get_the_same_answer(identity):
    sign_up(identity)
    wrong_password = failure(lambda: sign_in(identity, password="Wrong2026"))
    unknown_login = failure(lambda: sign_in(identity, login="13900000000"))
    assert wrong_password == unknown_login
    assert wrong_password[:2] == (grpc.StatusCode.UNAUTHENTICATED, "bad_credentials")


def test_five_failures_lock_the_login_for_the_window(identity, identity_db):
    sign_up(identity)
    sign_up(identity, phone="13700000000", key="other")
    before = metrics.IDENTITY_SIGN_INS.labels("too_many_attempts")._value.get()
    for _ in range(5):
        assert failure(lambda: sign_in(identity, password="Wrong2026"))[1] == "bad_credentials"
    # Locked even with the right password, or guessing would carry on.
    code, reason, _, _ = failure(lambda: sign_in(identity))
    assert (code, reason) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "too_many_attempts")
    assert metrics.IDENTITY_SIGN_INS.labels("too_many_attempts")._value.get() == before + 1
    # Another login is not affected.
    assert sign_in(identity, login="13700000000").access_token
    # Once the failures are older than five minutes, the right password works again.
    with identity_db.transaction() as cur:
        cur.execute("UPDATE sign_in_failures SET failed_at = failed_at - interval '6 minutes'")
    assert sign_in(identity).access_token


@pytest.mark.parametrize("login,reason", [
    ("office\x00", "control_characters"),
    # Over the btree index's row size (sign_in_failures_login), as random text that does not compress.
    (secrets.token_hex(1600), "too_long"),
    ("a" * 65, "too_long"),
])
def test_a_login_that_can_be_no_login_is_refused_before_anything_is_written(identity, identity_db, login, reason):
    code, got_reason, field, _ = failure(lambda: sign_in(identity, login=login))
    assert (code, field, got_reason) == (grpc.StatusCode.INVALID_ARGUMENT, "login", reason)
    assert rows(identity_db, "SELECT 1 FROM sign_in_failures") == []
    # The longest a login may be is still a sign-in attempt like any other.
    assert failure(lambda: sign_in(identity, login="a" * 64))[1] == "bad_credentials"


def test_a_locked_sign_in_knows_how_long_it_waits(identity_db, issuer):
    now = [dt.datetime(2026, 12, 1, 8, 0, tzinfo=dt.timezone.utc)]
    servicer = IdentityServicer(IdentityStore(identity_db), issuer, Passwords(), notifier=LogNotifier(),
                                reset_key=b"k" * 32, clock=lambda: now[0])
    request = pb.SignInRequest(login="13900000000", password="Wrong2026")
    for _ in range(5):
        with pytest.raises(BadCredentials):
            servicer.SignIn(request, None)
        now[0] += dt.timedelta(seconds=50)
    # The first failure is 250 s old: the lock lifts when it is 300 s old.
    with pytest.raises(TooManyAttempts) as locked:
        servicer.SignIn(request, None)
    assert locked.value.retry_after_seconds == 50
    now[0] += dt.timedelta(seconds=50)
    with pytest.raises(BadCredentials):
        servicer.SignIn(request, None)


def test_a_locked_sign_in_sends_its_wait_as_trailing_metadata(identity):
    for _ in range(5):
        failure(lambda: sign_in(identity, login="nobody"))
    with pytest.raises(grpc.RpcError) as locked:
        sign_in(identity, login="nobody")
    assert locked.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert 290 <= int(dict(locked.value.trailing_metadata())[RETRY_AFTER_KEY]) <= 300


def test_success_forgets_earlier_failures(identity):
    sign_up(identity)
    for _ in range(4):
        failure(lambda: sign_in(identity, password="Wrong2026"))
    sign_in(identity)
    for _ in range(4):
        failure(lambda: sign_in(identity, password="Wrong2026"))
    assert sign_in(identity).access_token


def test_unknown_logins_are_throttled_too(identity):
    for _ in range(5):
        failure(lambda: sign_in(identity, login="nobody"))
    assert failure(lambda: sign_in(identity, login="nobody"))[1] == "too_many_attempts"


def test_parallel_guesses_cannot_slip_past_the_throttle(identity):
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=16) as pool:
        reasons = list(pool.map(lambda _: failure(lambda: sign_in(identity, login="guessed"))[1], range(16)))
    assert reasons.count("bad_credentials") <= 5
    assert reasons.count("too_many_attempts") >= 11


def _staff_request(**changes):
    fields = {"login": "zhao.lei", "password": "Clinic2026", "display_name": "赵磊",
              "roles": [pb.ROLE_CLINICIAN, pb.ROLE_ENGINEER], "idempotency_key": uuid.uuid4().hex}
    fields.update(changes)
    return pb.CreateStaffAccountRequest(**fields)


def test_only_admins_open_staff_accounts(identity, issuer, verifier):
    patient = auth.bearer_metadata(issuer.issue(str(uuid.uuid4()), [auth.PATIENT]))
    admin = auth.bearer_metadata(issuer.issue(str(uuid.uuid4()), [auth.ADMIN]))
    assert failure(lambda: identity.CreateStaffAccount(_staff_request()))[0] == grpc.StatusCode.UNAUTHENTICATED
    assert failure(lambda: identity.CreateStaffAccount(_staff_request(), metadata=patient))[0] == \
        grpc.StatusCode.PERMISSION_DENIED
    created = identity.CreateStaffAccount(_staff_request(), metadata=admin).account
    assert set(created.roles) == {pb.ROLE_CLINICIAN, pb.ROLE_ENGINEER}
    token = sign_in(identity, login="Zhao.Lei", password="Clinic2026").access_token
    assert verifier.verify(token).roles == {auth.CLINICIAN, auth.ENGINEER}
    code, reason, _, _ = failure(lambda: identity.CreateStaffAccount(_staff_request(), metadata=admin))
    assert (code, reason) == (grpc.StatusCode.ALREADY_EXISTS, "login_taken")
    for bad, field in ((_staff_request(roles=[pb.ROLE_PATIENT]), "roles"),
                       (_staff_request(roles=[]), "roles"),
                       (_staff_request(login="13800000009"), "login")):
        code, _, got_field, _ = failure(lambda: identity.CreateStaffAccount(bad, metadata=admin))
        assert (code, got_field) == (grpc.StatusCode.INVALID_ARGUMENT, field)


@pytest.mark.parametrize("password,reason", [
    ("Zhao.Lei2026", "password_contains_login"), ("1qaz2wsx", "password_common"), ("abc12345", "password_common"),
])
def test_a_staff_account_with_a_common_password_or_one_holding_its_login_is_not_opened(
        identity, issuer, identity_db, password, reason):
    admin = auth.bearer_metadata(issuer.issue(str(uuid.uuid4()), [auth.ADMIN]))
    code, got_reason, field, _ = failure(
        lambda: identity.CreateStaffAccount(_staff_request(password=password), metadata=admin))
    assert (code, got_reason, field) == (grpc.StatusCode.INVALID_ARGUMENT, reason, "password")
    assert rows(identity_db, "SELECT login FROM accounts") == []
    assert rows(identity_db, "SELECT key FROM idempotency_keys") == []


@pytest.mark.parametrize("roles", [[pb.ROLE_DEVICE], [pb.ROLE_ENGINEER, pb.ROLE_DEVICE], [pb.ROLE_PATIENT]])
def test_a_person_cannot_be_given_a_machines_or_a_patients_role(identity, issuer, identity_db, roles):
    """``device`` is a machine's role (IssueDeviceToken): a person holding it could not sign out and would act
    with a machine's rights. Refused as ``patient`` is, before anything is written."""
    admin = auth.bearer_metadata(issuer.issue(str(uuid.uuid4()), [auth.ADMIN]))
    code, reason, field, details = failure(
        lambda: identity.CreateStaffAccount(_staff_request(roles=roles), metadata=admin))
    assert (code, reason, field) == (grpc.StatusCode.INVALID_ARGUMENT, "role_not_staff", "roles")
    assert "device" not in details.split("choose from")[1]
    assert rows(identity_db, "SELECT login FROM accounts") == []
    assert rows(identity_db, "SELECT key FROM idempotency_keys") == []


def test_seed_is_idempotent_and_every_demo_account_signs_in(identity, identity_db, verifier):
    assert seed(identity_db) == len(DEMO_PATIENTS) + len(DEMO_STAFF)
    assert seed(identity_db) == 0
    for phone, password, name in DEMO_PATIENTS:
        reply = sign_in(identity, login=phone, password=password)
        assert reply.account.display_name == name
        assert verifier.verify(reply.access_token).roles == {auth.PATIENT}
    for login, password, _name, roles in DEMO_STAFF:
        assert verifier.verify(sign_in(identity, login=login, password=password).access_token).roles == set(roles)


def test_no_phone_number_name_or_password_reaches_the_logs(identity, caplog):
    caplog.set_level(logging.DEBUG)
    sign_up(identity)
    sign_in(identity)
    failure(lambda: sign_in(identity, password="Wrong2026"))
    logged = " ".join(f"{r.getMessage()} {vars(r)}" for r in caplog.records)
    assert "sign-in" in logged
    for secret in (PHONE, PASSWORD, "Wrong2026", "赵雅琴"):
        assert secret not in logged


def test_copies_of_a_sign_up_sent_at_once_all_get_its_first_answer(identity, identity_db):
    # A client resending at once: each copy's password check holds a place in the login's count until it
    # ends. Before, the sixth copy found the login locked and was told "too many failed sign-ins".
    code = sign_up_code(identity)
    first = sign_up(identity, key="signup-1", code=code).account
    with ThreadPoolExecutor(12) as pool:
        copies = list(pool.map(lambda _: sign_up(identity, key="signup-1", code=code).account, range(12)))
    assert copies == [first] * 12
    assert len(rows(identity_db, "SELECT 1 FROM accounts")) == 1
    assert rows(identity_db, "SELECT 1 FROM sign_in_failures") == []


def test_replays_of_a_locked_login_wait_only_while_few_wait(serve_identity, monkeypatch):
    # Each waiting replay holds one of the api's threads: past MAX_WAITING_REPLAYS they are refused at once.
    from identity import api as identity_api
    monkeypatch.setattr(identity_api, "MAX_WAITING_REPLAYS", 0)
    stub = serve_identity()
    code = sign_up_code(stub)
    sign_up(stub, key="signup-1", code=code)
    for _ in range(5):
        failure(lambda: sign_up(stub, key="signup-1", password="Guess2026x", code=code))
    started = time.monotonic()
    assert failure(lambda: sign_up(stub, key="signup-1", code=code))[1] == "too_many_attempts"
    assert time.monotonic() - started < identity_api.REPLAY_PATIENCE_SECONDS / 2


def test_a_replay_of_a_login_locked_by_failures_a_while_ago_is_refused_at_once(serve_identity, identity_db):
    # Nothing is in flight: the count is failures only. Before, the replay waited its 3 s for nothing.
    stub = serve_identity()
    code = sign_up_code(stub)
    sign_up(stub, key="signup-1", code=code)
    for _ in range(5):
        failure(lambda: sign_up(stub, key="signup-1", password="Guess2026x", code=code))
    with identity_db.transaction() as cur:
        cur.execute("UPDATE sign_in_failures SET failed_at = failed_at - interval '1 minute'")
    started = time.monotonic()
    assert failure(lambda: sign_up(stub, key="signup-1", code=code))[1] == "too_many_attempts"
    assert time.monotonic() - started < 1.5
