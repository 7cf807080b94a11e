"""The ticketing api over real gRPC and PostgreSQL: opening tickets (priority,
number, SLA on the subsystem's service hours), the lifecycle with its roles,
worklogs, the engineer's queue and the dispatcher's board, the catalogue, and
the events left in the outbox."""
from __future__ import annotations

import datetime as dt
import re

import grpc
import pytest
from ticketing_testkit import (
    ALWAYS,
    OFFICE,
    change,
    instant,
    key,
    open_request,
    outbox,
    query,
    refused,
    shanghai,
    ticket_events,
    ticket_row,
    worklog,
)
from tuoguan.ticketing.v1 import ticketing_pb2 as pb

pytestmark = pytest.mark.integration

UTC = dt.timezone.utc
HOUR = 3600.0
HIGH, MEDIUM, LOW = pb.LEVEL_HIGH, pb.LEVEL_MEDIUM, pb.LEVEL_LOW


def opened(stub, person, *args, **kwargs) -> pb.Ticket:
    return stub.OpenTicket(open_request(*args, **kwargs), metadata=person.md).ticket


def act(stub, person, ticket_id: str, action: int, **fields) -> pb.Ticket:
    return stub.ChangeTicket(change(ticket_id, action, **fields), metadata=person.md).ticket


def ids(tickets) -> list[str]:
    return [t.ticket_id for t in tickets]


# ---- opening ----------------------------------------------------------------------------------


def test_open_sets_priority_number_and_sla_on_the_subsystems_service_hours(stub, people, clock):
    clinician = people.clinician()
    # The eve of the National Day holiday of 2025 (1-8 October off, Saturday 11 October a make-up working day).
    eve = clock.set(shanghai(2025, 9, 30, 16, 0))

    around_the_clock = opened(stub, clinician, ALWAYS, HIGH, MEDIUM)
    assert re.fullmatch(r"T20250930-\d{6}", around_the_clock.number)
    assert (around_the_clock.priority, around_the_clock.status) == (pb.PRIORITY_P2, pb.TICKET_STATUS_NEW)
    assert (around_the_clock.source, around_the_clock.kind) == (pb.TICKET_SOURCE_PORTAL, pb.TICKET_KIND_INCIDENT)
    assert around_the_clock.requester_id == around_the_clock.reported_by_id == clinician.id
    assert (around_the_clock.subsystem_code, around_the_clock.team) == ("HIS", "apps-clinical")
    assert instant(around_the_clock.created_at) == eve
    sla = around_the_clock.sla
    # P2: 30 minutes to respond, 8 hours to resolve, counted around the clock.
    assert instant(sla.response_due) == shanghai(2025, 9, 30, 16, 30)
    assert instant(sla.resolution_due) == shanghai(2025, 10, 1, 0, 0)
    assert (sla.resolution_target_seconds, sla.resolution_elapsed_seconds) == (8 * HOUR, 0)
    assert (sla.escalation_level, sla.response_breached, sla.clock_stopped) == (0, False, False)

    office = opened(stub, clinician, OFFICE, MEDIUM, MEDIUM)
    assert office.priority == pb.PRIORITY_P3
    assert int(office.number[-6:]) == int(around_the_clock.number[-6:]) + 1
    # P3: 2 hours to respond, 24 to resolve, in 08:00-12:00,13:30-17:30 on working days: 1.5 hours left
    # today, then nothing until Thursday 9 October; the resolution runs into the make-up Saturday.
    assert instant(office.sla.response_due) == shanghai(2025, 10, 9, 8, 30)
    assert instant(office.sla.resolution_due) == shanghai(2025, 10, 11, 16, 0)

    # Read back later, the SLA counts only service time: one hour today, nothing over the holiday.
    clock.set(shanghai(2025, 9, 30, 17, 0))
    read = stub.GetTicket(pb.GetTicketRequest(ticket_id=office.ticket_id), metadata=clinician.md).ticket
    assert read.sla.resolution_elapsed_seconds == HOUR
    clock.set(shanghai(2025, 10, 5, 12, 0))
    read = stub.GetTicket(pb.GetTicketRequest(ticket_id=office.ticket_id), metadata=clinician.md).ticket
    assert read.sla.resolution_elapsed_seconds == 1.5 * HOUR
    assert not read.sla.response_breached
    clock.set(shanghai(2025, 10, 9, 8, 31))
    read = stub.GetTicket(pb.GetTicketRequest(ticket_id=office.ticket_id), metadata=clinician.md).ticket
    assert read.sla.response_breached

    # Low impact and urgency, but a major incident: P1 outside the matrix. The number's day is Shanghai's.
    clock.set(dt.datetime(2025, 9, 30, 16, 30, tzinfo=UTC))
    major = opened(stub, people.dispatcher(), ALWAYS, LOW, LOW, major_incident=True)  # the service desk's call
    assert (major.priority, major.major_incident) == (pb.PRIORITY_P1, True)
    assert major.number.startswith("T20251001-")
    assert opened(stub, clinician, ALWAYS, LOW, LOW).priority == pb.PRIORITY_P4
    assert opened(stub, clinician, ALWAYS, MEDIUM, HIGH, kind=pb.TICKET_KIND_SERVICE_REQUEST).priority == \
        pb.PRIORITY_P2


def test_open_is_idempotent_and_refuses_bad_input(stub, people, database):
    clinician = people.clinician()
    request = open_request(ALWAYS, title="PACS 调阅影像超时")
    first = stub.OpenTicket(request, metadata=clinician.md).ticket
    again = stub.OpenTicket(request, metadata=clinician.md).ticket
    assert (again.ticket_id, again.number) == (first.ticket_id, first.number)
    assert len(query(database, "SELECT id FROM tickets")) == 1
    assert len(outbox(database, "TicketOpened")) == 1

    # The same key for another request is a mistake, not a replay.
    other = open_request(ALWAYS, title="another", idempotency_key=request.idempotency_key)
    r = refused(stub.OpenTicket, other, metadata=clinician.md)
    assert (r.code, r.reason, r.field) == (grpc.StatusCode.INVALID_ARGUMENT, "idempotency_key_reused", "idempotency_key")

    # Spelt otherwise, as the handler reads it (a code in small letters, a title with spaces round it): the same.
    respelt = open_request(ALWAYS.lower(), title="  PACS 调阅影像超时 ", idempotency_key=request.idempotency_key)
    assert stub.OpenTicket(respelt, metadata=clinician.md).ticket.ticket_id == first.ticket_id

    for bad, field in [
        (open_request(kind=99), "kind"),
        (open_request(kind=pb.TICKET_KIND_UNSPECIFIED), "kind"),
        (open_request(title="   "), "title"),
        (open_request(title="x" * 201), "title"),
        (open_request(subsystem="HIS PACS!"), "subsystem_code"),
        (open_request(subsystem=""), "subsystem_code"),
        (open_request(impact=pb.LEVEL_UNSPECIFIED), "impact"),
        (open_request(urgency=7), "urgency"),
        (open_request(idempotency_key=" "), "idempotency_key"),
    ]:
        r = refused(stub.OpenTicket, bad, metadata=clinician.md)
        assert (r.code, r.field) == (grpc.StatusCode.INVALID_ARGUMENT, field), bad

    r = refused(stub.OpenTicket, open_request(subsystem="NO-SUCH"), metadata=clinician.md)
    assert (r.code, r.reason) == (grpc.StatusCode.NOT_FOUND, "subsystem_not_found")
    assert refused(stub.OpenTicket, open_request()).code == grpc.StatusCode.UNAUTHENTICATED
    assert refused(stub.OpenTicket, open_request(), metadata=people.person("patient").md).code == \
        grpc.StatusCode.PERMISSION_DENIED
    assert len(query(database, "SELECT id FROM tickets")) == 1


def test_on_behalf_of_and_assignee_id_are_account_ids_not_what_someone_typed(stub, people, database):
    """The requester and the assignee go out in TicketOpened and TicketAssigned, which carry ids, never text
    people typed: a caller's name and phone number typed into on_behalf_of were stored and published."""
    dispatcher, engineer = people.dispatcher(), people.engineer()
    for typed in ("内科 张三 13800138000", "13800138000", "acc-caller", "x" * 36):
        r = refused(stub.OpenTicket, open_request(on_behalf_of=typed), metadata=dispatcher.md)
        assert (r.code, r.field) == (grpc.StatusCode.INVALID_ARGUMENT, "on_behalf_of"), typed
    assert query(database, "SELECT id FROM tickets") == [] and outbox(database, "TicketOpened") == []
    # An account id in any case and with blanks around it is the account's canonical id.
    caller = people.clinician()
    ticket = opened(stub, dispatcher, ALWAYS, on_behalf_of=f" {caller.id.upper()} ")
    assert ticket.requester_id == caller.id
    assert [e["requester_id"] for e in outbox(database, "TicketOpened")] == [caller.id]

    for typed in ("周杰", "engineer-1 13900139000"):
        r = refused(stub.ChangeTicket, change(ticket.ticket_id, pb.TICKET_ACTION_ASSIGN, assignee_id=typed),
                    metadata=dispatcher.md)
        assert (r.code, r.field) == (grpc.StatusCode.INVALID_ARGUMENT, "assignee_id"), typed
        r = refused(stub.ChangeTicket, change(ticket.ticket_id, pb.TICKET_ACTION_ASSIGN, assignee_id=typed,
                                              team="desktop"), metadata=dispatcher.md)
        assert (r.code, r.field) == (grpc.StatusCode.INVALID_ARGUMENT, "assignee_id"), typed
    assert ticket_row(database, ticket.ticket_id)["status"] == "new" and outbox(database, "TicketAssigned") == []
    assert act(stub, dispatcher, ticket.ticket_id, pb.TICKET_ACTION_ASSIGN, assignee_id=engineer.id).assignee_id == \
        engineer.id


def test_a_ticket_closed_without_a_response_keeps_the_verdict_it_closed_with(stub, people, clock, store, database):
    """A duplicate closed five minutes after opening, nobody having started: not breached at the close
    (TicketClosed said so, no SlaBreached), nor when read a day later, past the response's due instant."""
    clinician, dispatcher = people.clinician(), people.dispatcher()
    clock.set(shanghai(2025, 11, 4, 9, 0))
    tid = opened(stub, clinician, ALWAYS).ticket_id                     # P3 around the clock: response in 2 h
    clock.set(shanghai(2025, 11, 4, 9, 5))
    closed = act(stub, dispatcher, tid, pb.TICKET_ACTION_CLOSE, note="duplicate of T20251104-000001")
    assert (closed.status, closed.sla.response_breached) == (pb.TICKET_STATUS_CLOSED, False)
    (event,) = outbox(database, "TicketClosed", ticket_id=tid)
    assert event["response_breached"] is False
    clock.set(shanghai(2025, 11, 5, 9, 0))
    later = stub.GetTicket(pb.GetTicketRequest(ticket_id=tid), metadata=clinician.md).ticket
    assert (later.sla.responded_at, later.sla.response_breached) == ("", False)
    listed = stub.ListTickets(pb.ListTicketsRequest(view=pb.TICKET_VIEW_MINE), metadata=clinician.md).tickets
    assert [t.sla.response_breached for t in listed] == [False]
    assert store.escalate_due(shanghai(2025, 11, 5, 9, 0), 200) == []
    assert outbox(database, "SlaBreached", ticket_id=tid) == []


def test_only_the_service_desk_and_the_office_open_on_behalf_of_a_caller(stub, people):
    caller, other = people.clinician(), people.clinician()
    r = refused(stub.OpenTicket, open_request(on_behalf_of=other.id), metadata=caller.md)
    assert r.code == grpc.StatusCode.PERMISSION_DENIED
    # An engineer naming a requester (any id, one that is no account included) would choose who confirms
    # the resolution of the hours they log: they open tickets in their own name only.
    r = refused(stub.OpenTicket, open_request(on_behalf_of=other.id), metadata=people.engineer().md)
    assert r.code == grpc.StatusCode.PERMISSION_DENIED

    dispatcher = people.dispatcher()
    ticket = opened(stub, dispatcher, ALWAYS, on_behalf_of=caller.id)
    assert (ticket.requester_id, ticket.reported_by_id, ticket.source) == \
        (caller.id, dispatcher.id, pb.TICKET_SOURCE_STAFF)
    # The caller owns it: they see it among their own and may read it; the other clinician may not.
    mine = stub.ListTickets(pb.ListTicketsRequest(view=pb.TICKET_VIEW_MINE), metadata=caller.md).tickets
    assert ids(mine) == [ticket.ticket_id]
    assert stub.GetTicket(pb.GetTicketRequest(ticket_id=ticket.ticket_id), metadata=caller.md).ticket.number == \
        ticket.number
    assert not stub.ListTickets(pb.ListTicketsRequest(view=pb.TICKET_VIEW_MINE), metadata=dispatcher.md).tickets
    # Staff opening for themselves report as staff.
    assert opened(stub, people.engineer(), ALWAYS).source == pb.TICKET_SOURCE_STAFF


def test_only_the_om_team_declares_a_major_incident(stub, people, database):
    """A major incident is P1 whatever its impact and urgency: a 15-minute response and 4 hours to resolve, the
    targets (and breaches) the contractor's fee is then measured on. The portal offers the flag to the O&M team
    only, yet a clinician's JSON or gRPC request declared one. Refused, PERMISSION_DENIED, nothing written and
    the key free; the service desk declares it, for itself or on a caller's behalf."""
    clinician = people.clinician()
    request = open_request(ALWAYS, LOW, LOW, major_incident=True)
    for reporter in (clinician, people.person("registration_office"), people.person("finance")):
        r = refused(stub.OpenTicket, request, metadata=reporter.md)
        assert (r.code, r.reason) == (grpc.StatusCode.PERMISSION_DENIED, "role_not_allowed"), reporter
        assert "major incident" in r.details
    assert query(database, "SELECT id FROM tickets") == []
    assert query(database, "SELECT key FROM idempotency_keys WHERE scope = 'open'") == []
    assert outbox(database, "TicketOpened") == []
    # The same request without the flag is the clinician's to make, under the same key.
    request.major_incident = False
    assert stub.OpenTicket(request, metadata=clinician.md).ticket.priority == pb.PRIORITY_P4
    for desk in (people.engineer(), people.dispatcher(), people.admin()):
        assert opened(stub, desk, ALWAYS, LOW, LOW, major_incident=True).priority == pb.PRIORITY_P1
    on_behalf = opened(stub, people.dispatcher(), ALWAYS, LOW, LOW, major_incident=True, on_behalf_of=clinician.id)
    assert (on_behalf.priority, on_behalf.requester_id) == (pb.PRIORITY_P1, clinician.id)


# ---- the lifecycle ----------------------------------------------------------------------------


def test_the_full_lifecycle_measures_the_sla_and_bills_the_worklogs_on_confirmation(stub, people, clock, database):
    clinician, dispatcher, engineer = people.clinician(), people.dispatcher(), people.engineer()
    t0 = clock.set(shanghai(2025, 11, 4, 9, 0))
    ticket = opened(stub, clinician, ALWAYS, HIGH, MEDIUM)
    tid = ticket.ticket_id

    assigned = act(stub, dispatcher, tid, pb.TICKET_ACTION_ASSIGN, assignee_id=engineer.id)
    assert (assigned.status, assigned.assignee_id, assigned.team) == \
        (pb.TICKET_STATUS_ASSIGNED, engineer.id, "apps-clinical")

    clock.set(t0 + dt.timedelta(minutes=10))
    started = act(stub, engineer, tid, pb.TICKET_ACTION_START)
    assert started.status == pb.TICKET_STATUS_IN_PROGRESS
    assert instant(started.sla.responded_at) == t0 + dt.timedelta(minutes=10)
    assert not started.sla.response_breached

    clock.set(t0 + dt.timedelta(hours=1))
    r = refused(stub.ChangeTicket, change(tid, pb.TICKET_ACTION_PAUSE), metadata=engineer.md)
    assert (r.code, r.field) == (grpc.StatusCode.INVALID_ARGUMENT, "pause_side")
    paused = act(stub, engineer, tid, pb.TICKET_ACTION_PAUSE, pause_side=pb.PAUSE_SIDE_HOSPITAL,
                 note="the ward needs the PC until the round is over")
    assert (paused.status, paused.paused_by) == (pb.TICKET_STATUS_PENDING, pb.PAUSE_SIDE_HOSPITAL)
    assert paused.sla.clock_stopped and paused.sla.resolution_due == ""
    assert paused.sla.paused_by == pb.PAUSE_SIDE_HOSPITAL

    clock.set(t0 + dt.timedelta(hours=3))
    resumed = act(stub, engineer, tid, pb.TICKET_ACTION_RESUME)
    assert (resumed.status, resumed.paused_by, resumed.sla.clock_stopped) == \
        (pb.TICKET_STATUS_IN_PROGRESS, pb.PAUSE_SIDE_UNSPECIFIED, False)
    # Two hours stopped on the hospital's side: the 8-hour target moves two hours later.
    assert instant(resumed.sla.resolution_due) == t0 + dt.timedelta(hours=10)
    assert resumed.sla.resolution_elapsed_seconds == 1 * HOUR

    clock.set(t0 + dt.timedelta(hours=4))
    r = refused(stub.ChangeTicket, change(tid, pb.TICKET_ACTION_RESOLVE, note="driver reinstalled"),
                metadata=engineer.md)
    assert (r.code, r.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "worklog_required")
    r = refused(stub.ChangeTicket, change(tid, pb.TICKET_ACTION_RESOLVE), metadata=engineer.md)
    assert (r.code, r.field) == (grpc.StatusCode.INVALID_ARGUMENT, "note")

    # The engineer's token says senior: a request may repeat the grade or leave it out.
    onsite = stub.RecordWorklog(worklog(tid, t0 + dt.timedelta(minutes=15), 90, grade="senior", activity="onsite"),
                                metadata=engineer.md).worklog
    remote = stub.RecordWorklog(worklog(tid, t0 + dt.timedelta(hours=3), 30, activity="remote"),
                                metadata=engineer.md).worklog
    assert (onsite.engineer_id, onsite.minutes, onsite.billable, onsite.grade) == (engineer.id, 90, False, "senior")
    assert remote.grade == "senior"
    r = refused(stub.RecordWorklog, worklog(tid, t0, 10), metadata=clinician.md)
    assert r.code == grpc.StatusCode.PERMISSION_DENIED
    r = refused(stub.RecordWorklog, worklog(tid, t0, 10), metadata=people.engineer().md)
    assert (r.code, r.reason) == (grpc.StatusCode.PERMISSION_DENIED, "not_assignee")
    r = refused(stub.RecordWorklog, worklog(tid, t0, 0), metadata=engineer.md)
    assert (r.code, r.field) == (grpc.StatusCode.INVALID_ARGUMENT, "minutes")
    r = refused(stub.RecordWorklog, worklog(tid, t0 + dt.timedelta(hours=2), 10, grade="guru"), metadata=engineer.md)
    assert (r.code, r.field) == (grpc.StatusCode.INVALID_ARGUMENT, "grade")

    clock.set(t0 + dt.timedelta(hours=5))
    resolved = act(stub, engineer, tid, pb.TICKET_ACTION_RESOLVE, note="printer driver reinstalled")
    assert (resolved.status, resolved.worklog_minutes, resolved.resolution_note) == \
        (pb.TICKET_STATUS_RESOLVED, 120, "printer driver reinstalled")
    assert instant(resolved.resolved_at) == t0 + dt.timedelta(hours=5)
    # Five hours open, two of them stopped by the hospital.
    assert resolved.sla.resolution_elapsed_seconds == 3 * HOUR
    assert not resolved.sla.resolution_breached

    r = refused(stub.ChangeTicket, change(tid, pb.TICKET_ACTION_CONFIRM), metadata=engineer.md)
    assert (r.code, r.reason) == (grpc.StatusCode.PERMISSION_DENIED, "not_requester")
    clock.set(t0 + dt.timedelta(hours=6))
    closed = act(stub, clinician, tid, pb.TICKET_ACTION_CONFIRM)
    assert closed.status == pb.TICKET_STATUS_CLOSED
    assert instant(closed.closed_at) == t0 + dt.timedelta(hours=6)
    # The SLA stopped at the resolution: the hour to confirm is not the contractor's.
    assert closed.sla.resolution_elapsed_seconds == 3 * HOUR

    got = stub.GetTicket(pb.GetTicketRequest(ticket_id=tid), metadata=clinician.md)
    assert sorted((w.worklog_id, w.billable) for w in got.worklogs) == \
        sorted([(onsite.worklog_id, True), (remote.worklog_id, True)])
    listed = stub.ListWorklogs(pb.ListWorklogsRequest(ticket_id=tid), metadata=engineer.md).worklogs
    assert [w.minutes for w in listed] == [90, 30] and all(w.billable for w in listed)
    r = refused(stub.RecordWorklog, worklog(tid, t0 + dt.timedelta(hours=5), 10), metadata=engineer.md)
    assert (r.code, r.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "ticket_closed")
    r = refused(stub.ChangeTicket, change(tid, pb.TICKET_ACTION_REOPEN), metadata=clinician.md)
    assert (r.code, r.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "invalid_transition")

    assert ticket_events(database, tid) == ["opened", "assigned", "started", "paused", "resumed", "resolved",
                                            "closed"]
    row = ticket_row(database, tid)
    assert (row["next_check_at"], row["auto_close_at"]) == (None, None)

    # What the other services are told, in the outbox.
    (opened_event,) = outbox(database, "TicketOpened", ticket_id=tid)
    assert {k: opened_event[k] for k in ("number", "subsystem_code", "kind", "priority", "source", "requester_id",
                                         "major_incident")} == \
        {"number": ticket.number, "subsystem_code": "HIS", "kind": "incident", "priority": "P2", "source": "portal",
         "requester_id": clinician.id, "major_incident": False}
    assert instant(opened_event["opened_at"]) == t0 and opened_event["event_id"]
    (assigned_event,) = outbox(database, "TicketAssigned", ticket_id=tid)
    assert (assigned_event["assignee_id"], assigned_event["team"]) == (engineer.id, "apps-clinical")
    (paused_event,) = outbox(database, "TicketPaused", ticket_id=tid)
    assert (paused_event["side"], paused_event["clock_stopped"]) == ("hospital", True)
    assert len(outbox(database, "TicketResumed", ticket_id=tid)) == 1
    recorded = outbox(database, "WorklogRecorded", ticket_id=tid)
    assert [(w["worklog_id"], w["engineer_id"], w["grade"], w["activity"], w["minutes"]) for w in recorded] == \
        [(onsite.worklog_id, engineer.id, "senior", "onsite", 90), (remote.worklog_id, engineer.id, "senior",
                                                                    "remote", 30)]
    (resolved_event,) = outbox(database, "TicketResolved", ticket_id=tid)
    assert {k: resolved_event[k] for k in ("subsystem_code", "priority", "assignee_id", "resolution_elapsed_seconds",
                                           "resolution_breached", "response_breached")} == \
        {"subsystem_code": "HIS", "priority": "P2", "assignee_id": engineer.id, "resolution_elapsed_seconds": 3 * HOUR,
         "resolution_breached": False, "response_breached": False}
    (closed_event,) = outbox(database, "TicketClosed", ticket_id=tid)
    assert (closed_event["how"], closed_event["billable_minutes"], closed_event["priority"]) == ("confirmed", 120, "P2")
    assert instant(closed_event["closed_at"]) == t0 + dt.timedelta(hours=6)
    billable = outbox(database, "WorklogBillable", ticket_id=tid)
    assert sorted((b["worklog_id"], b["minutes"], b["grade"]) for b in billable) == \
        sorted([(onsite.worklog_id, 90, "senior"), (remote.worklog_id, 30, "senior")])
    assert all(instant(b["billable_at"]) == t0 + dt.timedelta(hours=6) for b in billable)


def test_who_may_see_assign_and_work_a_ticket(stub, people, database):
    clinician, stranger = people.clinician(), people.clinician()
    dispatcher, engineer, colleague = people.dispatcher(), people.engineer(), people.engineer()
    ticket = opened(stub, clinician, ALWAYS)
    tid = ticket.ticket_id

    # Clinicians see and comment on their own tickets only.
    for call, request in [(stub.GetTicket, pb.GetTicketRequest(ticket_id=tid)),
                          (stub.ListWorklogs, pb.ListWorklogsRequest(ticket_id=tid)),
                          (stub.AddComment, pb.AddCommentRequest(ticket_id=tid, body="me too", idempotency_key=key()))]:
        r = refused(call, request, metadata=stranger.md)
        assert (r.code, r.reason) == (grpc.StatusCode.PERMISSION_DENIED, "not_your_ticket"), call
        # The refusal states the rule as it is: the whole O&M team sees every ticket, not only its engineer.
        assert "the O&M team" in r.details
    assert stub.GetTicket(pb.GetTicketRequest(ticket_id=tid), metadata=colleague.md).ticket.ticket_id == tid
    assert not stub.ListTickets(pb.ListTicketsRequest(view=pb.TICKET_VIEW_MINE), metadata=stranger.md).tickets
    comment_key = key()
    comment = stub.AddComment(pb.AddCommentRequest(ticket_id=tid, body="打印机在 3 楼护士站", idempotency_key=comment_key),
                              metadata=clinician.md).comment
    retried = pb.AddCommentRequest(ticket_id=tid.upper(), body=" 打印机在 3 楼护士站\n", idempotency_key=comment_key)
    assert stub.AddComment(retried, metadata=clinician.md).comment == comment, "the same comment, spelt otherwise"
    got = stub.GetTicket(pb.GetTicketRequest(ticket_id=tid), metadata=engineer.md)
    assert [(c.comment_id, c.author_id, c.body) for c in got.comments] == \
        [(comment.comment_id, clinician.id, "打印机在 3 楼护士站")]
    r = refused(stub.GetTicket, pb.GetTicketRequest(ticket_id="not-a-uuid"), metadata=clinician.md)
    assert (r.code, r.field) == (grpc.StatusCode.INVALID_ARGUMENT, "ticket_id")
    r = refused(stub.GetTicket, pb.GetTicketRequest(ticket_id="00000000-0000-4000-8000-000000000000"),
                metadata=clinician.md)
    assert (r.code, r.reason) == (grpc.StatusCode.NOT_FOUND, "ticket_not_found")

    # A clinician assigns nothing; an engineer takes an unassigned ticket for themself, and nobody else's.
    r = refused(stub.ChangeTicket, change(tid, pb.TICKET_ACTION_ASSIGN, assignee_id=clinician.id),
                metadata=clinician.md)
    assert (r.code, r.reason) == (grpc.StatusCode.PERMISSION_DENIED, "role_not_allowed")
    r = refused(stub.ChangeTicket, change(tid, pb.TICKET_ACTION_ASSIGN, assignee_id=colleague.id),
                metadata=engineer.md)
    assert (r.code, r.reason) == (grpc.StatusCode.PERMISSION_DENIED, "role_not_allowed")
    taken = act(stub, engineer, tid, pb.TICKET_ACTION_ASSIGN, assignee_id=engineer.id)
    assert (taken.status, taken.assignee_id) == (pb.TICKET_STATUS_ASSIGNED, engineer.id)
    r = refused(stub.ChangeTicket, change(tid, pb.TICKET_ACTION_ASSIGN, assignee_id=colleague.id),
                metadata=colleague.md)
    assert (r.code, r.reason) == (grpc.StatusCode.PERMISSION_DENIED, "role_not_allowed")
    assert ticket_row(database, tid)["assignee_id"] == engineer.id

    # Only the assignee works it.
    for action in (pb.TICKET_ACTION_START, pb.TICKET_ACTION_RESOLVE):
        r = refused(stub.ChangeTicket, change(tid, action, note="done"), metadata=colleague.md)
        assert (r.code, r.reason) == (grpc.StatusCode.PERMISSION_DENIED, "not_assignee")
    r = refused(stub.ChangeTicket, change(tid, pb.TICKET_ACTION_START), metadata=clinician.md)
    assert (r.code, r.reason) == (grpc.StatusCode.PERMISSION_DENIED, "role_not_allowed")
    assert ticket_row(database, tid)["status"] == "assigned"
    # What the lifecycle does not allow is a failed precondition, whoever asks.
    r = refused(stub.ChangeTicket, change(tid, pb.TICKET_ACTION_RESUME), metadata=engineer.md)
    assert (r.code, r.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "invalid_transition")
    assert act(stub, engineer, tid, pb.TICKET_ACTION_START).status == pb.TICKET_STATUS_IN_PROGRESS

    # The dispatcher hands it to a team; the team's engineer then takes it.
    to_team = act(stub, dispatcher, tid, pb.TICKET_ACTION_ASSIGN, team="desktop")
    assert (to_team.status, to_team.assignee_id, to_team.team) == (pb.TICKET_STATUS_ASSIGNED, "", "desktop")
    r = refused(stub.ChangeTicket, change(tid, pb.TICKET_ACTION_ASSIGN), metadata=dispatcher.md)
    assert (r.code, r.field) == (grpc.StatusCode.INVALID_ARGUMENT, "assignee_id")
    assert act(stub, colleague, tid, pb.TICKET_ACTION_ASSIGN, assignee_id=colleague.id).assignee_id == colleague.id
    assert [(e["assignee_id"], e["team"]) for e in outbox(database, "TicketAssigned", ticket_id=tid)] == \
        [(engineer.id, "apps-clinical"), ("", "desktop"), (colleague.id, "desktop")]

    # The same change twice (a retry) is answered once.
    request = change(tid, pb.TICKET_ACTION_START)
    first = stub.ChangeTicket(request, metadata=colleague.md).ticket
    assert stub.ChangeTicket(request, metadata=colleague.md).ticket == first
    respelt = change(tid.upper(), pb.TICKET_ACTION_START, idempotency_key=request.idempotency_key)
    assert stub.ChangeTicket(respelt, metadata=colleague.md).ticket == first, "one ticket id, spelt in capitals"
    assert ticket_events(database, tid).count("started") == 2


def test_a_replica_whose_clock_is_a_little_behind_does_not_leave_the_clock_stopped(stub, people, clock, database):
    """Each api replica (and the worker) has its own clock, and the SLA takes the history in time order: a resume
    made on a replica 2 ms behind the one that paused came before the pause, and the ticket was in progress with
    its clock stopped for good: past its target, never escalated (no next look). An event is never dated
    before the ticket's latest one."""
    clinician, dispatcher, engineer = people.clinician(), people.dispatcher(), people.engineer()
    t0 = clock.set(shanghai(2025, 11, 4, 9, 0))
    tid = opened(stub, clinician, ALWAYS, HIGH, HIGH).ticket_id                # P1: 4 hours
    act(stub, dispatcher, tid, pb.TICKET_ACTION_ASSIGN, assignee_id=engineer.id)
    act(stub, engineer, tid, pb.TICKET_ACTION_START)
    clock.set(t0 + dt.timedelta(minutes=30, milliseconds=5))
    act(stub, engineer, tid, pb.TICKET_ACTION_PAUSE, pause_side=pb.PAUSE_SIDE_HOSPITAL)
    clock.set(t0 + dt.timedelta(minutes=30, milliseconds=3))                  # another replica, 2 ms behind
    resumed = act(stub, engineer, tid, pb.TICKET_ACTION_RESUME)
    assert (resumed.status, resumed.sla.clock_stopped, resumed.sla.paused_by) == \
        (pb.TICKET_STATUS_IN_PROGRESS, False, pb.PAUSE_SIDE_UNSPECIFIED)
    assert instant(resumed.sla.resolution_due) == t0 + dt.timedelta(hours=4)
    assert ticket_row(database, tid)["next_check_at"] is not None
    assert ticket_events(database, tid)[-2:] == ["paused", "resumed"]


def test_the_requester_reopens_a_resolution_and_the_clock_runs_again(stub, people, clock, database):
    clinician, dispatcher, engineer = people.clinician(), people.dispatcher(), people.engineer()
    t0 = clock.set(shanghai(2025, 11, 5, 10, 0))
    tid = opened(stub, clinician, ALWAYS, MEDIUM, MEDIUM).ticket_id
    act(stub, dispatcher, tid, pb.TICKET_ACTION_ASSIGN, assignee_id=engineer.id)
    act(stub, engineer, tid, pb.TICKET_ACTION_START)
    clock.set(t0 + dt.timedelta(hours=2))
    stub.RecordWorklog(worklog(tid, t0, 45, activity="diagnosis"), metadata=engineer.md)
    act(stub, engineer, tid, pb.TICKET_ACTION_RESOLVE, note="restarted the print spooler")
    assert ticket_row(database, tid)["auto_close_at"] is not None

    clock.set(t0 + dt.timedelta(hours=5))
    r = refused(stub.ChangeTicket, change(tid, pb.TICKET_ACTION_REOPEN), metadata=people.clinician().md)
    assert (r.code, r.reason) == (grpc.StatusCode.PERMISSION_DENIED, "not_requester")
    reopened = act(stub, clinician, tid, pb.TICKET_ACTION_REOPEN, note="it jams again")
    assert (reopened.status, reopened.resolved_at, reopened.assignee_id) == \
        (pb.TICKET_STATUS_IN_PROGRESS, "", engineer.id)
    assert ticket_row(database, tid)["auto_close_at"] is None
    assert len(outbox(database, "TicketReopened", ticket_id=tid)) == 1

    # Two hours before the resolution, none while it stood resolved, one since the reopening.
    clock.set(t0 + dt.timedelta(hours=6))
    read = stub.GetTicket(pb.GetTicketRequest(ticket_id=tid), metadata=clinician.md).ticket
    assert read.sla.resolution_elapsed_seconds == 3 * HOUR
    assert act(stub, engineer, tid, pb.TICKET_ACTION_RESOLVE, note="replaced the fuser").status == \
        pb.TICKET_STATUS_RESOLVED
    closed = act(stub, clinician, tid, pb.TICKET_ACTION_CONFIRM)
    assert closed.status == pb.TICKET_STATUS_CLOSED
    (closed_event,) = outbox(database, "TicketClosed", ticket_id=tid)
    assert (closed_event["how"], closed_event["billable_minutes"]) == ("confirmed", 45)
    assert len(outbox(database, "TicketResolved", ticket_id=tid)) == 2



def test_a_dispatcher_closing_a_resolved_ticket_bills_its_worklogs_and_an_unresolved_one_nothing(
        stub, people, clock, database):
    clinician, dispatcher, engineer = people.clinician(), people.dispatcher(), people.engineer()
    t0 = clock.set(shanghai(2025, 11, 5, 10, 0))
    resolved_tid = opened(stub, clinician, ALWAYS, MEDIUM, MEDIUM).ticket_id
    duplicate_tid = opened(stub, clinician, ALWAYS, MEDIUM, MEDIUM).ticket_id
    for tid in (resolved_tid, duplicate_tid):
        act(stub, dispatcher, tid, pb.TICKET_ACTION_ASSIGN, assignee_id=engineer.id)
    act(stub, engineer, resolved_tid, pb.TICKET_ACTION_START)
    clock.set(t0 + dt.timedelta(hours=3))
    stub.RecordWorklog(worklog(resolved_tid, t0, 40, activity="repair"), metadata=engineer.md)
    stub.RecordWorklog(worklog(duplicate_tid, t0 + dt.timedelta(hours=1), 15, activity="diagnosis"),
                       metadata=engineer.md)
    act(stub, engineer, resolved_tid, pb.TICKET_ACTION_RESOLVE, note="reindexed the orders table")

    # The requester is out of reach: the dispatcher closes the resolution. The work resolved something.
    assert act(stub, dispatcher, resolved_tid, pb.TICKET_ACTION_CLOSE).status == pb.TICKET_STATUS_CLOSED
    (closed_event,) = outbox(database, "TicketClosed", ticket_id=resolved_tid)
    assert (closed_event["how"], closed_event["billable_minutes"]) == ("closed", 40)
    assert [b["minutes"] for b in outbox(database, "WorklogBillable", ticket_id=resolved_tid)] == [40]

    # A duplicate closed unresolved bills nothing, though someone looked at it.
    assert act(stub, dispatcher, duplicate_tid, pb.TICKET_ACTION_CLOSE).status == pb.TICKET_STATUS_CLOSED
    (closed_event,) = outbox(database, "TicketClosed", ticket_id=duplicate_tid)
    assert (closed_event["how"], closed_event["billable_minutes"]) == ("closed", 0)
    assert outbox(database, "WorklogBillable", ticket_id=duplicate_tid) == []
    got = stub.GetTicket(pb.GetTicketRequest(ticket_id=duplicate_tid), metadata=dispatcher.md)
    assert [w.billable for w in got.worklogs] == [False]


# ---- the queue and the board ------------------------------------------------------------------


def test_queue_and_board_are_ordered_by_sla_urgency(stub, people, clock):
    clinician, dispatcher, engineer, colleague = (people.clinician(), people.dispatcher(), people.engineer(),
                                                  people.engineer())
    t0 = shanghai(2025, 11, 4, 9, 0)

    def ticket(minutes: int, impact: int, urgency: int, assignee=None, subsystem=ALWAYS) -> str:
        clock.set(t0 + dt.timedelta(minutes=minutes))
        tid = opened(stub, clinician, subsystem, impact, urgency).ticket_id
        if assignee is not None:
            act(stub, dispatcher, tid, pb.TICKET_ACTION_ASSIGN, assignee_id=assignee.id)
        return tid

    # Opened most urgent first, so the newest-first order of the table would be the wrong one.
    breached = ticket(-300, HIGH, HIGH, colleague)      # P1, 4 hours to resolve, opened 5 hours ago
    p1 = ticket(0, HIGH, HIGH, engineer)
    p3 = ticket(1, MEDIUM, MEDIUM, engineer)
    p4 = ticket(2, LOW, LOW, engineer)
    stopped = ticket(3, HIGH, HIGH, engineer)           # P1, but waiting for the vendor: its clock is stopped
    act(stub, engineer, stopped, pb.TICKET_ACTION_START)
    act(stub, engineer, stopped, pb.TICKET_ACTION_PAUSE, pause_side=pb.PAUSE_SIDE_VENDOR)
    unassigned = ticket(4, HIGH, MEDIUM)                # P2, 8 hours
    closed = ticket(5, HIGH, HIGH, engineer)
    act(stub, dispatcher, closed, pb.TICKET_ACTION_CLOSE, note="duplicate of another ticket")
    office = ticket(6, LOW, LOW, subsystem=OFFICE)
    clock.set(t0 + dt.timedelta(minutes=10))

    queue = stub.ListTickets(pb.ListTicketsRequest(view=pb.TICKET_VIEW_QUEUE), metadata=engineer.md).tickets
    assert ids(queue) == [p1, p3, p4, stopped]
    assert [t.sla.clock_stopped for t in queue] == [False, False, False, True]
    urgencies = [t.sla.urgency_seconds for t in queue[:3]]
    assert urgencies == sorted(urgencies) and urgencies[0] == 4 * HOUR - 10 * 60

    board = stub.ListTickets(pb.ListTicketsRequest(view=pb.TICKET_VIEW_BOARD), metadata=dispatcher.md).tickets
    assert ids(board)[:4] == [breached, p1, unassigned, p3]
    assert set(ids(board)) == {breached, p1, unassigned, p3, p4, office, stopped} and ids(board)[-1] == stopped
    assert board[0].sla.resolution_breached and board[0].sla.urgency_seconds < 0
    # A short board is the most urgent few, not the newest few.
    top = stub.ListTickets(pb.ListTicketsRequest(view=pb.TICKET_VIEW_BOARD, limit=2), metadata=dispatcher.md)
    assert ids(top.tickets) == [breached, p1]
    by_subsystem = stub.ListTickets(pb.ListTicketsRequest(view=pb.TICKET_VIEW_BOARD, subsystem_code="fin"),
                                    metadata=dispatcher.md).tickets
    assert ids(by_subsystem) == [office]

    # The requester's own list, newest first, with or without the closed ones.
    mine = stub.ListTickets(pb.ListTicketsRequest(view=pb.TICKET_VIEW_MINE), metadata=clinician.md).tickets
    assert ids(mine) == [office, closed, unassigned, stopped, p4, p3, p1, breached]
    open_only = stub.ListTickets(pb.ListTicketsRequest(view=pb.TICKET_VIEW_MINE, open_only=True),
                                 metadata=clinician.md).tickets
    assert closed not in ids(open_only) and len(open_only) == 7

    for view in (pb.TICKET_VIEW_QUEUE, pb.TICKET_VIEW_BOARD):
        r = refused(stub.ListTickets, pb.ListTicketsRequest(view=view), metadata=clinician.md)
        assert r.code == grpc.StatusCode.PERMISSION_DENIED
    r = refused(stub.ListTickets, pb.ListTicketsRequest(view=pb.TICKET_VIEW_BOARD, limit=-1), metadata=dispatcher.md)
    assert (r.code, r.field) == (grpc.StatusCode.INVALID_ARGUMENT, "limit")


# ---- the catalogue ----------------------------------------------------------------------------


def subsystem(code: str = "SMART-WARD", hours: str = "07:30-12:00, 13:00-18:00", subsystem_id: str = "",
              **fields) -> pb.Subsystem:
    values = {"name": "智慧病房", "name_en": "Smart ward", "category": "clinical", "criticality": pb.CRITICALITY_HIGH,
              "team": "apps-clinical", "vendor": "卫宁健康", "active": True, **fields}
    return pb.Subsystem(subsystem_id=subsystem_id, code=code, service_hours=hours, **values)


def put(stub, person, sub: pb.Subsystem, idempotency_key: str | None = None) -> pb.Subsystem:
    return stub.PutSubsystem(pb.PutSubsystemRequest(subsystem=sub, idempotency_key=idempotency_key or key()),
                             metadata=person.md).subsystem


def test_admins_keep_the_subsystem_catalogue(stub, people, clock, database):
    admin, clinician = people.admin(), people.clinician()
    listed = stub.ListSubsystems(pb.ListSubsystemsRequest(), metadata=clinician.md).subsystems
    assert len(listed) == 67
    his = next(s for s in listed if s.code == "HIS")
    assert (his.criticality, his.service_hours, his.team, his.active) == \
        (pb.CRITICALITY_CRITICAL, "24x7", "apps-clinical", True)

    request_key = key()
    made = put(stub, admin, subsystem(), request_key)
    assert made.subsystem_id and made.service_hours == "07:30-12:00,13:00-18:00"
    assert put(stub, admin, subsystem(), request_key) == made
    assert len(query(database, "SELECT id FROM subsystems WHERE code = 'SMART-WARD'")) == 1

    # A ticket opened on Saturday morning waits for Monday's service hours ...
    clock.set(shanghai(2025, 11, 8, 10, 0))
    ticket = opened(stub, clinician, "SMART-WARD", MEDIUM, MEDIUM)
    assert instant(ticket.sla.response_due) == shanghai(2025, 11, 10, 9, 30)
    # ... until the subsystem is served around the clock: the ticket is re-rated from its history.
    changed = put(stub, admin, subsystem(hours="24x7", subsystem_id=made.subsystem_id, name="智慧病房（二期）"))
    assert (changed.subsystem_id, changed.service_hours, changed.name) == (made.subsystem_id, "24x7", "智慧病房（二期）")
    read = stub.GetTicket(pb.GetTicketRequest(ticket_id=ticket.ticket_id), metadata=clinician.md).ticket
    assert instant(read.sla.response_due) == shanghai(2025, 11, 8, 12, 0)

    for bad in (subsystem(code="HIS"), subsystem(code="PACS", subsystem_id=made.subsystem_id)):
        r = refused(stub.PutSubsystem, pb.PutSubsystemRequest(subsystem=bad, idempotency_key=key()),
                    metadata=admin.md)
        assert (r.code, r.reason) == (grpc.StatusCode.ALREADY_EXISTS, "subsystem_code_taken")
    for bad, field in [(subsystem(hours="8am-5pm"), "subsystem.service_hours"),
                       (subsystem(hours="08:00-12:00,11:00-13:00"), "subsystem.service_hours"),
                       (subsystem(hours=""), "subsystem.service_hours"),
                       (subsystem(code="smart ward"), "subsystem.code"),
                       (subsystem(name=""), "subsystem.name"),
                       (subsystem(criticality=pb.CRITICALITY_UNSPECIFIED), "subsystem.criticality"),
                       (subsystem(subsystem_id="nope"), "subsystem.subsystem_id")]:
        r = refused(stub.PutSubsystem, pb.PutSubsystemRequest(subsystem=bad, idempotency_key=key()),
                    metadata=admin.md)
        assert (r.code, r.field) == (grpc.StatusCode.INVALID_ARGUMENT, field), bad
    r = refused(stub.PutSubsystem, pb.PutSubsystemRequest(
        subsystem=subsystem(code="GHOST", subsystem_id="00000000-0000-4000-8000-000000000000"),
        idempotency_key=key()), metadata=admin.md)
    assert (r.code, r.reason) == (grpc.StatusCode.NOT_FOUND, "subsystem_not_found")
    for person in (clinician, people.engineer(), people.dispatcher()):
        r = refused(stub.PutSubsystem, pb.PutSubsystemRequest(subsystem=subsystem(code="MINE"),
                                                              idempotency_key=key()), metadata=person.md)
        assert r.code == grpc.StatusCode.PERMISSION_DENIED
    assert not query(database, "SELECT id FROM subsystems WHERE code IN ('MINE', 'GHOST')")

    # Retired: no longer listed by default, and no new tickets on it.
    put(stub, admin, subsystem(hours="24x7", subsystem_id=made.subsystem_id, active=False))
    codes = [s.code for s in stub.ListSubsystems(pb.ListSubsystemsRequest(), metadata=clinician.md).subsystems]
    assert "SMART-WARD" not in codes and len(codes) == 67
    everything = stub.ListSubsystems(pb.ListSubsystemsRequest(include_inactive=True), metadata=clinician.md)
    assert len(everything.subsystems) == 68
    r = refused(stub.OpenTicket, open_request("SMART-WARD"), metadata=clinician.md)
    assert (r.code, r.reason) == (grpc.StatusCode.NOT_FOUND, "subsystem_not_found")


def test_a_contractor_paused_ticket_handed_to_the_escalation_team_goes_to_the_board_to_be_assigned(
        stub, people, clock, store, database):
    """Level 3 hands a contractor-paused (PENDING) ticket to the escalation team as it does one in progress:
    ASSIGNED with nobody on it, its pause ended (RESUMED before the hand-off), for a dispatcher to assign.
    It stayed PENDING with nobody on it, and the dispatcher's assign was an invalid transition."""
    clinician, dispatcher, eng, eng2 = people.clinician(), people.dispatcher(), people.engineer(), people.engineer()
    clock.set(shanghai(2025, 11, 4, 9, 0))
    t = opened(stub, clinician, ALWAYS, HIGH, HIGH)                        # P1: 4 h, level 3 beyond 6 h
    act(stub, dispatcher, t.ticket_id, pb.TICKET_ACTION_ASSIGN, assignee_id=eng.id)
    act(stub, eng, t.ticket_id, pb.TICKET_ACTION_START)
    act(stub, eng, t.ticket_id, pb.TICKET_ACTION_PAUSE, pause_side=pb.PAUSE_SIDE_CONTRACTOR)
    assert store.escalate_due(shanghai(2025, 11, 4, 15, 1), 200)[0][1] == 3
    row = ticket_row(database, t.ticket_id)
    assert (row["status"], row["assignee_id"], row["paused_by"], row["team"]) == \
        ("assigned", None, None, "escalation")
    assert ticket_events(database, t.ticket_id)[-3:] == ["paused", "resumed", "assigned"]  # a P1 rises no higher
    assert len(outbox(database, "TicketResumed", ticket_id=t.ticket_id)) == 1
    clock.set(shanghai(2025, 11, 4, 15, 5))
    again = act(stub, dispatcher, t.ticket_id, pb.TICKET_ACTION_ASSIGN, assignee_id=eng2.id)
    assert (again.status, again.assignee_id) == (pb.TICKET_STATUS_ASSIGNED, eng2.id)
    assert not again.sla.paused_by


def test_an_engineer_does_not_take_back_a_ticket_the_escalation_took_off_them(stub, people, clock, store, database):
    """Level 3 takes a ticket off the engineer who has not fixed it and puts it on the board: that engineer
    took it straight back for themself, undoing the escalation. Another engineer (the escalation team's)
    takes it; a dispatcher may still give it to anyone, the first engineer included."""
    clinician, dispatcher, eng, second_line = people.clinician(), people.dispatcher(), people.engineer(), \
        people.engineer()
    clock.set(shanghai(2025, 11, 4, 9, 0))
    t = opened(stub, clinician, ALWAYS, HIGH, HIGH)                        # P1: 4 h, level 3 beyond 6 h
    act(stub, eng, t.ticket_id, pb.TICKET_ACTION_ASSIGN, assignee_id=eng.id)  # they took it themself
    act(stub, eng, t.ticket_id, pb.TICKET_ACTION_START)
    assert store.escalate_due(shanghai(2025, 11, 4, 15, 1), 200)[0][1] == 3
    clock.set(shanghai(2025, 11, 4, 15, 5))
    r = refused(stub.ChangeTicket, change(t.ticket_id, pb.TICKET_ACTION_ASSIGN, assignee_id=eng.id),
                metadata=eng.md)
    assert (r.code, r.reason) == (grpc.StatusCode.PERMISSION_DENIED, "taken_off_by_escalation")
    row = ticket_row(database, t.ticket_id)
    assert (row["status"], row["assignee_id"]) == ("assigned", None)
    taken = act(stub, second_line, t.ticket_id, pb.TICKET_ACTION_ASSIGN, assignee_id=second_line.id)
    assert taken.assignee_id == second_line.id
    given = act(stub, dispatcher, t.ticket_id, pb.TICKET_ACTION_ASSIGN, assignee_id=eng.id)
    assert given.assignee_id == eng.id

def test_an_engineer_does_not_confirm_the_resolution_of_their_own_work(stub, people, clock, store, database):
    """Security review, finding 1: an engineer as the requester of their own ticket took it, logged time,
    resolved it and confirmed it: billable hours nobody else looked at. The confirmation may not come from
    anyone whose work it bills; such a resolution does not close by itself either: a dispatcher closes it."""
    eng, dispatcher = people.engineer(), people.dispatcher()
    clock.set(shanghai(2025, 11, 4, 9, 0))
    t = opened(stub, eng, ALWAYS)
    assert ticket_row(database, t.ticket_id)["requester_id"] == eng.id
    act(stub, eng, t.ticket_id, pb.TICKET_ACTION_ASSIGN, assignee_id=eng.id)
    act(stub, eng, t.ticket_id, pb.TICKET_ACTION_START)
    clock.set(shanghai(2025, 11, 4, 10, 0))
    stub.RecordWorklog(worklog(t.ticket_id, shanghai(2025, 11, 4, 9, 0), 60), metadata=eng.md)
    act(stub, eng, t.ticket_id, pb.TICKET_ACTION_RESOLVE, note="fixed")
    assert ticket_row(database, t.ticket_id)["auto_close_at"] is None
    r = refused(stub.ChangeTicket, change(t.ticket_id, pb.TICKET_ACTION_CONFIRM), metadata=eng.md)
    assert (r.code, r.reason) == (grpc.StatusCode.PERMISSION_DENIED, "self_confirmation")
    assert ticket_row(database, t.ticket_id)["status"] == "resolved"
    assert query(database, "SELECT * FROM worklogs WHERE billable") == []
    # Weeks later it is still waiting: nothing closes it by itself.
    assert store.auto_close_due(shanghai(2025, 12, 4, 9, 0), 200) == 0
    assert ticket_row(database, t.ticket_id)["status"] == "resolved"
    assert outbox(database, "WorklogBillable") == []
    closed = act(stub, dispatcher, t.ticket_id, pb.TICKET_ACTION_CLOSE, note="checked")
    assert closed.status == pb.TICKET_STATUS_CLOSED
    assert [b["minutes"] for b in outbox(database, "WorklogBillable", ticket_id=t.ticket_id)] == [60]


def test_a_requester_who_logged_time_on_the_ticket_neither_confirms_it_nor_lets_it_close_by_itself(
        stub, people, clock, store, database):
    """The requester's worklog bills their work even once someone else is the assignee; logging it after the
    resolution stops the resolution closing by itself. A dispatcher who also logged time closes nothing of it;
    one who did not does."""
    requester, other = people.engineer(), people.engineer()
    dispatcher, colleague = people.person("dispatcher", "engineer", grade="senior"), people.dispatcher()
    clock.set(shanghai(2025, 11, 4, 9, 0))
    t = opened(stub, requester, ALWAYS)
    act(stub, dispatcher, t.ticket_id, pb.TICKET_ACTION_ASSIGN, assignee_id=requester.id)
    act(stub, requester, t.ticket_id, pb.TICKET_ACTION_START)
    act(stub, dispatcher, t.ticket_id, pb.TICKET_ACTION_ASSIGN, assignee_id=other.id)
    act(stub, other, t.ticket_id, pb.TICKET_ACTION_START)
    clock.set(shanghai(2025, 11, 4, 11, 0))
    stub.RecordWorklog(worklog(t.ticket_id, shanghai(2025, 11, 4, 10, 0), 60), metadata=other.md)
    stub.RecordWorklog(worklog(t.ticket_id, shanghai(2025, 11, 4, 10, 0), 30), metadata=dispatcher.md)
    act(stub, other, t.ticket_id, pb.TICKET_ACTION_RESOLVE, note="fixed")
    assert ticket_row(database, t.ticket_id)["auto_close_at"] is not None       # the requester did no work yet
    stub.RecordWorklog(worklog(t.ticket_id, shanghai(2025, 11, 4, 9, 0), 45), metadata=requester.md)
    assert ticket_row(database, t.ticket_id)["auto_close_at"] is None
    r = refused(stub.ChangeTicket, change(t.ticket_id, pb.TICKET_ACTION_CONFIRM), metadata=requester.md)
    assert (r.code, r.reason) == (grpc.StatusCode.PERMISSION_DENIED, "self_confirmation")
    r = refused(stub.ChangeTicket, change(t.ticket_id, pb.TICKET_ACTION_CLOSE), metadata=dispatcher.md)
    assert (r.code, r.reason) == (grpc.StatusCode.PERMISSION_DENIED, "self_confirmation")
    assert store.auto_close_due(shanghai(2025, 12, 4, 9, 0), 200) == 0
    assert act(stub, colleague, t.ticket_id, pb.TICKET_ACTION_CLOSE).status == pb.TICKET_STATUS_CLOSED
    assert sorted(b["minutes"] for b in outbox(database, "WorklogBillable", ticket_id=t.ticket_id)) == [30, 45, 60]


def test_a_resolution_closes_by_itself_when_its_requester_did_not_work_it(stub, people, clock, store, database):
    clinician, dispatcher, eng = people.clinician(), people.dispatcher(), people.engineer()
    clock.set(shanghai(2025, 11, 4, 9, 0))
    t = opened(stub, clinician, ALWAYS)
    act(stub, dispatcher, t.ticket_id, pb.TICKET_ACTION_ASSIGN, assignee_id=eng.id)
    act(stub, eng, t.ticket_id, pb.TICKET_ACTION_START)
    clock.set(shanghai(2025, 11, 4, 10, 0))
    stub.RecordWorklog(worklog(t.ticket_id, shanghai(2025, 11, 4, 9, 0), 60), metadata=eng.md)
    act(stub, eng, t.ticket_id, pb.TICKET_ACTION_RESOLVE, note="fixed")
    r = refused(stub.ChangeTicket, change(t.ticket_id, pb.TICKET_ACTION_CONFIRM), metadata=eng.md)
    assert (r.code, r.reason) == (grpc.StatusCode.PERMISSION_DENIED, "not_requester")
    assert store.auto_close_due(shanghai(2025, 12, 4, 9, 0), 200) == 1
    assert [b["minutes"] for b in outbox(database, "WorklogBillable", ticket_id=t.ticket_id)] == [60]


def test_resolved_and_closed_name_the_priority_whose_targets_judged_them(stub, people, clock, store, database):
    """A P4 breached at 40 h is raised to P3, its targets kept: TicketResolved and TicketClosed said P3 only,
    SlaBreached P4, and an assessment could not tell which target judged it."""
    clinician, dispatcher, eng = people.clinician(), people.dispatcher(), people.engineer()
    clock.set(shanghai(2025, 11, 3, 9, 0))
    t = opened(stub, clinician, ALWAYS, LOW, LOW)                                   # P4: 40 h
    act(stub, dispatcher, t.ticket_id, pb.TICKET_ACTION_ASSIGN, assignee_id=eng.id)
    act(stub, eng, t.ticket_id, pb.TICKET_ACTION_START)
    assert store.escalate_due(shanghai(2025, 11, 5, 1, 1), 200)[0][1] == 2
    clock.set(shanghai(2025, 11, 5, 2, 0))
    stub.RecordWorklog(worklog(t.ticket_id, shanghai(2025, 11, 5, 0, 0), 60), metadata=eng.md)
    act(stub, eng, t.ticket_id, pb.TICKET_ACTION_RESOLVE, note="fixed")
    act(stub, clinician, t.ticket_id, pb.TICKET_ACTION_CONFIRM)
    (breach,) = outbox(database, "SlaBreached", ticket_id=t.ticket_id, target="resolution")
    (resolved,) = outbox(database, "TicketResolved", ticket_id=t.ticket_id)
    (closed,) = outbox(database, "TicketClosed", ticket_id=t.ticket_id)
    assert breach["priority"] == resolved["sla_priority"] == closed["sla_priority"] == "P4"
    assert resolved["priority"] == closed["priority"] == "P3"                       # the ticket's, raised


def test_an_unbreached_ticket_is_judged_on_its_own_priority(stub, people, clock, database):
    clinician, dispatcher = people.clinician(), people.dispatcher()
    clock.set(shanghai(2025, 11, 3, 9, 0))
    t = opened(stub, clinician, ALWAYS, HIGH, HIGH)
    act(stub, dispatcher, t.ticket_id, pb.TICKET_ACTION_CLOSE, note="duplicate")
    (closed,) = outbox(database, "TicketClosed", ticket_id=t.ticket_id)
    assert closed["priority"] == closed["sla_priority"] == "P1"
