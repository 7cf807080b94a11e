"""Bad input is INVALID_ARGUMENT naming the field, and writes nothing: never
INTERNAL (which says nothing useful to the caller, and logs a traceback)."""
from __future__ import annotations

import grpc
import pytest
from ticketing_testkit import change, open_request, query, refused, shanghai, ticket_row, worklog
from tuoguan.ticketing.v1 import ticketing_pb2 as pb

pytestmark = pytest.mark.integration


def test_an_unknown_list_view_is_refused_naming_the_field(stub, people):
    dispatcher = people.dispatcher()
    r = refused(stub.ListTickets, pb.ListTicketsRequest(view=99), metadata=dispatcher.md)
    assert (r.code, r.field) == (grpc.StatusCode.INVALID_ARGUMENT, "view")


def test_a_worklog_note_with_a_control_character_is_refused_and_nothing_is_logged(stub, people, clock, database):
    clinician, dispatcher, engineer = people.clinician(), people.dispatcher(), people.engineer()
    t0 = clock.set(shanghai(2025, 11, 4, 9, 0))
    tid = stub.OpenTicket(open_request(), metadata=clinician.md).ticket.ticket_id
    stub.ChangeTicket(change(tid, pb.TICKET_ACTION_ASSIGN, assignee_id=engineer.id), metadata=dispatcher.md)
    clock.set(shanghai(2025, 11, 4, 9, 30))
    for note in ("replaced the toner\x00", "bell\x07"):
        r = refused(stub.RecordWorklog, worklog(tid, t0, 10, note=note), metadata=engineer.md)
        assert (r.code, r.field) == (grpc.StatusCode.INVALID_ARGUMENT, "note"), repr(note)
    assert query(database, "SELECT id FROM worklogs") == []
    assert ticket_row(database, tid)["worklog_minutes"] == 0
    # Line breaks and tabs are a note's ordinary text.
    saved = stub.RecordWorklog(worklog(tid, t0, 10, note="1. toner\n2.\tdrum"), metadata=engineer.md).worklog
    assert saved.note == "1. toner\n2.\tdrum"
