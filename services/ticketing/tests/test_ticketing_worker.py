"""The ticketing worker as its own process against the real PostgreSQL and
RabbitMQ: it relays the outbox, turns the specimen bank's device alarms into
tickets, escalates SLA breaches and closes unconfirmed resolutions."""
from __future__ import annotations

import datetime as dt
import socket
import sys
import time
import urllib.request
import uuid
from functools import partial

import pytest
from ticketing.domain.priority import Level
from ticketing.domain.sla import Side
from ticketing.domain.worklog import validate_worklog
from ticketing.store import NewTicket
from ticketing_testkit import ALWAYS, instant, key, open_request, outbox, query, ticket_events, ticket_row
from tuoguan.specimens.v1 import events_pb2 as specimens
from tuoguan.ticketing.v1 import ticketing_pb2 as pb
from tuoguan_common.auth import Principal
from tuoguan_common.outbox import Idempotent, utcnow
from tuoguan_common.testing import EventTap, free_port, publish_event, wait_for, wait_for_consumers

pytestmark = pytest.mark.integration

OUR_EVENTS = ("TicketAssigned", "TicketOpened", "TicketResolved", "TicketClosed", "WorklogBillable", "SlaBreached",
              "SlaEscalated")
HANDLER_QUEUES = (
    "evt-specimens-DeviceAlarmRaised--ticketing.on_device_alarm",
    "evt-specimens-DeviceAlarmCleared--ticketing.on_device_alarm_cleared",
)
DISPATCHER = Principal("dispatcher-on-duty", frozenset({"dispatcher"}))


@pytest.fixture
def published(infra):
    """What ticketing publishes, from a queue of this test's own."""
    with EventTap(infra["amqp_uri"], "ticketing", OUR_EVENTS) as tap:
        yield tap


@pytest.fixture
def publish(infra):
    """Publishes the specimen bank's events as the bank would."""
    return partial(publish_event, infra["amqp_uri"], "specimens")


@pytest.fixture
def start_worker(processes, database, infra, published):
    """Starts the ticketing worker on the test's database (its settings are read at import: the environment)."""

    def start(auto_close_working_hours: str = "24", **env: str) -> int:
        metrics_port = free_port()
        processes.start(
            "ticketing-worker", [sys.executable, "-m", "tuoguan_common.worker_main", "ticketing"],
            env={"TICKETING_DATABASE_URL": database.url, "AMQP_URI": infra["amqp_uri"],
                 "TICKETING_WORKER_METRICS_PORT": str(metrics_port), "TICKETING_ESCALATION_INTERVAL": "0.2",
                 "TICKETING_AUTO_CLOSE_INTERVAL": "0.2",
                 "TICKETING_AUTO_CLOSE_WORKING_HOURS": auto_close_working_hours, "LOG_LEVEL": "WARNING", **env},
            ready_port=metrics_port,
        )
        wait_for_consumers(infra["amqp_uri"], HANDLER_QUEUES, timeout=30,
                           message="the worker to consume the specimen bank's events")
        return metrics_port

    return start


def sample(metrics_port: int, name: str, **labels: str) -> float:
    """The sum of a metric's series that carry ``labels``, as the worker serves them."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=2).read().decode()
    wanted = [f'{k}="{v}"' for k, v in labels.items()]
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name + "{") and all(w in line for w in wanted))


def handled(metrics_port: int, handler: str, outcome: str) -> float:
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=2).read().decode()
    except (OSError, socket.timeout):
        return 0.0
    needle = f'handler="{handler}",outcome="{outcome}",service="ticketing"'
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("tuoguan_events_handled_total{") and needle in line)


def device_tickets(database, device_id: str) -> list[dict]:
    return query(database, "SELECT t.*, s.code FROM tickets t JOIN subsystems s ON s.id = t.subsystem_id "
                           "WHERE t.alert_fingerprint LIKE %s ORDER BY t.created_at", f"device:{device_id}:%")


def alarm(device_id: str, kind: str = "temperature_high", severity: str = "critical",
          subsystem_code: str = "BIOBANK", at: dt.datetime | None = None) -> specimens.DeviceAlarmRaised:
    return specimens.DeviceAlarmRaised(
        alarm_id=str(uuid.uuid4()), device_id=device_id, subsystem_code=subsystem_code, kind=kind, severity=severity,
        raised_at=(at or utcnow()).isoformat(), summary=f"Freezer {device_id}: -61.5 °C (limit -70 °C)")


def cleared(device_id: str, at: dt.datetime | None = None) -> specimens.DeviceAlarmCleared:
    return specimens.DeviceAlarmCleared(alarm_id=str(uuid.uuid4()), device_id=device_id, subsystem_code="BIOBANK",
                                        cleared_at=(at or utcnow()).isoformat())


def alert_outcomes(metrics_port: int, outcome: str) -> float:
    """tuoguan_ticketing_alert_notifications_total: what the device alarms did (opened, ignored, ...)."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=2).read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("tuoguan_ticketing_alert_notifications_total{") and f'outcome="{outcome}"' in line)


def handle(metrics_port: int, publish, handler: str, event, event_id: str | None = None,
           outcome: str = "ok") -> str:
    """Publishes one event and waits until the worker has handled it (the next one goes after it)."""
    before = handled(metrics_port, handler, outcome)
    event_id = publish(event, event_id) if event_id else publish(event)
    wait_for(lambda: handled(metrics_port, handler, outcome) > before, message=f"{handler} {outcome}")
    return event_id


def open_at(store, when: dt.datetime, impact: Level = Level.MEDIUM, urgency: Level = Level.MEDIUM,
            subsystem: str = ALWAYS) -> str:
    """A ticket opened at ``when`` (in the past: its SLA clock has been running since)."""
    idem = Idempotent("open", "test", key(), "fingerprint", pb.OpenTicketResponse)
    new = NewTicket(kind="incident", subsystem_code=subsystem, title="HIS 门诊收费卡顿", description="",
                    impact=impact, urgency=urgency, major_incident=False, source="staff",
                    requester_id="clinician-1", reported_by_id="clinician-1")
    return store.open_ticket(idem, new, when).ticket.ticket_id


def act(store, ticket_id: str, action, when: dt.datetime, **fields):
    from ticketing.domain.lifecycle import Action

    defaults = {"assignee_id": None, "team": None, "side": None, "note": ""}
    idem = Idempotent("change", DISPATCHER.subject, key(), "fingerprint", pb.ChangeTicketResponse)
    return store.change_ticket(idem, ticket_id, DISPATCHER, Action(action), now=when, **{**defaults, **fields})


def test_the_outbox_is_relayed_and_device_alarms_open_update_and_resolve_tickets(
        start_worker, publish, published, stub, people, database):
    metrics_port = start_worker()

    # A ticket opened through the api reaches RabbitMQ.
    ticket = stub.OpenTicket(open_request(), metadata=people.clinician().md).ticket
    (relayed,) = wait_for(lambda: published.events("TicketOpened", ticket_id=ticket.ticket_id),
                          message="TicketOpened on ticketing.events")
    assert (relayed["number"], relayed["source"], relayed["priority"]) == (ticket.number, "portal", "P3")
    assert relayed["event_id"] and relayed["occurred_at"]
    wait_for(lambda: query(database, "SELECT 1 FROM outbox WHERE sent_at IS NULL") == [],
             message="the outbox marked sent")

    # A freezer's alarm opens a ticket on the specimen bank.
    raised = alarm("FRZ-12")
    event_id = publish(raised)
    (row,) = wait_for(lambda: device_tickets(database, "FRZ-12"), message="the alarm's ticket")
    assert (row["code"], row["source"], row["priority"], row["status"], row["alert_repeats"]) == \
        ("BIOBANK", "device", 1, "new", 0)
    assert row["alert_fingerprint"] == "device:FRZ-12:temperature_high"
    assert row["description"] == "Freezer FRZ-12: -61.5 °C (limit -70 °C)"
    (opened,) = wait_for(lambda: published.events("TicketOpened", ticket_id=str(row["id"])),
                         message="the device ticket's TicketOpened")
    assert (opened["source"], opened["subsystem_code"], opened["priority"]) == ("device", "BIOBANK", "P1")

    # The same delivery again changes nothing; the same trouble raised anew updates the ticket.
    publish(raised, event_id)
    wait_for(lambda: handled(metrics_port, "on_device_alarm", "duplicate") >= 1, message="the duplicate handled")
    assert device_tickets(database, "FRZ-12") == [row]
    publish(alarm("FRZ-12"))
    wait_for(lambda: device_tickets(database, "FRZ-12")[0]["alert_repeats"] == 1, message="the repeat recorded")
    # Another kind of trouble on the same freezer is another ticket; so is another freezer's alarm,
    # which names no subsystem (the bank's is assumed).
    publish(alarm("FRZ-12", kind="door_open", severity="warning"))
    publish(alarm("FRZ-07", subsystem_code=""))
    wait_for(lambda: len(device_tickets(database, "FRZ-12")) == 2 and device_tickets(database, "FRZ-07"),
             message="the other alarms' tickets")
    door = device_tickets(database, "FRZ-12")[1]
    assert (door["alert_fingerprint"], door["priority"], door["alert_repeats"]) == \
        ("device:FRZ-12:door_open", 3, 0)
    assert device_tickets(database, "FRZ-07")[0]["code"] == "BIOBANK"

    # The alarm clears: every open ticket of the freezer resolves, once; the other freezer's does not.
    clear = cleared("FRZ-12")
    clear_id = publish(clear)
    wait_for(lambda: {t["status"] for t in device_tickets(database, "FRZ-12")} == {"resolved"},
             message="the freezer's tickets resolved")
    for t in device_tickets(database, "FRZ-12"):
        (resolved,) = wait_for(lambda t=t: published.events("TicketResolved", ticket_id=str(t["id"])),
                               message="TicketResolved")
        assert (resolved["subsystem_code"], resolved["assignee_id"]) == ("BIOBANK", "")
        assert ticket_events(database, str(t["id"]))[-1] == "resolved"
    publish(clear, clear_id)
    wait_for(lambda: handled(metrics_port, "on_device_alarm_cleared", "duplicate") >= 1,
             message="the duplicate clearance handled")
    assert device_tickets(database, "FRZ-07")[0]["status"] == "new"
    assert len(outbox(database, "TicketResolved")) == 2
    assert query(database, "SELECT * FROM dead_letters") == []


def test_breached_slas_escalate_once_per_level_and_raise_the_priority_a_step(
        start_worker, published, store, database):
    now = utcnow()
    # Service around the clock; P3 has 2 hours to respond and 24 to resolve.
    breached = open_at(store, now - dt.timedelta(hours=30))          # past its target: level 2
    well_past = open_at(store, now - dt.timedelta(hours=40))         # past 150% of its target: level 3
    act(store, well_past, "assign", now - dt.timedelta(hours=39), assignee_id="engineer-2")
    warned = open_at(store, now - dt.timedelta(hours=20))            # past 75% of it: level 1
    on_track = open_at(store, now - dt.timedelta(minutes=30))
    # Stopped by the hospital half an hour after it was opened 30 hours ago: on track.
    stopped = open_at(store, now - dt.timedelta(hours=30))
    act(store, stopped, "assign", now - dt.timedelta(hours=30), assignee_id="engineer-1")
    act(store, stopped, "start", now - dt.timedelta(hours=29, minutes=45))
    act(store, stopped, "pause", now - dt.timedelta(hours=29, minutes=30), side=Side.HOSPITAL)
    start_worker()

    def escalations(ticket_id: str) -> list[tuple[int, str]]:
        return [(e["level"], e["priority"]) for e in published.events("SlaEscalated", ticket_id=ticket_id)]

    wait_for(lambda: len(escalations(well_past)) == 3 and len(escalations(breached)) == 2
             and escalations(warned), message="the escalations")
    time.sleep(1.5)  # several more timer runs: nothing more may happen
    assert escalations(breached) == [(1, "P3"), (2, "P2")]
    assert escalations(well_past) == [(1, "P3"), (2, "P2"), (3, "P2")]
    assert escalations(warned) == [(1, "P3")]
    assert escalations(on_track) == escalations(stopped) == []

    breaches = {t: sorted(e["target"] for e in published.events("SlaBreached", ticket_id=t))
                for t in (breached, well_past, warned, on_track, stopped)}
    assert breaches == {breached: ["resolution", "response"], well_past: ["resolution", "response"],
                        warned: ["response"], on_track: [], stopped: []}
    (resolution,) = published.events("SlaBreached", ticket_id=breached, target="resolution")
    assert resolution["priority"] == "P3"
    assert instant(resolution["due_at"]) == ticket_row(database, breached)["created_at"] + dt.timedelta(hours=24)

    for ticket_id, level, priority in ((breached, 2, 2), (well_past, 3, 2), (warned, 1, 3), (on_track, 0, 3),
                                       (stopped, 0, 3)):
        row = ticket_row(database, ticket_id)
        assert (row["escalation_level"], row["priority"]) == (level, priority), ticket_id
        assert ticket_events(database, ticket_id).count("priority_changed") == (1 if level >= 2 else 0)
    assert ticket_row(database, breached)["resolution_breached"] is True
    assert ticket_row(database, warned)["response_breached"] is True
    assert ticket_row(database, stopped)["next_check_at"] is None
    # Level 3 reassigns: off the engineer, to the escalation team, back on the dispatcher's board.
    row = ticket_row(database, well_past)
    assert (row["team"], row["assignee_id"], row["status"]) == ("escalation", None, "assigned")
    assert len(published.events("TicketAssigned", ticket_id=well_past, team="escalation", assignee_id="")) == 1
    assert ticket_row(database, breached)["team"] != "escalation"
    # The raised priority does not change the targets the ticket is measured against: level 3 is 36 hours away.
    state = store.get_ticket(breached, utcnow())[1]
    assert (state.escalation_level, state.resolution_target_seconds) == (2, 24 * 3600.0)


def test_unconfirmed_resolutions_close_by_themselves_and_their_worklogs_become_billable(
        start_worker, publish, published, store, database):
    # Resolved three weeks ago, with the default 24 working hours to confirm: long past.
    then = utcnow() - dt.timedelta(days=21)
    old = open_at(store, then)
    act(store, old, "assign", then, assignee_id=DISPATCHER.subject)
    act(store, old, "start", then + dt.timedelta(minutes=5))
    log = validate_worklog(DISPATCHER.subject, "senior", "repair", then + dt.timedelta(minutes=10), 50, "",
                           then + dt.timedelta(hours=1))
    idem = Idempotent("worklog", DISPATCHER.subject, key(), "fingerprint", pb.RecordWorklogResponse)
    worklog_id = store.record_worklog(idem, old, DISPATCHER, log, then + dt.timedelta(hours=1)).worklog.worklog_id
    act(store, old, "resolve", then + dt.timedelta(hours=1), note="index rebuilt")
    # Resolved just now: the requester still has a day of working hours to confirm.
    # Opened before the quarter of an hour logged on it: a worklog may not start before its ticket was opened.
    fresh = open_at(store, utcnow() - dt.timedelta(minutes=20))
    act(store, fresh, "assign", utcnow(), assignee_id=DISPATCHER.subject)
    act(store, fresh, "start", utcnow())
    idem = Idempotent("worklog", DISPATCHER.subject, key(), "fingerprint", pb.RecordWorklogResponse)
    store.record_worklog(idem, fresh, DISPATCHER, validate_worklog(DISPATCHER.subject, "senior", "remote",
                                                                   utcnow() - dt.timedelta(minutes=15), 15, "",
                                                                   utcnow()), utcnow())
    act(store, fresh, "resolve", utcnow(), note="cache cleared")

    # This worker gives unconfirmed resolutions no working time at all.
    start_worker(auto_close_working_hours="0")
    (closed,) = wait_for(lambda: published.events("TicketClosed", ticket_id=old), message="the auto-close")
    assert (closed["how"], closed["billable_minutes"], closed["subsystem_code"]) == ("auto", 50, "HIS")
    (billable,) = wait_for(lambda: published.events("WorklogBillable", ticket_id=old), message="WorklogBillable")
    assert (billable["worklog_id"], billable["minutes"], billable["grade"]) == (worklog_id, 50, "senior")
    row = ticket_row(database, old)
    assert (row["status"], row["auto_close_at"]) == ("closed", None) and row["closed_at"] is not None
    assert [w["billable"] for w in query(database, "SELECT billable FROM worklogs WHERE ticket_id = %s", old)] == \
        [True]
    assert ticket_events(database, old)[-1] == "closed"

    # A freezer's alarm raised and cleared through this worker: resolved with no time to confirm, so closed.
    publish(alarm("FRZ-3"))
    wait_for(lambda: device_tickets(database, "FRZ-3"), message="the alarm's ticket")
    publish(cleared("FRZ-3"))
    device_ticket = str(wait_for(lambda: device_tickets(database, "FRZ-3"))[0]["id"])
    (device_closed,) = wait_for(lambda: published.events("TicketClosed", ticket_id=device_ticket),
                                message="the device ticket closed by itself")
    assert (device_closed["how"], device_closed["billable_minutes"]) == ("auto", 0)

    time.sleep(0.6)
    assert ticket_row(database, fresh)["status"] == "resolved"
    assert published.events("TicketClosed", ticket_id=fresh) == []
    assert len(outbox(database, "TicketClosed", ticket_id=old)) == 1


def test_a_cleared_alarm_resolves_its_own_devices_tickets_only(start_worker, publish, database):
    """Device ids are matched as they are: an underscore (or a percent sign) in one is not a LIKE
    wildcard, so clearing FRZ_09 leaves FRZ-09's alarm open; and a colon in one does not make it
    another device's id and kind, so clearing FRZ leaves FRZ:1's alarm open."""
    metrics_port = start_worker()
    for device in ("FRZ-09", "FRZ_09", "FRZ%", "FRZ:1", "FRZ"):
        publish(alarm(device))
    wait_for(lambda: len(query(database, "SELECT 1 FROM tickets WHERE alert_fingerprint LIKE 'device:%%'")) == 5,
             message="the five alarms' tickets")

    for device in ("FRZ_09", "FRZ%", "FRZ"):
        publish(cleared(device))
    wait_for(lambda: handled(metrics_port, "on_device_alarm_cleared", "ok") >= 3, message="the clearances handled")
    statuses = {r["alert_fingerprint"]: r["status"] for r in query(
        database, "SELECT alert_fingerprint, status FROM tickets WHERE alert_fingerprint LIKE 'device:%%'")}
    assert statuses == {"device:FRZ-09:temperature_high": "new", "device:FRZ_09:temperature_high": "resolved",
                        "device:FRZ%25:temperature_high": "resolved", "device:FRZ%3A1:temperature_high": "new",
                        "device:FRZ:temperature_high": "resolved"}


RAISED, CLEARED = "on_device_alarm", "on_device_alarm_cleared"


def test_a_nul_in_a_device_alarm_is_dropped_not_the_freezers_ticket(start_worker, publish, database):
    """A protobuf string may hold a NUL, PostgreSQL's text may not: the alarm was dead-lettered and the
    freezer's ticket never opened (nor, for the clearance, resolved). Dropped, as in Alertmanager's alerts."""
    metrics_port = start_worker()
    raised = alarm("FRZ\x00-31", kind="door\x00_open", subsystem_code="BIOBANK\x00")
    raised.summary = "Freezer F-31\x00: door open"
    handle(metrics_port, publish, RAISED, raised)
    (row,) = device_tickets(database, "FRZ-31")
    assert (row["alert_fingerprint"], row["description"], row["code"], row["status"]) == \
        ("device:FRZ-31:door_open", "Freezer F-31: door open", "BIOBANK", "new")
    handle(metrics_port, publish, CLEARED, cleared("FRZ\x00-31"))
    assert [t["status"] for t in device_tickets(database, "FRZ-31")] == ["resolved"]
    assert query(database, "SELECT * FROM dead_letters") == []


def test_an_alarm_whose_clearance_was_handled_first_opens_no_ticket(start_worker, publish, database):
    """The two events come on separate queues: a clearance handled before the alarm it clears (the raise
    requeued after a deadlock, or behind other work) is kept, and the raise opens nothing (it opened a
    ticket nothing would ever resolve, which breached its SLA and escalated)."""
    metrics_port = start_worker()
    at = utcnow() - dt.timedelta(minutes=10)
    clear_id = handle(metrics_port, publish, CLEARED, cleared("FRZ-21", at=at))
    raise_id = handle(metrics_port, publish, RAISED, alarm("FRZ-21", at=at - dt.timedelta(seconds=5)))
    # A clearance names no kind: it clears each of the device's alarms raised until then, the same instant too.
    handle(metrics_port, publish, RAISED, alarm("FRZ-21", kind="door_open", severity="warning", at=at))
    assert device_tickets(database, "FRZ-21") == []
    assert alert_outcomes(metrics_port, "ignored") == 2 and alert_outcomes(metrics_port, "opened") == 0
    # The clearance kept: one row for the device, under the fingerprints' own prefix.
    assert query(database, "SELECT fingerprint_prefix, cleared_at FROM device_alarm_clearances") == \
        [{"fingerprint_prefix": "device:FRZ-21:", "cleared_at": at}]

    # Redeliveries (the same event) and copies (another relay's, a new id) change nothing.
    late = alarm("FRZ-21", at=at - dt.timedelta(seconds=5))
    handle(metrics_port, publish, CLEARED, cleared("FRZ-21", at=at), clear_id, outcome="duplicate")
    handle(metrics_port, publish, RAISED, late, raise_id, outcome="duplicate")
    handle(metrics_port, publish, RAISED, late)
    handle(metrics_port, publish, CLEARED, cleared("FRZ-21", at=at - dt.timedelta(minutes=1)))  # older: kept max
    assert device_tickets(database, "FRZ-21") == []
    assert alert_outcomes(metrics_port, "ignored") == 3
    assert query(database, "SELECT cleared_at FROM device_alarm_clearances") == [{"cleared_at": at}]

    # Kept per device with the fingerprints' encoding: FRZ:1's clearance is not FRZ's.
    handle(metrics_port, publish, CLEARED, cleared("FRZ:1", at=at))
    handle(metrics_port, publish, RAISED, alarm("FRZ:1", kind="1:door_open", at=at - dt.timedelta(seconds=1)))
    handle(metrics_port, publish, RAISED, alarm("FRZ", kind="1:door_open", at=at - dt.timedelta(seconds=1)))
    assert [t["alert_fingerprint"] for t in query(
        database, "SELECT alert_fingerprint FROM tickets WHERE alert_fingerprint LIKE 'device:FRZ%%'")] == \
        ["device:FRZ:1:door_open"]
    assert query(database, "SELECT * FROM dead_letters") == []


def test_a_device_event_without_its_time_or_device_is_put_aside(start_worker, publish, database):
    """Audit: a raise or a clearance without the bank's time (or with no time in it) was stamped with
    ticketing's: a copy of an old raise re-sent after its clearance reopened the resolved ticket. Without a
    time or a device it is malformed: dead-lettered, nothing opened, resolved or reopened."""
    metrics_port = start_worker()
    at = utcnow() - dt.timedelta(minutes=10)
    handle(metrics_port, publish, RAISED, alarm("FRZ-41", at=at))
    handle(metrics_port, publish, CLEARED, cleared("FRZ-41", at=at + dt.timedelta(minutes=1)))
    (before,) = device_tickets(database, "FRZ-41")
    assert before["status"] == "resolved"
    for raised_at in ("", "yesterday"):
        late = alarm("FRZ-41")
        late.raised_at = raised_at
        handle(metrics_port, publish, RAISED, late, outcome="malformed")
    handle(metrics_port, publish, RAISED, alarm(""), outcome="malformed")
    handle(metrics_port, publish, RAISED, alarm("FRZ-42", at=at))
    undated = cleared("FRZ-42")
    undated.cleared_at = ""
    handle(metrics_port, publish, CLEARED, undated, outcome="malformed")
    assert device_tickets(database, "FRZ-41") == [before]
    assert [t["status"] for t in device_tickets(database, "FRZ-42")] == ["new"]
    assert len(query(database, "SELECT 1 FROM dead_letters")) == 4

def test_an_alarm_raised_after_an_earlier_clearance_opens_a_ticket_that_only_a_later_one_resolves(
        start_worker, publish, database):
    metrics_port = start_worker()
    t0 = utcnow() - dt.timedelta(hours=1)
    old_clear = cleared("FRZ-22", at=t0)                      # the last episode's
    old_clear_id = handle(metrics_port, publish, CLEARED, old_clear)
    new_alarm = alarm("FRZ-22", at=t0 + dt.timedelta(minutes=10))
    new_alarm_id = handle(metrics_port, publish, RAISED, new_alarm)
    (ticket,) = device_tickets(database, "FRZ-22")
    assert ticket["status"] == "new"

    # The last episode's clearance again, or another one older than this alarm, delivered late: still open.
    handle(metrics_port, publish, CLEARED, old_clear, old_clear_id, outcome="duplicate")
    handle(metrics_port, publish, CLEARED, old_clear)
    handle(metrics_port, publish, CLEARED, cleared("FRZ-22", at=t0 + dt.timedelta(minutes=5)))
    assert [t["status"] for t in device_tickets(database, "FRZ-22")] == ["new"]
    assert ticket_events(database, str(ticket["id"])) == ["opened"]

    # Its own clearance resolves it, as before.
    handle(metrics_port, publish, CLEARED, cleared("FRZ-22", at=t0 + dt.timedelta(minutes=20)))
    assert [t["status"] for t in device_tickets(database, "FRZ-22")] == ["resolved"]
    # The alarm again, late (redelivered, or a copy): the clearance is after it, so no "fired again".
    handle(metrics_port, publish, RAISED, new_alarm, new_alarm_id, outcome="duplicate")
    handle(metrics_port, publish, RAISED, new_alarm)
    (row,) = device_tickets(database, "FRZ-22")
    assert (row["status"], row["alert_repeats"]) == ("resolved", 0)
    # A new episode after that clearance fires it again: reopened, back in the queue (nobody had started it).
    handle(metrics_port, publish, RAISED, alarm("FRZ-22", at=t0 + dt.timedelta(minutes=30)))
    (row,) = device_tickets(database, "FRZ-22")
    assert row["status"] == "new"
    assert ticket_events(database, str(ticket["id"])) == ["opened", "resolved", "reopened"]
    # The ticket keeps its alarm's latest raise (the bank's time), which later clearances are compared with.
    assert row["alert_raised_at"] == t0 + dt.timedelta(minutes=30)


def test_a_late_clearance_resolves_only_the_alarms_raised_before_it(start_worker, publish, database):
    metrics_port = start_worker()
    t0 = utcnow() - dt.timedelta(hours=1)
    handle(metrics_port, publish, RAISED, alarm("FRZ-23", kind="door_open", severity="warning", at=t0))
    handle(metrics_port, publish, RAISED, alarm("FRZ-23", at=t0 + dt.timedelta(minutes=10)))
    # A ticket opened before its raise was kept (before migration 0004): a clearance resolves it, as before.
    handle(metrics_port, publish, RAISED, alarm("FRZ-23", kind="power_loss", at=t0 + dt.timedelta(minutes=30)))
    query(database, "UPDATE tickets SET alert_raised_at = NULL WHERE alert_fingerprint = %s RETURNING 1",
          "device:FRZ-23:power_loss")

    handle(metrics_port, publish, CLEARED, cleared("FRZ-23", at=t0 + dt.timedelta(minutes=5)))
    statuses = {t["alert_fingerprint"]: t["status"] for t in device_tickets(database, "FRZ-23")}
    assert statuses == {"device:FRZ-23:door_open": "resolved", "device:FRZ-23:temperature_high": "new",
                        "device:FRZ-23:power_loss": "resolved"}
    assert alert_outcomes(metrics_port, "resolved") == 2 and alert_outcomes(metrics_port, "ignored") == 1


def test_the_worker_forgets_month_old_clearances(start_worker, database):
    now = utcnow()
    for prefix, age in (("device:FRZ-OLD:", 31), ("device:FRZ-NEW:", 29)):
        query(database, "INSERT INTO device_alarm_clearances (fingerprint_prefix, cleared_at) VALUES (%s, %s) "
                        "RETURNING 1", prefix, now - dt.timedelta(days=age))
    start_worker()
    wait_for(lambda: [r["fingerprint_prefix"] for r in query(
        database, "SELECT fingerprint_prefix FROM device_alarm_clearances")] == ["device:FRZ-NEW:"],
        message="the month-old clearance forgotten")


def test_the_worker_purges_the_outbox_inbox_and_keys_past_their_retention(start_worker, database):
    """Every TUOGUAN_RETENTION_INTERVAL_SECONDS the worker's timer deletes sent
    events a week old, inbox rows two weeks old and keys a week old; newer
    rows and events not yet sent stay."""
    day = dt.timedelta(days=1)
    now = utcnow()
    with database.transaction() as cur:
        cur.execute("INSERT INTO outbox (event_id, event_type, payload, created_at, sent_at) VALUES "
                    "(gen_random_uuid(), 'TicketOpened', '{}', %(old)s, %(old)s), "
                    "(gen_random_uuid(), 'TicketOpened', '{}', %(new)s, %(new)s)", {"old": now - 8 * day, "new": now - day})
        cur.execute("INSERT INTO inbox (event_id, handler, handled_at) VALUES "
                    "(gen_random_uuid(), 'device_alarm', %s), (gen_random_uuid(), 'device_alarm', %s)",
                    (now - 15 * day, now - 13 * day))
        cur.execute("INSERT INTO idempotency_keys (scope, owner, key, request_hash, created_at) VALUES "
                    "('open', 'clinician-1', 'old', 'h', %s), ('open', 'clinician-1', 'new', 'h', %s)",
                    (now - 8 * day, now - 6 * day))
    metrics_port = start_worker(TUOGUAN_RETENTION_INTERVAL_SECONDS="0.3")

    wait_for(lambda: sample(metrics_port, "tuoguan_timer_runs_total", timer="purge_retention", outcome="ok") >= 1,
             message="a purge run")
    assert query(database, "SELECT count(*) AS n, min(sent_at) > now() - interval '2 days' AS newer FROM outbox") \
        == [{"n": 1, "newer": True}]
    assert query(database, "SELECT count(*) AS n, min(handled_at) > now() - interval '14 days' AS newer FROM inbox") \
        == [{"n": 1, "newer": True}]
    assert [r["key"] for r in query(database, "SELECT key FROM idempotency_keys")] == ["new"]
    for table in ("outbox", "inbox", "idempotency_keys"):
        assert sample(metrics_port, "tuoguan_retention_deleted_rows_total", service="ticketing", table=table) == 1
    assert sample(metrics_port, "tuoguan_timer_runs_total", timer="purge_retention", outcome="error") == 0
