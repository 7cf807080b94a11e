"""An assignment names an engineer, asked of the REAL identity api: identity on a database of its own with the
demo staff seeded (identity.seed.DEMO_STAFF), ticketing's api wired to it as at start-up (IDENTITY_ADDR, no
stand-in), people signed in through identity. The rule's cases with a stand-in are in test_ticketing_assignee.py.
"""
from __future__ import annotations

import os
import uuid
from dataclasses import dataclass

import grpc
import pytest
from identity.api import register as register_identity
from identity.migrate import MIGRATIONS_DIR as IDENTITY_MIGRATIONS
from identity.seed import DEMO_STAFF, seed as seed_identity
from ticketing.api import register
from ticketing.config import TicketingConfig
from ticketing_testkit import ALWAYS, change, open_request, outbox, refused, ticket_events, ticket_row
from tuoguan.identity.v1 import identity_pb2, identity_pb2_grpc
from tuoguan.ticketing.v1 import ticketing_pb2 as pb
from tuoguan.ticketing.v1 import ticketing_pb2_grpc as pb_grpc
from tuoguan_common import auth
from tuoguan_common.config import Settings
from tuoguan_common.grpc_server import build_server

pytestmark = pytest.mark.integration

PASSWORDS = {login: password for login, password, _name, _roles in DEMO_STAFF}


@dataclass
class Platform:
    identity: identity_pb2_grpc.IdentityServiceStub
    ticketing: pb_grpc.TicketingServiceStub
    identity_server: grpc.Server
    identity_up: bool = True

    def stop_identity(self) -> None:
        self.identity_server.stop(0).wait()
        self.identity_up = False

    def sign_in(self, login: str, password: str | None = None) -> tuple[str, tuple]:
        """The account id and the metadata of a token identity signed for the login."""
        reply = self.identity.SignIn(identity_pb2.SignInRequest(login=login, password=password or PASSWORDS[login]),
                                     timeout=10)
        md = auth.bearer_metadata(reply.access_token)
        me = self.identity.GetMyAccount(identity_pb2.GetMyAccountRequest(), metadata=md, timeout=10).account
        return me.account_id, md


@pytest.fixture
def platform(make_database, database, issuer, verifier, monkeypatch):
    """identity (real, seeded) and ticketing, which finds identity at IDENTITY_ADDR as its api does."""
    identity_db = make_database("identity", IDENTITY_MIGRATIONS)
    seed_identity(identity_db)
    settings = Settings.from_env("identity", grpc_port=0, metrics_port=0)
    identity_server, identity_port = build_server(
        service="identity", register=lambda srv: register_identity(srv, settings, identity_db, issuer=issuer),
        verifier=verifier, port=0, host="127.0.0.1")
    identity_server.start()
    monkeypatch.setenv("IDENTITY_ADDR", f"127.0.0.1:{identity_port}")
    # The engineers' list kept a minute: an engineer created meanwhile is found by asking again on the miss.
    config = TicketingConfig(staff_cache_seconds=60, identity_timeout_seconds=2)
    ticketing_server, ticketing_port = build_server(
        service="ticketing", register=lambda srv: register(srv, None, database, config), verifier=verifier,
        port=0, host="127.0.0.1")
    ticketing_server.start()
    identity_channel = grpc.insecure_channel(f"127.0.0.1:{identity_port}")
    ticketing_channel = grpc.insecure_channel(f"127.0.0.1:{ticketing_port}")
    running = Platform(identity_pb2_grpc.IdentityServiceStub(identity_channel),
                       pb_grpc.TicketingServiceStub(ticketing_channel), identity_server)
    yield running
    ticketing_channel.close()
    identity_channel.close()
    ticketing_server.stop(0).wait()
    if running.identity_up:
        identity_server.stop(0).wait()


def opened(platform: Platform, md) -> str:
    return platform.ticketing.OpenTicket(open_request(ALWAYS), metadata=md, timeout=10).ticket.ticket_id


def assign(platform: Platform, md, ticket_id: str, assignee_id: str) -> pb.Ticket:
    return platform.ticketing.ChangeTicket(change(ticket_id, pb.TICKET_ACTION_ASSIGN, assignee_id=assignee_id),
                                           metadata=md, timeout=10).ticket


def assert_unassigned(database, ticket_id: str) -> None:
    row = ticket_row(database, ticket_id)
    assert (row["status"], row["assignee_id"]) == ("new", None)
    assert ticket_events(database, ticket_id) == ["opened"]
    assert outbox(database, "TicketAssigned", ticket_id=ticket_id) == []


def test_the_seeded_engineer_is_assigned_and_the_clinician_or_an_unknown_account_is_refused(platform, database):
    clinician_id, clinician = platform.sign_in("clinician")
    _, dispatcher = platform.sign_in("dispatcher")
    engineer_id, engineer = platform.sign_in("engineer")
    for assignee in (clinician_id, str(uuid.uuid4())):
        tid = opened(platform, clinician)
        r = refused(platform.ticketing.ChangeTicket, change(tid, pb.TICKET_ACTION_ASSIGN, assignee_id=assignee),
                    metadata=dispatcher, timeout=10)
        assert (r.code, r.reason, r.field) == (grpc.StatusCode.FAILED_PRECONDITION, "assignee_not_an_engineer",
                                               "assignee_id")
        assert_unassigned(database, tid)
    tid = opened(platform, clinician)
    ticket = assign(platform, dispatcher, tid, engineer_id)
    assert (ticket.status, ticket.assignee_id) == (pb.TICKET_STATUS_ASSIGNED, engineer_id)
    # In the engineer's queue, theirs to start.
    queue = platform.ticketing.ListTickets(pb.ListTicketsRequest(view=pb.TICKET_VIEW_QUEUE), metadata=engineer,
                                           timeout=10).tickets
    assert tid in [t.ticket_id for t in queue]
    assert platform.ticketing.ChangeTicket(change(tid, pb.TICKET_ACTION_START), metadata=engineer,
                                           timeout=10).ticket.status == pb.TICKET_STATUS_IN_PROGRESS
    # The admin assigns too (identity lets admins list the engineers), the second engineer here.
    _, admin = platform.sign_in("admin")
    second_id, _ = platform.sign_in("engineer2")
    assert assign(platform, admin, opened(platform, clinician), second_id).assignee_id == second_id


def with_the_list_fetched(platform) -> tuple[str, tuple, str, str]:
    """The clinician's id, the dispatcher (whose first assignment, of the engineer, has just fetched the
    engineers' list), a new ticket of the clinician's and the engineer's id."""
    clinician_id, clinician = platform.sign_in("clinician")
    _, dispatcher = platform.sign_in("dispatcher")
    engineer_id, _ = platform.sign_in("engineer")
    assign(platform, dispatcher, opened(platform, clinician), engineer_id)
    return clinician_id, dispatcher, opened(platform, clinician), engineer_id


def test_an_engineer_created_after_the_list_was_fetched_is_assigned_at_once(platform, database):
    clinician_id, dispatcher, tid, _ = with_the_list_fetched(platform)
    r = refused(platform.ticketing.ChangeTicket, change(tid, pb.TICKET_ACTION_ASSIGN, assignee_id=clinician_id),
                metadata=dispatcher, timeout=10)                                  # and again, not holding them
    assert r.reason == "assignee_not_an_engineer"
    _, admin = platform.sign_in("admin")
    created = platform.identity.CreateStaffAccount(identity_pb2.CreateStaffAccountRequest(
        login=f"eng-{uuid.uuid4().hex[:8]}", password="Engineer1234", display_name="新工程师",
        roles=[identity_pb2.ROLE_ENGINEER], grade="junior", idempotency_key=str(uuid.uuid4())),
        metadata=admin, timeout=10).account
    assert assign(platform, dispatcher, tid, created.account_id).assignee_id == created.account_id


def test_identity_down_refuses_the_assignment_as_unavailable_and_writes_nothing(platform, database):
    clinician_id, dispatcher, tid, engineer_id = with_the_list_fetched(platform)
    platform.stop_identity()
    # An account the list does not hold must be asked about: identity does not answer, nobody is assigned.
    for assignee in (str(uuid.uuid4()), clinician_id):
        r = refused(platform.ticketing.ChangeTicket, change(tid, pb.TICKET_ACTION_ASSIGN, assignee_id=assignee),
                    metadata=dispatcher, timeout=10)
        assert (r.code, r.reason) == (grpc.StatusCode.UNAVAILABLE, "staff_directory_unavailable")
        assert_unassigned(database, tid)
    # The engineer the list fetched a moment ago holds is still assignable: the list is kept briefly.
    assert assign(platform, dispatcher, tid, engineer_id).assignee_id == engineer_id


def test_identity_down_with_no_list_kept_refuses_even_an_engineer(make_database, database, verifier, issuer,
                                                                  monkeypatch):
    """Started while identity is down (or its list gone stale): no assignment is made unchecked."""
    monkeypatch.setenv("IDENTITY_ADDR", "127.0.0.1:1")     # nothing listens there
    server, port = build_server(service="ticketing", register=lambda srv: register(srv, None, database),
                                verifier=verifier, port=0, host="127.0.0.1")
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        stub = pb_grpc.TicketingServiceStub(channel)
        clinician = auth.bearer_metadata(issuer.issue(str(uuid.uuid4()), [auth.CLINICIAN]))
        dispatcher = auth.bearer_metadata(issuer.issue(str(uuid.uuid4()), [auth.DISPATCHER]))
        tid = stub.OpenTicket(open_request(ALWAYS), metadata=clinician, timeout=10).ticket.ticket_id
        r = refused(stub.ChangeTicket, change(tid, pb.TICKET_ACTION_ASSIGN, assignee_id=str(uuid.uuid4())),
                    metadata=dispatcher, timeout=10)
        assert (r.code, r.reason) == (grpc.StatusCode.UNAVAILABLE, "staff_directory_unavailable")
        assert_unassigned(database, tid)
    finally:
        channel.close()
        server.stop(0).wait()


def test_the_directory_keeps_the_list_briefly_then_asks_again_and_refuses_when_identity_is_gone(platform):
    """The seam itself (what ``register`` builds), on a clock of the test's: a listed engineer is answered from
    the list while it is fresh; once it is older than ``cache_seconds`` identity is asked again, and its not
    answering is StaffDirectoryUnavailable, whatever the old list said."""
    from ticketing.exceptions import StaffDirectoryUnavailable
    from ticketing.staff_directory import IdentityStaffDirectory

    engineer_id, _ = platform.sign_in("engineer")
    clinician_id, _ = platform.sign_in("clinician")
    _, dispatcher = platform.sign_in("dispatcher")
    token = dict(dispatcher)["authorization"].removeprefix("Bearer ")
    now = [1000.0]
    directory = IdentityStaffDirectory(os.environ["IDENTITY_ADDR"], cache_seconds=30, timeout=2,
                                       clock=lambda: now[0])
    try:
        assert directory.is_engineer(engineer_id, token) is True
        assert directory.is_engineer(clinician_id, token) is False
        platform.stop_identity()
        now[0] += 29
        assert directory.is_engineer(engineer_id, token) is True          # fresh: from the list
        with pytest.raises(StaffDirectoryUnavailable):
            directory.is_engineer(clinician_id, token)                    # a miss asks identity
        now[0] += 2
        with pytest.raises(StaffDirectoryUnavailable):
            directory.is_engineer(engineer_id, token)                     # stale: asks identity
    finally:
        directory.close()
