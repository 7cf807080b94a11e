"""ListStaff against a real PostgreSQL, the server in-process: dispatchers and
admins list the staff accounts holding a role (the engineers a ticket is
assigned to); nobody else may, and patients are never listed."""
from __future__ import annotations

import uuid

import grpc
import pytest

from identity.seed import DEMO_STAFF, seed
from tuoguan.identity.v1 import identity_pb2 as pb
from tuoguan_common import auth
from tuoguan_common.grpc_server import FIELD_KEY, REASON_KEY

pytestmark = pytest.mark.integration


def token_of(issuer, *roles):
    return auth.bearer_metadata(issuer.issue(str(uuid.uuid4()), list(roles)))


def list_staff(stub, metadata, role="engineer"):
    return list(stub.ListStaff(pb.ListStaffRequest(role=role), metadata=metadata, timeout=10).accounts)


def failure(call):
    with pytest.raises(grpc.RpcError) as err:
        call()
    trailing = dict(err.value.trailing_metadata() or ())
    return err.value.code(), trailing.get(REASON_KEY), trailing.get(FIELD_KEY)


@pytest.fixture
def seeded(identity, identity_db):
    seed(identity_db)
    return identity


def demo_logins(role: str) -> set[str]:
    return {login for login, _password, _name, roles in DEMO_STAFF if role in roles}


@pytest.mark.parametrize("caller", [auth.DISPATCHER, auth.ADMIN])
def test_dispatchers_and_admins_list_the_engineers(seeded, issuer, caller):
    engineers = list_staff(seeded, token_of(issuer, caller))
    assert {a.login for a in engineers} == demo_logins(auth.ENGINEER) == {"engineer", "engineer2"}
    names = {name for login, _password, name, _roles in DEMO_STAFF if login in ("engineer", "engineer2")}
    assert {a.display_name for a in engineers} == names
    for account in engineers:
        assert pb.ROLE_ENGINEER in account.roles
        uuid.UUID(account.account_id)


def test_the_ids_listed_are_the_ids_tokens_carry(seeded, issuer, verifier):
    """What a dispatcher assigns to is the subject of the engineer's own token."""
    engineers = {a.login: a.account_id for a in list_staff(seeded, token_of(issuer, auth.DISPATCHER))}
    reply = seeded.SignIn(pb.SignInRequest(login="engineer", password="Engineer1234"), timeout=10)
    assert verifier.verify(reply.access_token).subject == engineers["engineer"] == reply.account.account_id


@pytest.mark.parametrize("role", sorted({r for *_rest, roles in DEMO_STAFF for r in roles}))
def test_each_staff_role_lists_exactly_its_accounts(seeded, issuer, role):
    listed = list_staff(seeded, token_of(issuer, auth.ADMIN), role=role)
    assert {a.login for a in listed} == demo_logins(role)


def test_an_account_with_several_roles_is_listed_under_each_and_in_name_order(seeded, issuer):
    admin = token_of(issuer, auth.ADMIN)
    for login, name in (("zz.both", "安然"), ("aa.both", "钟毅")):
        seeded.CreateStaffAccount(pb.CreateStaffAccountRequest(
            login=login, password="Both2026x", display_name=name, roles=[pb.ROLE_ENGINEER, pb.ROLE_DISPATCHER],
            idempotency_key=uuid.uuid4().hex), metadata=admin, timeout=10)
    engineers = list_staff(seeded, admin, role="engineer")
    dispatchers = list_staff(seeded, admin, role="dispatcher")
    assert {"zz.both", "aa.both"} <= {a.login for a in engineers}
    assert {"zz.both", "aa.both", "dispatcher"} == {a.login for a in dispatchers}
    names = [a.display_name for a in engineers]
    assert names == sorted(names)
    both = next(a for a in engineers if a.login == "zz.both")
    assert set(both.roles) == {pb.ROLE_ENGINEER, pb.ROLE_DISPATCHER}


def test_a_role_nobody_holds_lists_nobody(seeded, issuer):
    assert list_staff(seeded, token_of(issuer, auth.ADMIN), role="consultant") == []


def test_the_role_is_read_in_any_case_and_without_spaces(seeded, issuer):
    assert {a.login for a in list_staff(seeded, token_of(issuer, auth.DISPATCHER), role=" Engineer ")} == \
        demo_logins(auth.ENGINEER)


@pytest.mark.parametrize("roles", [
    [auth.PATIENT], [auth.CLINICIAN], [auth.ENGINEER], [auth.REGISTRATION_OFFICE], [auth.FINANCE],
    [auth.CONSULTANT], [auth.DEVICE], [auth.SERVICE],
])
def test_nobody_else_lists_staff(seeded, issuer, roles):
    code, reason, _field = failure(lambda: list_staff(seeded, token_of(issuer, *roles)))
    assert (code, reason) == (grpc.StatusCode.PERMISSION_DENIED, "permission_denied")


def test_without_a_token_it_is_unauthenticated(seeded):
    code, _reason, _field = failure(lambda: list_staff(seeded, ()))
    assert code == grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize(("role", "reason"), [
    ("", "required"), ("   ", "required"), ("wizard", "unknown_role"), ("ROLE_ENGINEER", "unknown_role"),
    ("engineers", "unknown_role"), ("5", "unknown_role"),
    # Patients are not staff: their logins are phone numbers, never listed.
    ("patient", "role_not_staff"),
    # Services act on their own behalf, and devices with an admin's token: they have no accounts.
    ("service", "role_not_staff"), ("device", "role_not_staff"),
])
def test_an_unknown_or_non_staff_role_is_an_invalid_argument(seeded, issuer, role, reason):
    code, got_reason, field = failure(lambda: list_staff(seeded, token_of(issuer, auth.DISPATCHER), role=role))
    assert (code, got_reason, field) == (grpc.StatusCode.INVALID_ARGUMENT, reason, "role")


def test_a_patient_is_never_listed_even_by_an_admin(seeded, issuer):
    admin = token_of(issuer, auth.ADMIN)
    everyone = {a.login for role in sorted(auth.ROLES - {auth.PATIENT, auth.SERVICE, auth.DEVICE})
                for a in list_staff(seeded, admin, role=role)}
    assert everyone == {login for login, *_ in DEMO_STAFF}
    assert not any(login.isdigit() for login in everyone)
