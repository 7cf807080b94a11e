"""An assignment names an engineer: the api against the real PostgreSQL, identity's list of engineers swapped
for a stand-in (``directory``, the engineers ``people`` made). The same rule against the real identity api is
in test_ticketing_assignee_identity.py.

A ticket assigned to an unknown account, or to a clinician's, sat in nobody's queue (only the assignee may start
it) while its SLA ran: now it is refused, FAILED_PRECONDITION ``assignee_not_an_engineer`` on ``assignee_id``,
and nothing is written."""
from __future__ import annotations

import uuid

import grpc
import pytest
from ticketing_testkit import ALWAYS, change, key, open_request, outbox, query, refused, ticket_events, ticket_row
from tuoguan.ticketing.v1 import ticketing_pb2 as pb
from tuoguan_common import auth

NOT_AN_ENGINEER = "assignee_not_an_engineer"


def opened(stub, person) -> str:
    return stub.OpenTicket(open_request(ALWAYS), metadata=person.md).ticket.ticket_id


def assign(ticket_id: str, assignee_id: str = "", **fields) -> pb.ChangeTicketRequest:
    return change(ticket_id, pb.TICKET_ACTION_ASSIGN, assignee_id=assignee_id, **fields)


def token(person) -> str:
    return dict(person.md)["authorization"].removeprefix("Bearer ")


def assert_untouched(database, ticket_id: str) -> None:
    """Nothing of a refused assignment of a new ticket was written: the ticket, its history, the outbox."""
    row = ticket_row(database, ticket_id)
    assert (row["status"], row["assignee_id"], row["team"] == "desktop") == ("new", None, False)
    assert ticket_events(database, ticket_id) == ["opened"]
    assert outbox(database, "TicketAssigned", ticket_id=ticket_id) == []


@pytest.mark.parametrize("whom", ["clinician", "unknown", "dispatcher"])
def test_a_dispatcher_cannot_assign_a_ticket_to_anyone_but_an_engineer(stub, people, database, directory, whom):
    clinician, dispatcher = people.clinician(), people.dispatcher()
    tid = opened(stub, clinician)
    assignee = {"clinician": clinician.id, "unknown": str(uuid.uuid4()), "dispatcher": dispatcher.id}[whom]
    request = assign(tid, assignee)
    r = refused(stub.ChangeTicket, request, metadata=dispatcher.md)
    assert (r.code, r.reason, r.field) == (grpc.StatusCode.FAILED_PRECONDITION, NOT_AN_ENGINEER, "assignee_id")
    assert "engineer" in r.details
    assert_untouched(database, tid)
    # Identity was asked as the dispatcher: it authorises them, not ticketing.
    assert directory.asked_with == [token(dispatcher)]
    # The refusal kept nothing under the key: the same key assigns to an engineer afterwards.
    engineer = people.engineer()
    again = pb.ChangeTicketRequest()
    again.CopyFrom(request)
    again.assignee_id = engineer.id
    ticket = stub.ChangeTicket(again, metadata=dispatcher.md).ticket
    assert (ticket.status, ticket.assignee_id) == (pb.TICKET_STATUS_ASSIGNED, engineer.id)
    assert [e["assignee_id"] for e in outbox(database, "TicketAssigned", ticket_id=tid)] == [engineer.id]


def test_a_reassignment_to_a_clinician_leaves_the_ticket_with_its_engineer(stub, people, database):
    clinician, admin, engineer = people.clinician(), people.admin(), people.engineer()
    tid = opened(stub, clinician)
    stub.ChangeTicket(assign(tid, engineer.id), metadata=admin.md)
    stub.ChangeTicket(change(tid, pb.TICKET_ACTION_START), metadata=engineer.md)
    r = refused(stub.ChangeTicket, assign(tid, clinician.id, team="desktop"), metadata=admin.md)
    assert (r.code, r.reason, r.field) == (grpc.StatusCode.FAILED_PRECONDITION, NOT_AN_ENGINEER, "assignee_id")
    row = ticket_row(database, tid)
    assert (row["status"], str(row["assignee_id"])) == ("in_progress", engineer.id) and row["team"] != "desktop"
    assert ticket_events(database, tid) == ["opened", "assigned", "started"]
    assert len(outbox(database, "TicketAssigned", ticket_id=tid)) == 1


def test_identity_not_answering_refuses_the_assignment_as_retryable_and_writes_nothing(stub, people, database,
                                                                                        directory):
    clinician, dispatcher, engineer = people.clinician(), people.dispatcher(), people.engineer()
    tid = opened(stub, clinician)
    directory.down = True
    request = assign(tid, engineer.id)
    r = refused(stub.ChangeTicket, request, metadata=dispatcher.md)
    assert (r.code, r.reason) == (grpc.StatusCode.UNAVAILABLE, "staff_directory_unavailable")
    assert_untouched(database, tid)
    # Retryable: the same request, once identity answers, assigns it.
    directory.down = False
    assert stub.ChangeTicket(request, metadata=dispatcher.md).ticket.assignee_id == engineer.id


def test_a_retry_of_an_assignment_answered_gets_its_first_answer_without_asking_identity(stub, people, directory,
                                                                                         database):
    clinician, dispatcher, engineer = people.clinician(), people.dispatcher(), people.engineer()
    tid = opened(stub, clinician)
    request = assign(tid, engineer.id)
    first = stub.ChangeTicket(request, metadata=dispatcher.md)
    asked = len(directory.asked_with)
    directory.down = True
    assert stub.ChangeTicket(request, metadata=dispatcher.md) == first
    assert len(directory.asked_with) == asked
    # A new request (a new key) is checked: identity down, it is refused.
    r = refused(stub.ChangeTicket, assign(tid, people.engineer().id), metadata=dispatcher.md)
    assert (r.code, r.reason) == (grpc.StatusCode.UNAVAILABLE, "staff_directory_unavailable")
    assert ticket_row(database, tid)["assignee_id"] is not None and str(ticket_row(database, tid)["assignee_id"]) \
        == engineer.id


def test_an_engineer_takes_a_ticket_for_themself_without_asking_identity(stub, people, database, directory):
    """Their own token says they are an engineer: identity (which would not let them list the engineers
    anyway) is not asked, and its being down changes nothing."""
    clinician, engineer = people.clinician(), people.engineer()
    tid = opened(stub, clinician)
    directory.down = True
    dispatcher = people.dispatcher()
    r = refused(stub.ChangeTicket, assign(tid, engineer.id), metadata=dispatcher.md)   # the dispatcher's is checked
    assert (r.code, r.reason) == (grpc.StatusCode.UNAVAILABLE, "staff_directory_unavailable")
    asked = len(directory.asked_with)
    ticket = stub.ChangeTicket(assign(tid, engineer.id), metadata=engineer.md).ticket
    assert (ticket.status, ticket.assignee_id) == (pb.TICKET_STATUS_ASSIGNED, engineer.id)
    assert len(directory.asked_with) == asked


def test_an_engineer_assigning_someone_else_is_refused_by_role_without_asking_identity(stub, people, database,
                                                                                       directory):
    clinician, engineer, other = people.clinician(), people.engineer(), people.engineer()
    tid = opened(stub, clinician)
    r = refused(stub.ChangeTicket, assign(tid, other.id), metadata=engineer.md)
    assert (r.code, r.reason) == (grpc.StatusCode.PERMISSION_DENIED, "role_not_allowed")
    # A clinician cannot assign at all; nor does identity hear of it.
    r = refused(stub.ChangeTicket, assign(tid, other.id), metadata=clinician.md)
    assert (r.code, r.reason) == (grpc.StatusCode.PERMISSION_DENIED, "role_not_allowed")
    # Their refusal is the role's, to a clinician's account as to an engineer's: identity is not asked.
    r = refused(stub.ChangeTicket, assign(tid, clinician.id), metadata=engineer.md)
    assert (r.code, r.reason) == (grpc.StatusCode.PERMISSION_DENIED, "role_not_allowed")
    assert directory.asked_with == []
    assert_untouched(database, tid)
    # A dispatcher's assignment to the clinician is the one refused as no engineer's.
    r = refused(stub.ChangeTicket, assign(tid, clinician.id), metadata=people.dispatcher().md)
    assert (r.code, r.reason, r.field) == (grpc.StatusCode.FAILED_PRECONDITION, NOT_AN_ENGINEER, "assignee_id")


def test_a_dispatcher_who_is_also_an_engineer_may_take_it_and_one_who_is_not_may_not(stub, people, database,
                                                                                      directory):
    clinician = people.clinician()
    both = people.person(auth.DISPATCHER, auth.ENGINEER)
    tid = opened(stub, clinician)
    assert stub.ChangeTicket(assign(tid, both.id), metadata=both.md).ticket.assignee_id == both.id
    dispatcher = people.dispatcher()
    other = opened(stub, clinician)
    r = refused(stub.ChangeTicket, assign(other, dispatcher.id), metadata=dispatcher.md)
    assert (r.reason, r.field) == (NOT_AN_ENGINEER, "assignee_id")
    assert_untouched(database, other)


def test_a_team_alone_needs_no_engineer(stub, people, database, directory):
    """A team without an assignee (the escalation team, a team's queue) is unaffected: nobody to look up, so
    identity being down does not stop it, as it stops an assignment that names an engineer."""
    clinician, dispatcher = people.clinician(), people.dispatcher()
    tid = opened(stub, clinician)
    directory.down = True
    r = refused(stub.ChangeTicket, assign(tid, people.engineer().id, team="escalation"), metadata=dispatcher.md)
    assert (r.code, r.reason) == (grpc.StatusCode.UNAVAILABLE, "staff_directory_unavailable")
    asked = len(directory.asked_with)
    ticket = stub.ChangeTicket(assign(tid, team="escalation"), metadata=dispatcher.md).ticket
    assert (ticket.status, ticket.assignee_id, ticket.team) == (pb.TICKET_STATUS_ASSIGNED, "", "escalation")
    assert len(directory.asked_with) == asked
    assert query(database, "SELECT team FROM tickets WHERE id = %s", tid) == [{"team": "escalation"}]


def test_a_ticket_in_a_teams_queue_is_not_started_with_nobody_on_it(stub, people, database):
    """A dispatcher's start of a ticket assigned to a team alone made it IN_PROGRESS with nobody on it (in no
    engineer's queue, only a dispatcher could pause or resolve it) and its STARTED counted as the response. It
    is refused, nothing written; once an engineer is assigned, it starts."""
    clinician, dispatcher, engineer = people.clinician(), people.dispatcher(), people.engineer()
    tid = opened(stub, clinician)
    stub.ChangeTicket(assign(tid, team="escalation"), metadata=dispatcher.md)
    r = refused(stub.ChangeTicket, change(tid, pb.TICKET_ACTION_START), metadata=dispatcher.md)
    assert (r.code, r.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "invalid_transition")
    row = ticket_row(database, tid)
    assert (row["status"], row["assignee_id"]) == ("assigned", None)
    assert ticket_events(database, tid) == ["opened", "assigned"]
    ticket = stub.ChangeTicket(assign(tid, engineer.id), metadata=dispatcher.md).ticket
    started = stub.ChangeTicket(change(tid, pb.TICKET_ACTION_START), metadata=engineer.md).ticket
    assert (started.status, started.assignee_id) == (pb.TICKET_STATUS_IN_PROGRESS, engineer.id)
    assert ticket.sla.responded_at == "" and started.sla.responded_at != ""


def test_an_assignment_refused_keeps_its_key_free(stub, people, database):
    clinician, dispatcher, engineer = people.clinician(), people.dispatcher(), people.engineer()
    tid = opened(stub, clinician)
    used = key()
    refused(stub.ChangeTicket, assign(tid, clinician.id, idempotency_key=used), metadata=dispatcher.md)
    assert query(database, "SELECT key FROM idempotency_keys WHERE key = %s", used) == []
    assert stub.ChangeTicket(assign(tid, engineer.id, idempotency_key=used),
                             metadata=dispatcher.md).ticket.assignee_id == engineer.id


def test_the_engineers_list_lifetime_and_identitys_timeout_come_from_the_environment():
    from ticketing.config import TicketingConfig

    assert (TicketingConfig().staff_cache_seconds, TicketingConfig().identity_timeout_seconds) == (30.0, 3.0)
    config = TicketingConfig.from_env({"TICKETING_STAFF_CACHE_SECONDS": "5", "TICKETING_IDENTITY_TIMEOUT_SECONDS": "1.5"})
    assert (config.staff_cache_seconds, config.identity_timeout_seconds) == (5.0, 1.5)
    with pytest.raises(SystemExit, match="TICKETING_IDENTITY_TIMEOUT_SECONDS"):
        TicketingConfig.from_env({"TICKETING_IDENTITY_TIMEOUT_SECONDS": "0"})
