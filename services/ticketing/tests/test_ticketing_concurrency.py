"""Many callers at once: on a small connection pool, nothing in a call may need
a second connection while it holds one (the calendar is read through the
call's own transaction), or a busy api deadlocks until every call times out;
one engineer's overlapping worklogs racing each other record exactly one, a
worklog retried with its key at once is recorded once, and a device's alarm
and its clearance handled at the same moment leave no ticket open."""
from __future__ import annotations

import datetime as dt
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import grpc
import psycopg
import pytest
from ticketing.api import register
from ticketing.config import TicketingConfig
from ticketing.seed import seed
from ticketing.worker import TicketingWorker
from ticketing_testkit import ALWAYS, change, open_request, outbox, query, shanghai, ticket_row, worklog
from tuoguan.specimens.v1 import events_pb2 as specimens
from tuoguan.ticketing.v1 import ticketing_pb2 as pb
from tuoguan.ticketing.v1 import ticketing_pb2_grpc as pb_grpc
from tuoguan_common.db import Database
from tuoguan_common.grpc_server import REASON_KEY, build_server
from tuoguan_common.outbox import event_payload, utcnow
from tuoguan_common.testing import free_port

pytestmark = pytest.mark.integration


def test_more_callers_than_connections_all_get_their_ticket(database, verifier, people):
    seed(database)
    small = Database(database.url, max_size=2, name="ticketing-small-pool").open()
    server, port = build_server(
        service="ticketing", register=lambda srv: register(srv, None, small, TicketingConfig()),
        verifier=verifier, port=free_port(), host="127.0.0.1", workers=12)
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        stub = pb_grpc.TicketingServiceStub(channel)
        clinician = people.clinician()
        with ThreadPoolExecutor(12) as pool:
            tickets = list(pool.map(lambda i: stub.OpenTicket(open_request(ALWAYS, title=f"#{i}"),
                                                              metadata=clinician.md, timeout=10).ticket, range(24)))
        assert len({t.ticket_id for t in tickets}) == 24
    finally:
        channel.close()
        server.stop(0).wait()
        small.close()


def _at_once(calls: list) -> list:
    """Runs every call from its own thread, released together; each call's answer or its RpcError."""
    barrier = threading.Barrier(len(calls))

    def run(call):
        barrier.wait()
        try:
            return call()
        except grpc.RpcError as exc:
            return exc

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


def test_many_overlapping_worklogs_of_one_engineer_at_once_record_exactly_one(stub, people, clock, database):
    clinician, dispatcher, engineer = people.clinician(), people.dispatcher(), people.engineer()
    t0 = clock.set(shanghai(2025, 11, 4, 9, 0))
    tickets = []
    for i in range(4):
        tid = stub.OpenTicket(open_request(ALWAYS, title=f"#{i}"), metadata=clinician.md).ticket.ticket_id
        stub.ChangeTicket(change(tid, pb.TICKET_ACTION_ASSIGN, assignee_id=engineer.id), metadata=dispatcher.md)
        tickets.append(tid)
    clock.set(t0 + dt.timedelta(hours=3))
    # 24 claims on the same engineer's morning, spread over four tickets: every one shares 09:23-10:00
    # with every other.
    requests = [worklog(tickets[i % 4], t0 + dt.timedelta(minutes=i), 60 - i) for i in range(24)]
    answers = _at_once([lambda r=r: stub.RecordWorklog(r, metadata=engineer.md, timeout=30) for r in requests])

    recorded = [a.worklog for a in answers if isinstance(a, pb.RecordWorklogResponse)]
    refusals = [(a.code(), dict(a.trailing_metadata() or ()).get(REASON_KEY)) for a in answers
                if isinstance(a, grpc.RpcError)]
    assert len(recorded) == 1, refusals
    assert refusals == [(grpc.StatusCode.FAILED_PRECONDITION, "worklog_overlaps")] * 23
    rows = query(database, "SELECT id, minutes FROM worklogs")
    assert [(str(r["id"]), r["minutes"]) for r in rows] == [(recorded[0].worklog_id, recorded[0].minutes)]
    assert sum(ticket_row(database, t)["worklog_minutes"] for t in tickets) == recorded[0].minutes
    assert len(outbox(database, "WorklogRecorded")) == 1


def test_a_worklog_retried_with_its_key_at_once_is_recorded_once(stub, people, clock, database):
    clinician, dispatcher, engineer = people.clinician(), people.dispatcher(), people.engineer()
    t0 = clock.set(shanghai(2025, 11, 4, 9, 0))
    tid = stub.OpenTicket(open_request(ALWAYS), metadata=clinician.md).ticket.ticket_id
    stub.ChangeTicket(change(tid, pb.TICKET_ACTION_ASSIGN, assignee_id=engineer.id), metadata=dispatcher.md)
    clock.set(t0 + dt.timedelta(hours=1))
    request = worklog(tid, t0, 50)
    answers = _at_once([lambda: stub.RecordWorklog(request, metadata=engineer.md, timeout=30)] * 12)

    assert all(isinstance(a, pb.RecordWorklogResponse) for a in answers), answers
    assert len({a.worklog.worklog_id for a in answers}) == 1
    assert len(query(database, "SELECT id FROM worklogs")) == 1
    assert ticket_row(database, tid)["worklog_minutes"] == 50


def test_an_alarm_and_its_clearance_handled_at_the_same_moment_leave_no_ticket_open(store, database):
    """Two handlers, one device: the raise is half done (its ticket not committed) when the clearance
    comes. The clearance waits for it (one lock per device) and resolves the ticket; before, it found no
    ticket, and the raise then committed one nothing would resolve."""
    worker = TicketingWorker()  # its store given by hand instead of by the container
    worker.store = store
    at = utcnow() - dt.timedelta(minutes=1)
    raised = specimens.DeviceAlarmRaised(alarm_id="a1", device_id="FRZ-30", subsystem_code="BIOBANK",
                                         kind="temperature_high", severity="critical", raised_at=at.isoformat(),
                                         summary="Freezer FRZ-30: -61.5 °C")
    cleared = specimens.DeviceAlarmCleared(alarm_id="a1", device_id="FRZ-30", subsystem_code="BIOBANK",
                                           cleared_at=(at + dt.timedelta(seconds=5)).isoformat())

    def waiting() -> int:
        return query(database, "SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
                               "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
                     )[0]["n"]

    def until(predicate) -> None:
        for _ in range(200):
            if predicate():
                return
            threading.Event().wait(0.05)
        raise AssertionError("the handlers did not get there")

    # Another session holds the alarm's own lock: the raise stops there, in the middle of its transaction.
    with psycopg.connect(database.url, autocommit=True) as holder, ThreadPoolExecutor(2) as pool:
        holder.execute("SELECT pg_advisory_lock(hashtext('device:FRZ-30:temperature_high'))")
        raising = pool.submit(TicketingWorker.on_device_alarm, worker,
                              event_payload(raised, str(uuid.uuid4()), utcnow()))
        until(lambda: waiting() == 1)
        clearing = pool.submit(TicketingWorker.on_device_alarm_cleared, worker,
                               event_payload(cleared, str(uuid.uuid4()), utcnow()))
        until(lambda: clearing.done() or waiting() == 2)
        holder.execute("SELECT pg_advisory_unlock(hashtext('device:FRZ-30:temperature_high'))")
        assert (raising.result(timeout=10), clearing.result(timeout=10)) == ("ok", "ok")

    assert [r["status"] for r in query(database, "SELECT status FROM tickets WHERE alert_fingerprint = %s",
                                       "device:FRZ-30:temperature_high")] == ["resolved"]
