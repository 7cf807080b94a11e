"""Engineers' rate grades against a real PostgreSQL, the server in-process:
admins set them (SetStaffGrade, or CreateStaffAccount's grade), every change
is recorded once with who made it and when, and the engineer's next sign-in
token carries the grade that prices their worklogs."""
from __future__ import annotations

import datetime as dt
import logging
import threading
import uuid

import grpc
import jwt
import psycopg
import pytest

from identity.seed import DEMO_GRADES, SEEDED_BY, seed
from identity.store import IdentityStore
from identity_testkit import PASSWORD as PATIENT_PASSWORD, sign_up_patient
from tuoguan.identity.v1 import identity_pb2 as pb
from tuoguan_common import auth
from tuoguan_common.grpc_server import FIELD_KEY, REASON_KEY

pytestmark = pytest.mark.integration

ADMIN_ID = str(uuid.uuid4())
NOW = dt.datetime(2026, 11, 27, 2, 0, tzinfo=dt.timezone.utc)
PASSWORD = "Engineer2026"


def failure(call):
    with pytest.raises(grpc.RpcError) as err:
        call()
    trailing = dict(err.value.trailing_metadata() or ())
    return err.value.code(), trailing.get(REASON_KEY), trailing.get(FIELD_KEY)


def rows(db, sql, *args):
    with db.transaction() as cur:
        cur.execute(sql, args)
        return cur.fetchall()


def changes(db):
    return rows(db, "SELECT account_id::text AS account_id, grade, set_by, set_at FROM staff_grade_changes ORDER BY id")


def stored_grade(db, account_id):
    return rows(db, "SELECT grade FROM accounts WHERE id = %s", uuid.UUID(account_id))[0]["grade"]


@pytest.fixture
def admin(issuer):
    return auth.bearer_metadata(issuer.issue(ADMIN_ID, [auth.ADMIN]))


@pytest.fixture
def identity(serve_identity):
    """Identity at a fixed time, so a change's set_at is known."""
    return serve_identity(clock=lambda: NOW)


def create_staff(stub, admin, login="li.qiang", roles=(pb.ROLE_ENGINEER,), grade="", key=None):
    return stub.CreateStaffAccount(pb.CreateStaffAccountRequest(
        login=login, password=PASSWORD, display_name="李强", roles=list(roles), grade=grade,
        idempotency_key=key or uuid.uuid4().hex), metadata=admin, timeout=10).account


def set_grade(stub, metadata, account_id, grade):
    return stub.SetStaffGrade(pb.SetStaffGradeRequest(account_id=account_id, grade=grade),
                              metadata=metadata, timeout=10).account


def sign_in(stub, login="li.qiang", password=PASSWORD):
    return stub.SignIn(pb.SignInRequest(login=login, password=password), timeout=10)


def test_an_admin_grades_an_engineer_and_the_next_sign_in_token_carries_it(identity, identity_db, admin, verifier):
    engineer = create_staff(identity, admin)
    assert engineer.grade == ""
    before = sign_in(identity)
    assert verifier.verify(before.access_token).grade == ""
    assert "grade" not in jwt.decode(before.access_token, options={"verify_signature": False})

    reply = set_grade(identity, admin, engineer.account_id, " Expert ")
    assert (reply.account_id, reply.login, reply.grade) == (engineer.account_id, "li.qiang", "expert")
    assert list(reply.roles) == [pb.ROLE_ENGINEER]

    after = sign_in(identity)
    principal = verifier.verify(after.access_token)
    assert (principal.subject, principal.grade) == (engineer.account_id, "expert")
    assert after.account.grade == "expert"
    mine = identity.GetMyAccount(pb.GetMyAccountRequest(), metadata=auth.bearer_metadata(after.access_token),
                                 timeout=10).account
    assert mine.grade == "expert"
    # The token signed before the change keeps what it was signed with.
    assert verifier.verify(before.access_token).grade == ""
    assert changes(identity_db) == [{"account_id": engineer.account_id, "grade": "expert", "set_by": ADMIN_ID,
                                     "set_at": NOW}]


def test_the_grade_it_already_has_changes_nothing_and_each_change_is_recorded_once(identity, identity_db, admin):
    engineer = create_staff(identity, admin)
    first = set_grade(identity, admin, engineer.account_id, "senior")
    again = set_grade(identity, admin, engineer.account_id, "SENIOR")
    assert first == again and again.grade == "senior"
    assert [c["grade"] for c in changes(identity_db)] == ["senior"]
    # A real change is recorded, and the latest is the grade held.
    set_grade(identity, admin, engineer.account_id, "junior")
    assert [c["grade"] for c in changes(identity_db)] == ["senior", "junior"]
    assert stored_grade(identity_db, engineer.account_id) == "junior"


def test_simultaneous_identical_changes_are_recorded_once(identity, identity_db, admin):
    engineer = create_staff(identity, admin)
    answers, start = [], threading.Barrier(8)

    def give():
        start.wait()
        answers.append(set_grade(identity, admin, engineer.account_id, "intermediate").grade)

    threads = [threading.Thread(target=give) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert answers == ["intermediate"] * 8
    assert len(changes(identity_db)) == 1


def test_a_grade_change_holds_the_account_until_it_commits(identity, identity_db, admin):
    """What makes simultaneous changes take turns: the account's row is locked
    while its grade is compared and changed (else both could see no grade)."""
    engineer = create_staff(identity, admin)
    store = IdentityStore(identity_db)
    with store.transaction() as cur:
        assert store.lock_account(cur, engineer.account_id).grade is None
        with pytest.raises(psycopg.errors.LockNotAvailable), store.transaction() as other:
            other.execute("SELECT 1 FROM accounts WHERE id = %s FOR UPDATE NOWAIT", (uuid.UUID(engineer.account_id),))


@pytest.mark.parametrize("roles", [
    [auth.ENGINEER],  # not even their own grade: that is the whole point
    [auth.DISPATCHER], [auth.FINANCE], [auth.CLINICIAN], [auth.CONSULTANT], [auth.REGISTRATION_OFFICE],
    [auth.PATIENT], [auth.DEVICE], [auth.SERVICE],
])
def test_nobody_but_an_admin_sets_a_grade(identity, identity_db, admin, issuer, roles):
    engineer = create_staff(identity, admin)
    caller = auth.bearer_metadata(issuer.issue(engineer.account_id if roles == [auth.ENGINEER] else str(uuid.uuid4()),
                                               roles))
    code, reason, _field = failure(lambda: set_grade(identity, caller, engineer.account_id, "expert"))
    assert (code, reason) == (grpc.StatusCode.PERMISSION_DENIED, "permission_denied")
    assert stored_grade(identity_db, engineer.account_id) is None
    assert changes(identity_db) == []


def test_an_admin_who_is_also_an_engineer_does_not_grade_themself(identity, identity_db, admin, issuer):
    both = create_staff(identity, admin, roles=(pb.ROLE_ENGINEER, pb.ROLE_ADMIN), grade="junior")
    themself = auth.bearer_metadata(issuer.issue(both.account_id, [auth.ADMIN, auth.ENGINEER]))
    code, reason, _field = failure(lambda: set_grade(identity, themself, both.account_id, "expert"))
    assert (code, reason) == (grpc.StatusCode.PERMISSION_DENIED, "own_grade")
    assert stored_grade(identity_db, both.account_id) == "junior"
    # Another admin may.
    assert set_grade(identity, admin, both.account_id, "expert").grade == "expert"


def test_without_a_token_it_is_unauthenticated(identity, identity_db, admin):
    engineer = create_staff(identity, admin)
    code, _reason, _field = failure(lambda: set_grade(identity, (), engineer.account_id, "expert"))
    assert code == grpc.StatusCode.UNAUTHENTICATED
    assert changes(identity_db) == []


def test_an_unknown_account_is_not_found(identity, identity_db, admin):
    code, reason, _field = failure(lambda: set_grade(identity, admin, str(uuid.uuid4()), "senior"))
    assert (code, reason) == (grpc.StatusCode.NOT_FOUND, "account_not_found")


@pytest.mark.parametrize(("account_id", "reason"), [("engineer", "account_id_format"), ("", "required")])
def test_an_account_id_that_is_no_id_is_an_invalid_argument(identity, admin, account_id, reason):
    code, got_reason, field = failure(lambda: set_grade(identity, admin, account_id, "senior"))
    assert (code, got_reason, field) == (grpc.StatusCode.INVALID_ARGUMENT, reason, "account_id")


@pytest.mark.parametrize("kind", ["patient", "dispatcher"])
def test_an_account_that_is_not_an_engineers_is_a_failed_precondition(identity, identity_db, admin, kind):
    if kind == "patient":
        sign_up_patient(identity, "13912345678")
        account_id = identity.SignIn(pb.SignInRequest(login="13912345678", password=PATIENT_PASSWORD),
                                     timeout=10).account.account_id
    else:
        account_id = create_staff(identity, admin, login="sun.wei", roles=[pb.ROLE_DISPATCHER]).account_id
    code, reason, _field = failure(lambda: set_grade(identity, admin, account_id, "senior"))
    assert (code, reason) == (grpc.StatusCode.FAILED_PRECONDITION, "not_an_engineer")
    assert stored_grade(identity_db, account_id) is None
    assert changes(identity_db) == []


@pytest.mark.parametrize(("grade", "reason"), [("principal", "unknown_grade"), ("高级", "unknown_grade"),
                                               ("", "required"), ("  ", "required")])
def test_a_bad_grade_is_an_invalid_argument_and_writes_nothing(identity, identity_db, admin, grade, reason):
    engineer = create_staff(identity, admin)
    set_grade(identity, admin, engineer.account_id, "senior")
    code, got_reason, field = failure(lambda: set_grade(identity, admin, engineer.account_id, grade))
    assert (code, got_reason, field) == (grpc.StatusCode.INVALID_ARGUMENT, reason, "grade")
    assert stored_grade(identity_db, engineer.account_id) == "senior"
    assert [c["grade"] for c in changes(identity_db)] == ["senior"]


def test_a_staff_account_opens_with_its_grade(identity, identity_db, admin, verifier):
    engineer = create_staff(identity, admin, grade="Intermediate")
    assert engineer.grade == "intermediate"
    assert verifier.verify(sign_in(identity).access_token).grade == "intermediate"
    assert changes(identity_db) == [{"account_id": engineer.account_id, "grade": "intermediate", "set_by": ADMIN_ID,
                                     "set_at": NOW}]


def test_a_repeated_account_opening_answers_the_first_and_records_its_grade_once(identity, identity_db, admin):
    key = uuid.uuid4().hex
    first = create_staff(identity, admin, grade="senior", key=key)
    assert create_staff(identity, admin, grade="senior", key=key) == first
    assert len(changes(identity_db)) == 1
    # The same key for another grade is another request.
    code, _reason, field = failure(lambda: create_staff(identity, admin, grade="expert", key=key))
    assert (code, field) == (grpc.StatusCode.INVALID_ARGUMENT, "idempotency_key")
    assert stored_grade(identity_db, first.account_id) == "senior"


@pytest.mark.parametrize(("roles", "grade", "reason"), [
    ([pb.ROLE_DISPATCHER], "senior", "not_an_engineer"),
    ([pb.ROLE_CLINICIAN, pb.ROLE_ADMIN], "junior", "not_an_engineer"),
    ([pb.ROLE_ENGINEER], "principal", "unknown_grade"),
])
def test_a_grade_only_an_engineer_may_open_with(identity, identity_db, admin, roles, grade, reason):
    code, got_reason, field = failure(lambda: create_staff(identity, admin, roles=roles, grade=grade))
    assert (code, got_reason, field) == (grpc.StatusCode.INVALID_ARGUMENT, reason, "grade")
    assert rows(identity_db, "SELECT count(*) AS n FROM accounts")[0]["n"] == 0
    assert changes(identity_db) == []


def test_only_an_engineers_token_carries_a_grade(identity, admin, verifier):
    both = create_staff(identity, admin, login="zhou.both", roles=[pb.ROLE_ENGINEER, pb.ROLE_DISPATCHER],
                        grade="expert")
    create_staff(identity, admin, login="sun.wei", roles=[pb.ROLE_DISPATCHER])
    assert verifier.verify(sign_in(identity, login="zhou.both").access_token).grade == "expert"
    dispatcher = sign_in(identity, login="sun.wei")
    assert dispatcher.account.grade == ""
    assert "grade" not in jwt.decode(dispatcher.access_token, options={"verify_signature": False})
    assert both.grade == "expert"


def test_list_staff_shows_each_engineers_grade(identity, identity_db, admin, issuer):
    seed(identity_db)
    create_staff(identity, admin)  # not graded yet
    dispatcher = auth.bearer_metadata(issuer.issue(str(uuid.uuid4()), [auth.DISPATCHER]))
    listed = identity.ListStaff(pb.ListStaffRequest(role="engineer"), metadata=dispatcher, timeout=10).accounts
    assert {a.login: a.grade for a in listed} == {"engineer": "senior", "engineer2": "intermediate", "li.qiang": ""}
    dispatchers = identity.ListStaff(pb.ListStaffRequest(role="dispatcher"), metadata=admin, timeout=10).accounts
    assert [(a.login, a.grade) for a in dispatchers] == [("dispatcher", "")]


def test_a_grade_change_is_logged_by_account_ids_only(identity, admin, caplog):
    engineer = create_staff(identity, admin)
    caplog.set_level(logging.INFO, logger="identity.api")
    set_grade(identity, admin, engineer.account_id, "senior")
    set_grade(identity, admin, engineer.account_id, "senior")  # no change, nothing to log
    logged = [r for r in caplog.records if r.getMessage() == "staff grade set"]
    assert len(logged) == 1
    record = logged[0]
    assert (record.account_id, record.grade, record.previous_grade, record.by) == \
        (engineer.account_id, "senior", None, ADMIN_ID)
    everything = " ".join(f"{r.getMessage()} {vars(r)}" for r in caplog.records)
    assert "李强" not in everything and "li.qiang" not in everything


# The seed.

def test_the_demo_engineers_are_seeded_with_their_grades(identity, identity_db, verifier):
    seed(identity_db)
    assert DEMO_GRADES == {"engineer": "senior", "engineer2": "intermediate"}
    for login, grade in DEMO_GRADES.items():
        assert verifier.verify(sign_in(identity, login=login, password="Engineer1234").access_token).grade == grade
    recorded = changes(identity_db)
    assert sorted(c["grade"] for c in recorded) == ["intermediate", "senior"]
    assert {c["set_by"] for c in recorded} == {SEEDED_BY}
    # Nobody else got one.
    assert rows(identity_db, "SELECT login FROM accounts WHERE grade IS NOT NULL ORDER BY login") == \
        [{"login": "engineer"}, {"login": "engineer2"}]
    assert seed(identity_db) == 0
    assert len(changes(identity_db)) == 2


def test_seeding_again_grades_an_ungraded_demo_engineer_and_keeps_an_admins_grade(identity, identity_db, admin):
    seed(identity_db)
    # As a database seeded before grades existed: the demo engineers without one.
    with identity_db.transaction() as cur:
        cur.execute("UPDATE accounts SET grade = NULL")
        cur.execute("DELETE FROM staff_grade_changes")
    engineer2 = {a.login: a.account_id for a in identity.ListStaff(
        pb.ListStaffRequest(role="engineer"), metadata=admin, timeout=10).accounts}["engineer2"]
    set_grade(identity, admin, engineer2, "expert")

    assert seed(identity_db) == 0
    assert rows(identity_db, "SELECT login, grade FROM accounts WHERE grade IS NOT NULL ORDER BY login") == \
        [{"login": "engineer", "grade": "senior"}, {"login": "engineer2", "grade": "expert"}]
    assert [(c["grade"], c["set_by"]) for c in changes(identity_db)] == [("expert", ADMIN_ID), ("senior", SEEDED_BY)]
    seed(identity_db)
    assert len(changes(identity_db)) == 2
