"""The SLA is computed from the history on every read, so a change to a
subsystem's service hours or to the working calendar re-rates open tickets at
once. What the worker acts on must follow: the escalation timer's next look
(next_check_at) and the instant an unconfirmed resolution closes by itself
(auto_close_at) were kept from before the change, so a threshold the change
brought forward was acted on days late, and a day off given to the hospital
did not give the requester that day to confirm."""
from __future__ import annotations

import datetime as dt

import pytest
from ticketing_testkit import ALWAYS, OFFICE, change, instant, open_request, outbox, shanghai, ticket_row, worklog
from ticketing.store import Store
from tuoguan.ticketing.v1 import ticketing_pb2 as pb

pytestmark = pytest.mark.integration


def opened(stub, person, subsystem: str, impact: int, urgency: int) -> pb.Ticket:
    return stub.OpenTicket(open_request(subsystem, impact, urgency), metadata=person.md).ticket


def read(stub, person, ticket_id: str) -> pb.Ticket:
    return stub.GetTicket(pb.GetTicketRequest(ticket_id=ticket_id), metadata=person.md).ticket


def calendar_day(day: str, working: bool, remove: bool = False) -> pb.PutCalendarDayRequest:
    return pb.PutCalendarDayRequest(day=pb.CalendarDay(day=day, working=working, note="调休"), remove=remove)


def test_serving_a_subsystem_around_the_clock_brings_its_tickets_escalation_forward(stub, people, clock, store):
    admin, clinician = people.admin(), people.clinician()
    # Friday evening, after FIN's office hours: a P1's 15 minutes to respond start on Monday morning.
    clock.set(shanghai(2025, 11, 7, 18, 0))
    ticket = opened(stub, clinician, OFFICE, pb.LEVEL_HIGH, pb.LEVEL_HIGH)
    assert instant(ticket.sla.response_due) == shanghai(2025, 11, 10, 8, 15)

    fin = next(s for s in stub.ListSubsystems(pb.ListSubsystemsRequest(), metadata=admin.md).subsystems
               if s.code == OFFICE)
    fin.service_hours = "24x7"
    stub.PutSubsystem(pb.PutSubsystemRequest(subsystem=fin, idempotency_key="fin-24x7"), metadata=admin.md)
    assert instant(read(stub, clinician, ticket.ticket_id).sla.response_due) == shanghai(2025, 11, 7, 18, 15)

    # The worker's escalation timer, a quarter of an hour after the new due instant, sees the breach.
    acted = store.escalate_due(shanghai(2025, 11, 7, 18, 30), 200)
    assert acted == [(ticket.ticket_id, 0, ["response"])]


def test_a_make_up_working_day_brings_the_escalation_forward_for_the_worker_too(stub, people, clock, store):
    admin, clinician = people.admin(), people.clinician()
    # 2027 is past the statutory data: Monday to Friday until an admin says otherwise. A P4 opened on
    # Friday at 16:00 has 8 hours of FIN's office hours to respond: Monday 16:00.
    clock.set(shanghai(2027, 1, 29, 16, 0))
    ticket = opened(stub, clinician, OFFICE, pb.LEVEL_LOW, pb.LEVEL_LOW)
    assert instant(ticket.sla.response_due) == shanghai(2027, 2, 1, 16, 0)
    # The worker has looked already (and keeps its copy of the calendar for a while).
    assert store.escalate_due(shanghai(2027, 1, 29, 16, 30), 200) == []

    # Saturday becomes a make-up working day: the response is due on Saturday at 16:00.
    stub.PutCalendarDay(calendar_day("2027-01-30", True), metadata=admin.md)
    assert instant(read(stub, clinician, ticket.ticket_id).sla.response_due) == shanghai(2027, 1, 30, 16, 0)
    assert store.escalate_due(shanghai(2027, 1, 30, 16, 30), 200) == [(ticket.ticket_id, 0, ["response"])]


def test_a_day_off_moves_an_unconfirmed_resolutions_auto_close(stub, people, clock, store, database):
    admin, clinician, dispatcher, engineer = people.admin(), people.clinician(), people.dispatcher(), \
        people.engineer()
    t0 = clock.set(shanghai(2027, 1, 29, 16, 0))
    tid = opened(stub, clinician, ALWAYS, pb.LEVEL_MEDIUM, pb.LEVEL_MEDIUM).ticket_id
    stub.ChangeTicket(change(tid, pb.TICKET_ACTION_ASSIGN, assignee_id=engineer.id), metadata=dispatcher.md)
    stub.ChangeTicket(change(tid, pb.TICKET_ACTION_START), metadata=engineer.md)
    clock.set(shanghai(2027, 1, 29, 17, 0))
    stub.RecordWorklog(worklog(tid, t0, 45), metadata=engineer.md)
    stub.ChangeTicket(change(tid, pb.TICKET_ACTION_RESOLVE, note="index rebuilt"), metadata=engineer.md)
    # 24 of the hospital's working hours (08:00-12:00, 13:30-17:30): half an hour on Friday, Monday,
    # Tuesday, and Wednesday until 17:00.
    assert ticket_row(database, tid)["auto_close_at"] == shanghai(2027, 2, 3, 17, 0)

    # Tuesday is given to the hospital as a day off: the requester has until Thursday.
    stub.PutCalendarDay(calendar_day("2027-02-02", False), metadata=admin.md)
    assert ticket_row(database, tid)["auto_close_at"] == shanghai(2027, 2, 4, 17, 0)
    assert store.auto_close_due(shanghai(2027, 2, 3, 17, 30), 200) == 0
    assert ticket_row(database, tid)["status"] == "resolved"

    # Taken back: Wednesday again.
    stub.PutCalendarDay(calendar_day("2027-02-02", False, remove=True), metadata=admin.md)
    assert ticket_row(database, tid)["auto_close_at"] == shanghai(2027, 2, 3, 17, 0)
    assert store.auto_close_due(shanghai(2027, 2, 3, 17, 30), 200) == 1


def test_a_response_made_after_its_due_instant_is_still_reported_as_breached(stub, people, clock, store, database):
    """The worker had not looked between the due instant and the start (its timer runs every few seconds,
    and not at all while it restarts): the start moved next_check_at to the resolution's 75 % mark, so the
    response breach was announced hours later, or never once the ticket was resolved by then. The late
    start announces it itself, once."""
    clinician, dispatcher, engineer = people.clinician(), people.dispatcher(), people.engineer()
    t0 = clock.set(shanghai(2025, 11, 4, 9, 0))
    tid = opened(stub, clinician, ALWAYS, pb.LEVEL_HIGH, pb.LEVEL_HIGH).ticket_id   # P1: 15 minutes
    stub.ChangeTicket(change(tid, pb.TICKET_ACTION_ASSIGN, assignee_id=engineer.id), metadata=dispatcher.md)
    clock.set(shanghai(2025, 11, 4, 9, 20))
    started = stub.ChangeTicket(change(tid, pb.TICKET_ACTION_START), metadata=engineer.md).ticket
    assert started.sla.response_breached
    (breach,) = outbox(database, "SlaBreached", ticket_id=tid)
    assert breach["target"] == "response"
    assert (instant(breach["due_at"]), instant(breach["detected_at"])) == (t0 + dt.timedelta(minutes=15),
                                                                           shanghai(2025, 11, 4, 9, 20))
    assert ticket_row(database, tid)["response_breached"] is True

    assert store.escalate_due(shanghai(2025, 11, 4, 9, 20) + dt.timedelta(seconds=5), 200) == []
    assert len(outbox(database, "SlaBreached", ticket_id=tid)) == 1
    # Once, and the next look is the resolution's 75 % mark (3 of its 4 hours).
    assert store.escalate_due(shanghai(2025, 11, 4, 9, 30), 200) == []
    assert ticket_row(database, tid)["next_check_at"] == t0 + dt.timedelta(hours=3)


def test_a_late_response_resolved_before_the_worker_looks_is_reported_once(stub, people, clock, store, database):
    """Started and resolved in one go after the response was due, between two of the worker's looks: the
    worker looks at open tickets only, so the changes announce it."""
    clinician, dispatcher, engineer = people.clinician(), people.dispatcher(), people.engineer()
    clock.set(shanghai(2025, 11, 4, 9, 0))
    tid = opened(stub, clinician, ALWAYS, pb.LEVEL_HIGH, pb.LEVEL_HIGH).ticket_id   # P1: 15 minutes
    stub.ChangeTicket(change(tid, pb.TICKET_ACTION_ASSIGN, assignee_id=engineer.id), metadata=dispatcher.md)
    clock.set(shanghai(2025, 11, 4, 9, 16))
    stub.ChangeTicket(change(tid, pb.TICKET_ACTION_START), metadata=engineer.md)
    stub.RecordWorklog(worklog(tid, shanghai(2025, 11, 4, 9, 6), 10), metadata=engineer.md)
    stub.ChangeTicket(change(tid, pb.TICKET_ACTION_RESOLVE, note="restarted the interface engine"),
                      metadata=engineer.md)
    assert store.escalate_due(shanghai(2025, 11, 4, 9, 16) + dt.timedelta(seconds=5), 200) == []
    assert [b["target"] for b in outbox(database, "SlaBreached", ticket_id=tid)] == ["response"]
    (resolved,) = outbox(database, "TicketResolved", ticket_id=tid)
    assert resolved["response_breached"] is True


def test_a_day_another_replica_changed_counts_at_once(store, config, database):
    """Each api replica keeps the calendar it read; one that kept it a minute after another replica took a
    change rated tickets by the old days (and put their next checks back)."""
    other_replica = Store(database, config)
    tuesday, now = dt.date(2027, 2, 2), shanghai(2027, 1, 20, 9, 0)
    with database.transaction() as cur:
        assert store.calendar(cur).is_working_day(tuesday)
        kept = store.calendar(cur)
    other_replica.put_calendar_day(tuesday, False, "春节调休", remove=False, now=now)
    with database.transaction() as cur:
        assert not store.calendar(cur).is_working_day(tuesday)
    other_replica.put_calendar_day(tuesday, True, "", remove=False, now=now)
    with database.transaction() as cur:
        assert store.calendar(cur).is_working_day(tuesday)
    other_replica.put_calendar_day(tuesday, False, "", remove=True, now=now)
    with database.transaction() as cur:
        assert store.calendar(cur) == kept
        # Unchanged since: the copy is kept (with what it has worked out), not read again.
        assert store.calendar(cur) is store.calendar(cur)


def test_a_late_resolution_made_between_the_workers_looks_is_announced_once(stub, people, clock, store, database):
    """Resolved half a minute past its due instant, before the timer looked (it looks at open tickets only,
    every few seconds, and not at all while it restarts): the resolution announces the breach. Reopened, the
    ticket is escalated by the timer as before, without a second announcement."""
    clinician, dispatcher, engineer = people.clinician(), people.dispatcher(), people.engineer()
    clock.set(shanghai(2025, 11, 4, 9, 0))
    tid = opened(stub, clinician, ALWAYS, pb.LEVEL_HIGH, pb.LEVEL_HIGH).ticket_id   # P1
    stub.ChangeTicket(change(tid, pb.TICKET_ACTION_ASSIGN, assignee_id=engineer.id), metadata=dispatcher.md)
    stub.ChangeTicket(change(tid, pb.TICKET_ACTION_START), metadata=engineer.md)
    due = instant(read(stub, engineer, tid).sla.resolution_due)
    late = clock.set(due + dt.timedelta(seconds=30))
    stub.RecordWorklog(worklog(tid, late - dt.timedelta(minutes=60), 30), metadata=engineer.md)
    resolved = stub.ChangeTicket(change(tid, pb.TICKET_ACTION_RESOLVE, note="failed over to the standby"),
                                 metadata=engineer.md).ticket
    assert resolved.sla.resolution_breached
    assert store.escalate_due(late + dt.timedelta(seconds=5), 200) == []
    (breach,) = outbox(database, "SlaBreached", ticket_id=tid, target="resolution")
    assert (instant(breach["due_at"]), instant(breach["detected_at"])) == (due, late)

    clock.set(late + dt.timedelta(minutes=5))
    stub.ChangeTicket(change(tid, pb.TICKET_ACTION_REOPEN, note="down again"), metadata=clinician.md)
    acted = store.escalate_due(late + dt.timedelta(minutes=5, seconds=5), 200)
    assert [(ticket, level) for ticket, level, _breaches in acted] == [(tid, 2)]
    assert len(outbox(database, "SlaBreached", ticket_id=tid, target="resolution")) == 1
    assert read(stub, engineer, tid).priority == pb.PRIORITY_P1


def test_a_response_due_at_a_windows_end_is_not_looked_at_on_every_tick_until_service_resumes(
        stub, people, clock, store, database):
    """A P1 opened on Friday at 17:15 on office hours (FIN) is due at 17:30, the window's end, and breached
    only once service resumes on Monday: the worker's next check was "now" on every 5-second tick of the
    weekend (a row lock, the history read, an UPDATE each time, ahead of the tickets really due)."""
    clinician = people.clinician()
    clock.set(shanghai(2025, 11, 7, 17, 15))
    t = stub.OpenTicket(open_request(OFFICE, pb.LEVEL_HIGH, pb.LEVEL_HIGH), metadata=clinician.md).ticket
    monday = shanghai(2025, 11, 10, 8, 0) + dt.timedelta(microseconds=1)
    for now in (shanghai(2025, 11, 7, 17, 31), shanghai(2025, 11, 8, 3, 0), shanghai(2025, 11, 9, 12, 0)):
        assert store.escalate_due(now, 200) == []
        assert ticket_row(database, t.ticket_id)["next_check_at"] == monday
    assert store.escalate_due(shanghai(2025, 11, 10, 8, 0) + dt.timedelta(seconds=5), 200) == \
        [(t.ticket_id, 0, ["response"])]
    (breach,) = outbox(database, "SlaBreached", ticket_id=t.ticket_id)
    assert instant(breach["due_at"]) == shanghai(2025, 11, 7, 17, 30)


def test_a_paused_ticket_a_change_of_service_hours_puts_past_its_levels_is_acted_on_at_once(
        stub, people, clock, store, database):
    """A hospital's pause stops the clock, and the worker has no next look at the ticket (next_check_at NULL).
    Serving the subsystem around the clock counts the weekend worked before the pause: the ticket reads far
    past its target, yet the change left it without a look, so its breach was announced and its escalation
    made only once someone resumed it. Now the worker looks at once: the breach announced, the priority raised
    and the hand-off made (its pause ends, README: it stops the clock no more)."""
    admin, clinician, dispatcher, engineer = people.admin(), people.clinician(), people.dispatcher(), \
        people.engineer()
    clock.set(shanghai(2025, 11, 7, 17, 0))                                # Friday, half an hour before FIN closes
    ticket = opened(stub, clinician, OFFICE, pb.LEVEL_HIGH, pb.LEVEL_HIGH)  # P1: 4 h, level 3 beyond 6 h
    tid = ticket.ticket_id
    stub.ChangeTicket(change(tid, pb.TICKET_ACTION_ASSIGN, assignee_id=engineer.id), metadata=dispatcher.md)
    clock.set(shanghai(2025, 11, 7, 17, 5))
    stub.ChangeTicket(change(tid, pb.TICKET_ACTION_START), metadata=engineer.md)
    clock.set(shanghai(2025, 11, 10, 8, 30))                               # Monday: an hour of FIN's time so far
    paused = stub.ChangeTicket(change(tid, pb.TICKET_ACTION_PAUSE, pause_side=pb.PAUSE_SIDE_HOSPITAL),
                               metadata=engineer.md).ticket
    assert (paused.sla.escalation_level, paused.sla.resolution_elapsed_seconds) == (0, 3600.0)
    assert ticket_row(database, tid)["next_check_at"] is None

    clock.set(shanghai(2025, 11, 10, 9, 0))
    fin = next(s for s in stub.ListSubsystems(pb.ListSubsystemsRequest(), metadata=admin.md).subsystems
               if s.code == OFFICE)
    fin.service_hours = "24x7"
    stub.PutSubsystem(pb.PutSubsystemRequest(subsystem=fin, idempotency_key="fin-24x7-paused"), metadata=admin.md)
    assert read(stub, clinician, tid).sla.escalation_level == 3

    assert store.escalate_due(shanghai(2025, 11, 10, 9, 1), 200) == [(tid, 3, ["resolution"])]
    row = ticket_row(database, tid)
    assert (row["status"], row["assignee_id"], row["team"], row["paused_by"]) == \
        ("assigned", None, "escalation", None)
    assert len(outbox(database, "SlaBreached", ticket_id=tid, target="resolution")) == 1
