"""Worklogs are time already worked, each hour of an engineer paid once, at
the grade identity gave the engineer's account: the api refuses a worklog that
ends after now, that overlaps time the same engineer already logged on any
ticket, that claims a grade other than the one in the caller's token, or from
an account without a grade, and writes nothing; a retry with the idempotency
key still gets the first answer. Over real gRPC and PostgreSQL."""
from __future__ import annotations

import datetime as dt
import uuid

import grpc
import pytest
from prometheus_client import REGISTRY
from ticketing.domain.worklog import overlaps
from ticketing_testkit import (
    change,
    instant,
    open_request,
    outbox,
    query,
    refused,
    shanghai,
    ticket_row,
    worklog,
)
from tuoguan.ticketing.v1 import ticketing_pb2 as pb
from tuoguan_common import auth

pytestmark = pytest.mark.integration

T0 = shanghai(2025, 11, 4, 9, 0)


def minutes(n: float) -> dt.timedelta:
    return dt.timedelta(minutes=n)


def assigned_tickets(stub, people, engineer, count: int = 1) -> list[str]:
    clinician, dispatcher = people.clinician(), people.dispatcher()
    ids = []
    for i in range(count):
        tid = stub.OpenTicket(open_request(title=f"打印机卡纸 #{i}"), metadata=clinician.md).ticket.ticket_id
        stub.ChangeTicket(change(tid, pb.TICKET_ACTION_ASSIGN, assignee_id=engineer.id), metadata=dispatcher.md)
        ids.append(tid)
    return ids


def nothing_written(database, tid: str) -> None:
    """No worklog row, no minutes on the ticket, no event and no idempotency key kept."""
    assert query(database, "SELECT id FROM worklogs") == []
    assert ticket_row(database, tid)["worklog_minutes"] == 0
    assert outbox(database, "WorklogRecorded") == []
    assert query(database, "SELECT key FROM idempotency_keys WHERE scope = 'worklog'") == []


def minutes_counted(grade: str) -> float:
    return REGISTRY.get_sample_value("tuoguan_ticketing_worklog_minutes_total", {"grade": grade}) or 0.0


def test_a_worklog_is_recorded_at_the_grade_in_the_engineers_token(stub, people, clock, database):
    clinician, dispatcher, expert = people.clinician(), people.dispatcher(), people.engineer(grade="expert")
    clock.set(T0)
    tid = stub.OpenTicket(open_request(), metadata=clinician.md).ticket.ticket_id
    stub.ChangeTicket(change(tid, pb.TICKET_ACTION_ASSIGN, assignee_id=expert.id), metadata=dispatcher.md)
    stub.ChangeTicket(change(tid, pb.TICKET_ACTION_START), metadata=expert.md)
    clock.set(T0 + dt.timedelta(hours=3))
    counted = minutes_counted("expert")

    # No grade in the request: the account's. The same grade, in any case, is the same request's grade.
    first = stub.RecordWorklog(worklog(tid, T0, 40), metadata=expert.md).worklog
    second = stub.RecordWorklog(worklog(tid, T0 + minutes(60), 20, grade=" Expert "), metadata=expert.md).worklog
    assert (first.grade, second.grade) == ("expert", "expert")
    assert [r["grade"] for r in query(database, "SELECT grade FROM worklogs ORDER BY started_at")] == \
        ["expert", "expert"]
    assert [(e["worklog_id"], e["grade"]) for e in outbox(database, "WorklogRecorded", ticket_id=tid)] == \
        [(first.worklog_id, "expert"), (second.worklog_id, "expert")]
    assert minutes_counted("expert") - counted == 60

    stub.ChangeTicket(change(tid, pb.TICKET_ACTION_RESOLVE, note="replaced the RAID controller"), metadata=expert.md)
    stub.ChangeTicket(change(tid, pb.TICKET_ACTION_CONFIRM), metadata=clinician.md)
    assert sorted((b["worklog_id"], b["grade"], b["minutes"]) for b in outbox(database, "WorklogBillable",
                                                                                 ticket_id=tid)) == \
        sorted([(first.worklog_id, "expert", 40), (second.worklog_id, "expert", 20)])


def test_a_grade_other_than_the_accounts_is_refused_and_nothing_is_written(stub, people, clock, database):
    engineer = people.engineer(grade="intermediate")
    clock.set(T0)
    (tid,) = assigned_tickets(stub, people, engineer)
    clock.set(T0 + dt.timedelta(hours=2))

    for claimed in ("expert", "junior", "guru"):
        r = refused(stub.RecordWorklog, worklog(tid, T0, 30, grade=claimed), metadata=engineer.md)
        assert (r.code, r.field) == (grpc.StatusCode.INVALID_ARGUMENT, "grade")
        assert "this account's grade is intermediate" in r.details
    nothing_written(database, tid)

    # Without the claim, the same half hour is recorded at the account's grade.
    assert stub.RecordWorklog(worklog(tid, T0, 30), metadata=engineer.md).worklog.grade == "intermediate"


def test_an_account_without_a_grade_logs_nothing(stub, people, clock, database):
    ungraded = people.ungraded_engineer()
    clock.set(T0)
    (tid,) = assigned_tickets(stub, people, ungraded)
    clock.set(T0 + dt.timedelta(hours=2))

    # Whatever grade the request names: the account has none to price the time at.
    for claimed in ("", "senior"):
        r = refused(stub.RecordWorklog, worklog(tid, T0, 30, grade=claimed), metadata=ungraded.md)
        assert (r.code, r.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "engineer_not_graded")
        assert "an admin sets engineers' grades in identity" in r.details
    nothing_written(database, tid)


def test_only_engineers_log_time(stub, people, clock, database):
    """The contract prices engineers' hours; a dispatcher or an admin has no grade to price theirs at (identity
    grades engineers only), so they are told who logs time, not to get a grade they cannot have."""
    engineer, dispatcher, admin = people.engineer(), people.dispatcher(), people.admin()
    clock.set(T0)
    (tid,) = assigned_tickets(stub, people, engineer)
    clock.set(T0 + dt.timedelta(hours=2))
    for desk in (dispatcher, admin, people.person(auth.DISPATCHER, grade="junior")):
        r = refused(stub.RecordWorklog, worklog(tid, T0, 30), metadata=desk.md)
        assert r.code == grpc.StatusCode.PERMISSION_DENIED
    nothing_written(database, tid)
    # An admin who does an engineer's work holds the engineer role too, and its grade.
    both = people.person(auth.ADMIN, auth.ENGINEER, grade="expert")
    assert stub.RecordWorklog(worklog(tid, T0, 30), metadata=both.md).worklog.grade == "expert"


def test_a_worklog_ending_in_the_future_is_refused_and_nothing_is_written(stub, people, clock, database):
    engineer = people.engineer()
    clock.set(T0)
    (tid,) = assigned_tickets(stub, people, engineer)
    now = clock.set(T0 + dt.timedelta(hours=1))

    # Started half an hour ago, 45 minutes: a quarter of an hour not worked yet.
    ends_later = worklog(tid, now - minutes(30), 45)
    r = refused(stub.RecordWorklog, ends_later, metadata=engineer.md)
    assert (r.code, r.reason, r.field) == (grpc.StatusCode.INVALID_ARGUMENT, "worklog_in_future", "minutes")
    r = refused(stub.RecordWorklog, worklog(tid, now + minutes(10), 5), metadata=engineer.md)
    assert (r.code, r.reason, r.field) == (grpc.StatusCode.INVALID_ARGUMENT, "worklog_in_future", "started_at")
    # A minute past now is the clock skew allowed; a second more is not.
    r = refused(stub.RecordWorklog, worklog(tid, now - minutes(29) + dt.timedelta(seconds=1), 30),
                metadata=engineer.md)
    assert (r.reason, r.field) == ("worklog_in_future", "minutes")

    nothing_written(database, tid)

    # The same request, key and all, once the time has been worked: the refusal kept nothing back.
    later = clock.set(now + minutes(15))
    saved = stub.RecordWorklog(ends_later, metadata=engineer.md).worklog
    assert (saved.minutes, instant(saved.started_at)) == (45, now - minutes(30))
    # Ending a minute after the api's now: within the clock skew.
    assert stub.RecordWorklog(worklog(tid, later, 1), metadata=engineer.md).worklog.minutes == 1
    assert ticket_row(database, tid)["worklog_minutes"] == 46


def test_a_worklog_starting_before_its_ticket_was_opened_is_refused_and_nothing_is_written(
        stub, people, clock, database):
    """The walkthrough's: a day's work logged from ten days before the ticket was opened, and the form's
    default start (half an hour ago) on a ticket opened ten minutes ago, were recorded, and billed on closing."""
    engineer = people.engineer()
    opened = T0 + dt.timedelta(seconds=27)
    clock.set(opened)
    (tid,) = assigned_tickets(stub, people, engineer)
    now = clock.set(opened + dt.timedelta(days=2))

    for start, length in ((opened - dt.timedelta(days=10), 1440), (opened - minutes(30), 40),
                          (T0 - minutes(1), 1)):
        r = refused(stub.RecordWorklog, worklog(tid, start, length), metadata=engineer.md)
        assert (r.code, r.reason, r.field) == \
            (grpc.StatusCode.INVALID_ARGUMENT, "worklog_before_ticket_opened", "started_at")
        # When the ticket was opened, to the minute, in the hospital's time.
        assert "before the ticket was opened at 2025-11-04T09:00+08:00" in r.details
    nothing_written(database, tid)

    # From the minute it was opened (the seconds before its opening, as a form types it), up to now.
    first = stub.RecordWorklog(worklog(tid, T0, 30), metadata=engineer.md).worklog
    last = stub.RecordWorklog(worklog(tid, now - minutes(60), 60), metadata=engineer.md).worklog
    assert (instant(first.started_at), instant(last.started_at)) == (T0, now - minutes(60))
    assert ticket_row(database, tid)["worklog_minutes"] == 90


def test_one_engineers_worklogs_may_not_overlap_across_tickets(stub, people, clock, database):
    engineer, colleague = people.engineer(), people.engineer()
    # Opened an hour before the worklogs: a worklog may not start before its ticket was opened.
    clock.set(T0 - dt.timedelta(hours=1))
    first, second = assigned_tickets(stub, people, engineer, 2)
    (theirs,) = assigned_tickets(stub, people, colleague)
    clock.set(T0 + dt.timedelta(hours=4))

    kept = stub.RecordWorklog(worklog(first, T0, 60), metadata=engineer.md).worklog
    for ticket, start, length in ((second, T0 + minutes(30), 60), (first, T0 + minutes(59), 1),
                                  (second, T0 - minutes(30), 120), (second, T0 + minutes(10), 20)):
        r = refused(stub.RecordWorklog, worklog(ticket, start, length), metadata=engineer.md)
        assert (r.code, r.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "worklog_overlaps")
    with pytest.raises(grpc.RpcError) as caught:
        stub.RecordWorklog(worklog(second, T0 + minutes(30), 60, note="换了硒鼓"), metadata=engineer.md)
    message = caught.value.details()
    assert "from 2025-11-04T09:00+08:00 to 2025-11-04T10:00+08:00" in message
    assert engineer.id not in message and "硒鼓" not in message

    assert [r["id"] for r in query(database, "SELECT id FROM worklogs")] == [uuid.UUID(kept.worklog_id)]
    assert (ticket_row(database, first)["worklog_minutes"], ticket_row(database, second)["worklog_minutes"]) == \
        (60, 0)
    assert len(outbox(database, "WorklogRecorded")) == 1

    # Back to back is no overlap, and another engineer's hour is theirs.
    after = stub.RecordWorklog(worklog(second, T0 + minutes(60), 30), metadata=engineer.md).worklog
    before = stub.RecordWorklog(worklog(second, T0 - minutes(30), 30), metadata=engineer.md).worklog
    same_hour = stub.RecordWorklog(worklog(theirs, T0, 60), metadata=colleague.md).worklog
    assert (after.minutes, before.minutes, same_hour.minutes) == (30, 30, 60)
    assert ticket_row(database, second)["worklog_minutes"] == 60


def test_a_retry_with_its_key_answers_the_first_worklog_not_an_overlap(stub, people, clock, database):
    engineer = people.engineer()
    clock.set(T0)
    (tid,) = assigned_tickets(stub, people, engineer)
    clock.set(T0 + dt.timedelta(hours=2))
    request = worklog(tid, T0, 45)

    first = stub.RecordWorklog(request, metadata=engineer.md).worklog
    assert stub.RecordWorklog(request, metadata=engineer.md).worklog == first
    clock.set(T0 + dt.timedelta(days=1))
    assert stub.RecordWorklog(request, metadata=engineer.md).worklog == first
    respelt = pb.RecordWorklogRequest()
    respelt.CopyFrom(request)
    respelt.ticket_id = tid.upper()
    assert stub.RecordWorklog(respelt, metadata=engineer.md).worklog == first, "one ticket id, spelt in capitals"
    assert len(query(database, "SELECT id FROM worklogs")) == 1
    assert ticket_row(database, tid)["worklog_minutes"] == 45
    assert len(outbox(database, "WorklogRecorded")) == 1

    # The same time under a new key is a second claim on it.
    again = pb.RecordWorklogRequest()
    again.CopyFrom(request)
    again.idempotency_key = "another-key"
    r = refused(stub.RecordWorklog, again, metadata=engineer.md)
    assert (r.code, r.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "worklog_overlaps")


def test_a_retry_gets_its_first_answer_whatever_the_checks_would_say_now(stub, people, clock):
    """The key is read before anything is checked: a retry of a worklog already recorded answers it, even once
    its start is more than 31 days back (a worklog of the 31st day, its answer lost, retried the next morning)
    or the account's grade changed (an admin regraded the engineer, who signed in again), where the checks
    refused it: the engineer read that the time was not recorded, and it was."""
    engineer = people.engineer()
    clock.set(T0)
    (tid,) = assigned_tickets(stub, people, engineer)
    clock.set(T0 + dt.timedelta(days=31))
    request = worklog(tid, T0 + minutes(30), 45, grade="senior")
    first = stub.RecordWorklog(request, metadata=engineer.md).worklog
    clock.set(T0 + dt.timedelta(days=31, hours=1))
    assert stub.RecordWorklog(request, metadata=engineer.md).worklog == first
    regraded = people.issuer.issue(engineer.id, [auth.ENGINEER], grade="expert")
    assert stub.RecordWorklog(request, metadata=auth.bearer_metadata(regraded)).worklog == first
    # A key used for another request is still refused as such.
    other = pb.RecordWorklogRequest()
    other.CopyFrom(request)
    other.minutes = 50
    r = refused(stub.RecordWorklog, other, metadata=engineer.md)
    assert (r.code, r.field) == (grpc.StatusCode.INVALID_ARGUMENT, "idempotency_key")


# What the domain calls an overlap is what the database's constraint refuses.
@pytest.mark.parametrize("a, b", [
    ((0, 60), (30, 90)), ((0, 60), (60, 90)), ((60, 90), (0, 60)), ((0, 60), (10, 20)), ((0, 60), (0, 60)),
    ((0, 1), (1, 2)), ((0, 60), (61, 62)),
])
def test_the_domains_overlap_is_postgresqls(database, a, b):
    (a0, a1), (b0, b1) = [(T0 + minutes(s), T0 + minutes(e)) for s, e in (a, b)]
    (row,) = query(database, "SELECT tstzrange(%s, %s) && tstzrange(%s, %s) AS hit", a0, a1, b0, b1)
    assert row["hit"] == overlaps(a0, a1, b0, b1)


def test_the_stored_end_is_the_start_plus_the_minutes_in_any_time_zone(database):
    started = shanghai(2025, 3, 29, 23, 0)
    with database.transaction() as cur:
        # Europe/London's clocks went forward that night: whole minutes are still whole minutes.
        cur.execute("SET LOCAL TIME ZONE 'Europe/London'")
        cur.execute("SELECT worklog_end(%s, 1440) AS ended_at", (started,))
        assert cur.fetchone()["ended_at"] == started + dt.timedelta(hours=24)


def test_an_engineer_taken_off_a_ticket_still_logs_the_hours_worked_on_it(stub, people, clock, store, database):
    """The level-3 hand-off (assignee NULL) and a dispatcher's reassignment take the ticket off its engineer,
    not the hours already worked: engineers log them afterwards as a rule. Someone never on it logs nothing."""
    clinician, dispatcher = people.clinician(), people.dispatcher()
    eng, eng2, stranger = people.engineer(), people.engineer(), people.engineer()
    clock.set(T0)
    t = stub.OpenTicket(open_request(impact=pb.LEVEL_HIGH, urgency=pb.LEVEL_HIGH), metadata=clinician.md).ticket
    stub.ChangeTicket(change(t.ticket_id, pb.TICKET_ACTION_ASSIGN, assignee_id=eng.id), metadata=dispatcher.md)
    clock.set(T0 + minutes(5))
    stub.ChangeTicket(change(t.ticket_id, pb.TICKET_ACTION_START), metadata=eng.md)
    # P1, 4 h: beyond 150 % at 15:00 the ticket goes to the escalation team, off the engineer.
    assert store.escalate_due(shanghai(2025, 11, 4, 15, 2), 200)[0][1] == 3
    assert ticket_row(database, t.ticket_id)["assignee_id"] is None
    assert [r["assignee_id"] for r in query(database, "SELECT assignee_id FROM ticket_events WHERE ticket_id = %s "
                                            "AND kind = 'assigned' ORDER BY id", t.ticket_id)] == [eng.id, None]
    clock.set(shanghai(2025, 11, 4, 15, 10))
    log = stub.RecordWorklog(worklog(t.ticket_id, T0 + minutes(5), 355), metadata=eng.md).worklog
    assert (log.engineer_id, log.minutes) == (eng.id, 355)

    # The dispatcher gives it to another engineer: the first still logs what they did, so does the second.
    stub.ChangeTicket(change(t.ticket_id, pb.TICKET_ACTION_ASSIGN, assignee_id=eng2.id), metadata=dispatcher.md)
    clock.set(shanghai(2025, 11, 4, 16, 0))
    assert stub.RecordWorklog(worklog(t.ticket_id, shanghai(2025, 11, 4, 15, 0), 10),
                              metadata=eng.md).worklog.minutes == 10
    assert stub.RecordWorklog(worklog(t.ticket_id, shanghai(2025, 11, 4, 15, 10), 50),
                              metadata=eng2.md).worklog.minutes == 50
    r = refused(stub.RecordWorklog, worklog(t.ticket_id, shanghai(2025, 11, 4, 15, 0), 30), metadata=stranger.md)
    assert (r.code, r.reason) == (grpc.StatusCode.PERMISSION_DENIED, "not_assignee")
    # Every other check holds for them: no overlap, nothing on a closed ticket.
    r = refused(stub.RecordWorklog, worklog(t.ticket_id, shanghai(2025, 11, 4, 14, 0), 30), metadata=eng.md)
    assert (r.code, r.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "worklog_overlaps")
    stub.ChangeTicket(change(t.ticket_id, pb.TICKET_ACTION_START), metadata=eng2.md)
    stub.ChangeTicket(change(t.ticket_id, pb.TICKET_ACTION_RESOLVE, note="fixed"), metadata=eng2.md)
    stub.ChangeTicket(change(t.ticket_id, pb.TICKET_ACTION_CONFIRM), metadata=clinician.md)
    billable = outbox(database, "WorklogBillable", ticket_id=t.ticket_id)
    assert sorted((b["engineer_id"], b["minutes"]) for b in billable) == sorted(
        [(eng.id, 355), (eng.id, 10), (eng2.id, 50)])
    r = refused(stub.RecordWorklog, worklog(t.ticket_id, shanghai(2025, 11, 4, 15, 20), 5), metadata=eng.md)
    assert r.reason == "ticket_closed"


def test_history_from_before_assignments_named_the_engineer_still_shows_who_worked_a_ticket(
        stub, people, clock, database):
    """ASSIGNED events recorded before migration 0006 name nobody: an engineer who started the ticket (only its
    engineer does) still logs time on it once a dispatcher gave it to someone else."""
    clinician, dispatcher, eng, eng2 = people.clinician(), people.dispatcher(), people.engineer(), people.engineer()
    clock.set(T0)
    t = stub.OpenTicket(open_request(), metadata=clinician.md).ticket
    stub.ChangeTicket(change(t.ticket_id, pb.TICKET_ACTION_ASSIGN, assignee_id=eng.id), metadata=dispatcher.md)
    stub.ChangeTicket(change(t.ticket_id, pb.TICKET_ACTION_START), metadata=eng.md)
    stub.ChangeTicket(change(t.ticket_id, pb.TICKET_ACTION_ASSIGN, assignee_id=eng2.id), metadata=dispatcher.md)
    query(database, "UPDATE ticket_events SET assignee_id = NULL WHERE ticket_id = %s RETURNING id", t.ticket_id)
    clock.set(T0 + minutes(60))
    assert stub.RecordWorklog(worklog(t.ticket_id, T0, 30), metadata=eng.md).worklog.minutes == 30


def test_an_hour_logged_on_a_duplicate_closed_unresolved_is_logged_again_on_the_ticket_really_worked(
        stub, people, clock, database):
    """A ticket closed unresolved bills nothing: its worklogs are void, and no longer hold the engineer's
    time. The hour was paid nowhere: refused (worklog_overlaps) on the real ticket, with nothing to correct it."""
    clinician, dispatcher, eng = people.clinician(), people.dispatcher(), people.engineer()
    clock.set(T0)
    real, dup, other = (stub.OpenTicket(open_request(), metadata=clinician.md).ticket for _ in range(3))
    for t in (real, dup, other):
        stub.ChangeTicket(change(t.ticket_id, pb.TICKET_ACTION_ASSIGN, assignee_id=eng.id), metadata=dispatcher.md)
    clock.set(T0 + minutes(90))
    stub.RecordWorklog(worklog(dup.ticket_id, T0, 60), metadata=eng.md)
    stub.RecordWorklog(worklog(other.ticket_id, T0 + minutes(60), 30), metadata=eng.md)
    stub.ChangeTicket(change(dup.ticket_id, pb.TICKET_ACTION_CLOSE, note="duplicate"), metadata=dispatcher.md)
    (closed,) = outbox(database, "TicketClosed", ticket_id=dup.ticket_id)
    assert closed.get("billable_minutes", 0) == 0
    assert [(r["void"], r["billable"]) for r in query(database, "SELECT * FROM worklogs WHERE ticket_id = %s",
                                                       dup.ticket_id)] == [(True, False)]
    log = stub.RecordWorklog(worklog(real.ticket_id, T0, 60), metadata=eng.md).worklog
    assert log.minutes == 60
    # Time not void still holds: the refusal names it, not the duplicate's.
    r = refused(stub.RecordWorklog, worklog(real.ticket_id, T0 + minutes(60), 30), metadata=eng.md)
    assert (r.code, r.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "worklog_overlaps")
    assert "from 2025-11-04T10:00+08:00 to 2025-11-04T10:30+08:00" in r.details
    r = refused(stub.RecordWorklog, worklog(other.ticket_id, T0, 30), metadata=eng.md)
    assert "from 2025-11-04T09:00+08:00 to 2025-11-04T10:00+08:00" in r.details     # the real ticket's now
    stub.ChangeTicket(change(real.ticket_id, pb.TICKET_ACTION_START), metadata=eng.md)
    stub.ChangeTicket(change(real.ticket_id, pb.TICKET_ACTION_RESOLVE, note="fixed"), metadata=eng.md)
    stub.ChangeTicket(change(real.ticket_id, pb.TICKET_ACTION_CONFIRM), metadata=clinician.md)
    assert [b["minutes"] for b in outbox(database, "WorklogBillable")] == [60]
    assert [(r["void"], r["billable"]) for r in query(database, "SELECT * FROM worklogs WHERE ticket_id = %s",
                                                       real.ticket_id)] == [(False, True)]
