"""Machine-opened tickets through the Alertmanager webhook: one ticket per
distinct alert (fingerprint), repeats update it, resolution resolves it,
firing again (a new episode, not a late copy) reopens it, and a storm of thousands of notifications sent at
once still makes one ticket per alert."""
from __future__ import annotations

import datetime as dt
import json
import random
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import psycopg
import pytest
from prometheus_client import REGISTRY
from ticketing.domain.alerts import parse_alertmanager
from ticketing_testkit import (
    alert,
    alertmanager,
    alerts_request,
    change,
    instant,
    outbox,
    query,
    refused,
    shanghai,
    ticket_events,
    ticket_row,
)
from tuoguan.ticketing.v1 import ticketing_pb2 as pb
from tuoguan_common.outbox import utcnow

pytestmark = pytest.mark.integration


def alert_tickets(database) -> list[dict]:
    return query(database, "SELECT * FROM tickets WHERE alert_fingerprint IS NOT NULL ORDER BY created_at, number")


def ignored_so_far() -> float:
    return REGISTRY.get_sample_value("tuoguan_ticketing_alert_notifications_total", {"outcome": "ignored"}) or 0.0


def test_an_alert_opens_one_ticket_repeats_update_it_and_its_resolution_resolves_it(stub, people, database):
    alertmanager_account = people.device()
    his_down = alert("3f2a9c0d1e4b5a67", instance="his-app-1:8080")
    his_down_2 = alert("8c1d2e3f4a5b6c7d", instance="his-app-2:8080")
    pacs_slow = alert("5d6e7f8091a2b3c4", subsystem="PACS", alertname="PacsRetrieveSlow", severity="warning",
                      instance="pacs-gw:104")

    # One notification naming an alert twice (Alertmanager's grouping may) opens one ticket for it.
    first = stub.ReceiveAlerts(alerts_request(his_down, his_down_2, pacs_slow, his_down),
                               metadata=alertmanager_account.md)
    assert (first.opened, first.updated, first.resolved) == (3, 1, 0)
    assert len(first.ticket_ids) == 3
    tickets = {t["alert_fingerprint"]: t for t in alert_tickets(database)}
    assert set(tickets) == {"3f2a9c0d1e4b5a67", "8c1d2e3f4a5b6c7d", "5d6e7f8091a2b3c4"}
    his = tickets["3f2a9c0d1e4b5a67"]
    assert {str(t["id"]) for t in tickets.values()} == set(first.ticket_ids)
    assert (his["source"], his["status"], his["kind"], his["priority"], his["alert_repeats"]) == \
        ("alert", "new", "incident", 1, 1)
    assert his["requester_id"] == his["reported_by_id"] == alertmanager_account.id
    assert his["title"] == "[critical] HisApiDown: HisApiDown on his-app-1:8080"
    pacs = tickets["5d6e7f8091a2b3c4"]
    assert (pacs["priority"], pacs["alert_repeats"], pacs["team"]) == (3, 0, "imaging")
    (opened_event,) = outbox(database, "TicketOpened", ticket_id=str(his["id"]))
    assert (opened_event["source"], opened_event["priority"], opened_event["subsystem_code"]) == \
        ("alert", "P1", "HIS")

    # Alertmanager repeats the group every repeat_interval: nothing new opens.
    again = stub.ReceiveAlerts(alerts_request(his_down, his_down_2, pacs_slow), metadata=alertmanager_account.md)
    assert (again.opened, again.updated, again.resolved) == (0, 3, 0)
    assert set(again.ticket_ids) == set(first.ticket_ids)
    assert len(alert_tickets(database)) == 3
    assert ticket_row(database, str(his["id"]))["alert_repeats"] == 2

    # The alert resolves: so does its ticket (once), and the others stay open.
    resolved = stub.ReceiveAlerts(alerts_request(alert("3f2a9c0d1e4b5a67", status="resolved")),
                                  metadata=alertmanager_account.md)
    assert (resolved.opened, resolved.updated, resolved.resolved) == (0, 0, 1)
    assert list(resolved.ticket_ids) == [str(his["id"])]
    row = ticket_row(database, str(his["id"]))
    assert (row["status"], row["resolution_note"]) == ("resolved", "the alert HisApiDown resolved")
    assert row["resolved_at"] is not None and row["auto_close_at"] is not None
    (resolved_event,) = outbox(database, "TicketResolved", ticket_id=str(his["id"]))
    assert (resolved_event["subsystem_code"], resolved_event["priority"]) == ("HIS", "P1")
    assert ticket_row(database, str(pacs["id"]))["status"] == "new"
    repeated = stub.ReceiveAlerts(alerts_request(alert("3f2a9c0d1e4b5a67", status="resolved")),
                                  metadata=alertmanager_account.md)
    assert (repeated.opened, repeated.updated, repeated.resolved) == (0, 0, 0)
    assert len(outbox(database, "TicketResolved", ticket_id=str(his["id"]))) == 1

    # It fires again: the fix did not hold, and the same ticket is reopened,
    # back in the queue (nobody had started on it).
    refired = stub.ReceiveAlerts(alerts_request(alert("3f2a9c0d1e4b5a67", starts_at="2025-11-04T02:30:00Z")),
                                 metadata=alertmanager_account.md)
    assert (refired.opened, refired.updated, list(refired.ticket_ids)) == (0, 1, [str(his["id"])])
    row = ticket_row(database, str(his["id"]))
    assert (row["status"], row["resolved_at"], row["auto_close_at"], row["alert_repeats"]) == \
        ("new", None, None, 3)
    assert len(outbox(database, "TicketReopened", ticket_id=str(his["id"]))) == 1
    assert ticket_events(database, str(his["id"])) == ["opened", "resolved", "reopened"]

    # Once its ticket is closed for good, the alert firing anew is a new incident with a new ticket.
    dispatcher = people.dispatcher()
    stub.ChangeTicket(change(str(pacs["id"]), pb.TICKET_ACTION_CLOSE, note="flapping, tuned the rule"),
                      metadata=dispatcher.md)
    anew = stub.ReceiveAlerts(alerts_request(pacs_slow), metadata=alertmanager_account.md)
    assert anew.opened == 1 and list(anew.ticket_ids) != [str(pacs["id"])]
    assert len(query(database, "SELECT id FROM tickets WHERE alert_fingerprint = %s", "5d6e7f8091a2b3c4")) == 2


def unknown_subsystem_so_far() -> float:
    return REGISTRY.get_sample_value("tuoguan_ticketing_alert_notifications_total",
                                     {"outcome": "unknown_subsystem"}) or 0.0


def test_alerts_for_subsystems_not_in_the_catalogue_open_nothing_and_say_so(stub, people, database, caplog):
    """No ticket, and the webhook's 200 tells Alertmanager it was taken: counted apart from the ordinary
    ignored notifications (TuoguanAlertsOnUnknownSubsystem pages the desk's on-call) and logged with the
    label's value and the alert's name, so the rule or the catalogue is put right (audit: counted as
    ignored alone, with the late copies and the resolutions of unknown alerts, they went unseen)."""
    sender = people.person("service")
    before, ignored = unknown_subsystem_so_far(), ignored_so_far()
    assert REGISTRY.get_sample_value("tuoguan_ticketing_alert_notifications_total",
                                     {"outcome": "unknown_subsystem"}) is not None  # served at 0 from the start
    unknown = alert("aaaa000011112222", subsystem="NO-SUCH-SYSTEM")
    unlabelled = alert("bbbb000011112222")
    del unlabelled["labels"]["subsystem"]
    reply = stub.ReceiveAlerts(alerts_request(unknown, unlabelled), metadata=sender.md)
    assert (reply.opened, reply.updated, reply.resolved, list(reply.ticket_ids)) == (0, 0, 0, [])
    assert (unknown_subsystem_so_far() - before, ignored_so_far() - ignored) == (2, 0)
    warned = [(r.subsystem_code, r.alertname) for r in caplog.records
              if r.getMessage().startswith("alert for a subsystem the catalogue does not have")]
    assert warned == [("NO-SUCH-SYSTEM", "HisApiDown"), ("unknown", "HisApiDown")]  # no label: parse_alertmanager's word
    assert alert_tickets(database) == []
    # Nor does the resolution of an alert nobody ticketed do anything.
    reply = stub.ReceiveAlerts(alerts_request(alert("cccc000011112222", status="resolved")), metadata=sender.md)
    assert (reply.resolved, list(reply.ticket_ids)) == (0, [])
    assert alert_tickets(database) == []

    # A "service" label stands in for "subsystem", and label values are not case-sensitive.
    by_service = alert("dddd000011112222", subsystem="x")
    del by_service["labels"]["subsystem"]
    by_service["labels"]["service"] = "PACS"
    lower_case = alert("eeee000011112222", subsystem="lis", severity="info")
    reply = stub.ReceiveAlerts(alerts_request(by_service, lower_case), metadata=sender.md)
    assert reply.opened == 2
    codes = {r["alert_fingerprint"]: (r["code"], r["priority"]) for r in query(
        database, "SELECT t.alert_fingerprint, s.code, t.priority FROM tickets t JOIN subsystems s "
                  "ON s.id = t.subsystem_id")}
    assert codes == {"dddd000011112222": ("PACS", 1), "eeee000011112222": ("LIS", 4)}


def test_only_machines_send_alerts_and_malformed_payloads_are_refused(stub, people, database):
    request = alerts_request(alert("ffff000011112222"))
    for roles in (("clinician",), ("engineer",), ("dispatcher",), ("patient",)):
        r = refused(stub.ReceiveAlerts, request, metadata=people.person(*roles).md)
        assert r.code == grpc.StatusCode.PERMISSION_DENIED, roles
    assert refused(stub.ReceiveAlerts, request).code == grpc.StatusCode.UNAUTHENTICATED
    assert alert_tickets(database) == []

    no_start = alert("ffff000011113333")
    del no_start["startsAt"]
    bad_labels = alert("ffff000011114444")
    bad_labels["labels"]["severity"] = 3
    for payload in ("", "not json", "{\"alerts\": [", "[]", "null",
                    json.dumps({"version": "4", "status": "firing", "alerts": "all of them"}),
                    json.dumps({"version": "3", "status": "firing", "alerts": []}),
                    json.dumps({"version": "4", "status": "burning", "alerts": []}),
                    # One bad alert refuses the notification: nothing of it is applied.
                    alertmanager(alert("ffff000011115555"), no_start),
                    alertmanager(alert("ffff000011116666"), bad_labels),
                    alertmanager(alert("ffff000011117777", status="pending")),
                    "{\"alerts\": [], \"pad\": \"" + "x" * (1 << 20) + "\"}"):
        r = refused(stub.ReceiveAlerts, pb.ReceiveAlertsRequest(alertmanager_payload=payload),
                    metadata=people.device().md)
        assert (r.code, r.field) == (grpc.StatusCode.INVALID_ARGUMENT, "alertmanager_payload"), payload[:80]
    assert alert_tickets(database) == []

    for roles in (("device",), ("service",), ("admin",)):
        assert stub.ReceiveAlerts(request, metadata=people.person(*roles).md).ticket_ids
    assert len(alert_tickets(database)) == 1


def test_an_alert_storm_makes_one_ticket_per_distinct_alert(stub, people, database):
    """2,000 notifications of 50 alerts from 16 senders at once (Alertmanager replicas, retries, repeats)."""
    senders = [people.device() for _ in range(4)]
    subsystems = ("HIS", "EMR", "PACS", "LIS", "NETWORK-CORE")
    fingerprints = [f"{i:04x}storm{i * 7919:08x}"[:16] for i in range(50)]
    notifications = [alert(fp, subsystem=subsystems[i % len(subsystems)], alertname=f"Storm{i % 7}",
                           instance=f"node-{i}:9100") for i, fp in enumerate(fingerprints) for _ in range(40)]
    random.Random(4).shuffle(notifications)
    batches = [notifications[i:i + 25] for i in range(0, len(notifications), 25)]
    assert len(notifications) == 2000 and len(batches) == 80

    def send(numbered: tuple[int, list[dict]]) -> pb.ReceiveAlertsResponse:
        n, batch = numbered
        return stub.ReceiveAlerts(alerts_request(*batch), metadata=senders[n % len(senders)].md, timeout=60)

    with ThreadPoolExecutor(max_workers=16) as pool:
        replies = list(pool.map(send, enumerate(batches)))

    assert sum(r.opened for r in replies) == 50
    assert sum(r.updated for r in replies) == 1950
    tickets = alert_tickets(database)
    assert len(tickets) == 50
    assert sorted(t["alert_fingerprint"] for t in tickets) == sorted(fingerprints)
    assert sum(t["alert_repeats"] for t in tickets) == 1950
    assert {t["status"] for t in tickets} == {"new"}
    assert len(outbox(database, "TicketOpened")) == 50
    assert {str(t["id"]) for t in tickets} == {i for r in replies for i in r.ticket_ids}


def test_the_open_ticket_gauge_counts_unresolved_work_only(stub, people, store):
    """A resolved P1 waiting for its requester's confirmation pages nobody: the gauge behind the
    open-P1 alert counts new, assigned, in-progress and pending tickets only."""
    device = people.device()
    stub.ReceiveAlerts(alerts_request(alert("gauge-a"), alert("gauge-b")), metadata=device.md)
    assert sum(store.open_by_priority().values()) == 2
    stub.ReceiveAlerts(alerts_request(alert("gauge-a", status="resolved")), metadata=device.md)
    assert sum(store.open_by_priority().values()) == 1


def test_a_fingerprint_too_long_to_index_or_a_nesting_too_deep_is_refused_and_nothing_is_applied(
        stub, people, database):
    """Alertmanager's fingerprints are 16 hex digits; one of kilobytes cannot go into the index that keeps
    one ticket per alert (it was INTERNAL, after the notification's earlier alerts had been applied)."""
    import secrets

    device = people.device()
    huge = alert(secrets.token_hex(2000))
    r = refused(stub.ReceiveAlerts, alerts_request(alert("good-before-huge"), huge), metadata=device.md)
    assert (r.code, r.field) == (grpc.StatusCode.INVALID_ARGUMENT, "alertmanager_payload")
    deep = '{"version": "4", "alerts": ' + "[" * 5000 + "]" * 5000 + "}"
    r = refused(stub.ReceiveAlerts, pb.ReceiveAlertsRequest(alertmanager_payload=deep), metadata=device.md)
    assert (r.code, r.field) == (grpc.StatusCode.INVALID_ARGUMENT, "alertmanager_payload")
    assert alert_tickets(database) == []

    # A blank fingerprint is no fingerprint: two different alerts are two tickets, not one.
    blank_a, blank_b = alert("  ", instance="lis-1:8080"), alert("  ", instance="lis-2:8080")
    reply = stub.ReceiveAlerts(alerts_request(blank_a, blank_b), metadata=device.md)
    assert (reply.opened, reply.updated) == (2, 0)
    assert all(t["alert_fingerprint"].strip() for t in alert_tickets(database))


# ---- an alert's clearance is no response; a late copy is no new episode; one bad byte loses nothing --------------


def fire(stub, sender, *alerts) -> pb.ReceiveAlertsResponse:
    return stub.ReceiveAlerts(alerts_request(*alerts), metadata=sender.md)


def test_an_alert_that_clears_before_anyone_starts_is_no_response_and_firing_again_puts_it_back_in_the_queue(
        stub, people, database, clock, store):
    """A flapping P1 (response due in 15 minutes): its clearance at 09:05 resolved the NEW ticket, counted as
    the response for good, and the next firing reopened it in progress with nobody on it. The clearance is no
    response, the ticket goes back to NEW, and the response it still owes runs again from the re-firing at
    09:10 with the 10 minutes it had left (none owed while it stood cleared): breached at 09:20."""
    device, dispatcher = people.device(), people.dispatcher()
    clock.set(shanghai(2025, 11, 4, 9, 0))
    tid = fire(stub, device, alert("flap-1", starts_at="2025-11-04T00:59:00Z")).ticket_ids[0]
    clock.set(shanghai(2025, 11, 4, 9, 5))
    assert fire(stub, device, alert("flap-1", status="resolved", starts_at="2025-11-04T00:59:00Z",
                                    ends_at="2025-11-04T01:04:30Z")).resolved == 1
    resolved = stub.GetTicket(pb.GetTicketRequest(ticket_id=tid), metadata=dispatcher.md).ticket
    assert resolved.status == pb.TICKET_STATUS_RESOLVED
    assert (resolved.sla.responded_at, resolved.sla.response_breached) == ("", False)
    (event,) = outbox(database, "TicketResolved", ticket_id=tid)
    assert event["response_breached"] is False

    clock.set(shanghai(2025, 11, 4, 9, 10))
    assert fire(stub, device, alert("flap-1", starts_at="2025-11-04T01:09:00Z")).updated == 1
    row = ticket_row(database, tid)
    assert (row["status"], row["assignee_id"]) == ("new", None)
    assert ticket_events(database, tid) == ["opened", "resolved", "reopened"]
    # The worker looks at it the moment the response can be breached, and announces the breach then.
    assert row["next_check_at"] == shanghai(2025, 11, 4, 9, 20) + dt.timedelta(microseconds=1)
    assert store.escalate_due(shanghai(2025, 11, 4, 9, 20) + dt.timedelta(seconds=1), 200) == \
        [(tid, 0, ["response"])]
    (breach,) = outbox(database, "SlaBreached", ticket_id=tid)
    assert (breach["target"], instant(breach["due_at"])) == ("response", shanghai(2025, 11, 4, 9, 20))
    clock.set(shanghai(2025, 11, 4, 11, 0))
    later = stub.GetTicket(pb.GetTicketRequest(ticket_id=tid), metadata=dispatcher.md).ticket
    assert (later.status, later.assignee_id, later.sla.responded_at, later.sla.response_breached) == \
        (pb.TICKET_STATUS_NEW, "", "", True)


def test_a_reopened_alert_ticket_goes_back_to_its_engineer_as_it_stood(stub, people, database, clock):
    """Assigned but not started: back to ASSIGNED, in the engineer's queue. Started: back in progress."""
    device, dispatcher, engineer = people.device(), people.dispatcher(), people.engineer()
    clock.set(shanghai(2025, 11, 4, 9, 0))
    waiting, working = fire(stub, device, alert("back-1"), alert("back-2")).ticket_ids
    for tid in (waiting, working):
        stub.ChangeTicket(change(tid, pb.TICKET_ACTION_ASSIGN, assignee_id=engineer.id), metadata=dispatcher.md)
    stub.ChangeTicket(change(working, pb.TICKET_ACTION_START), metadata=engineer.md)
    clock.set(shanghai(2025, 11, 4, 9, 30))
    fire(stub, device, alert("back-1", status="resolved"), alert("back-2", status="resolved"))
    clock.set(shanghai(2025, 11, 4, 9, 40))
    fire(stub, device, alert("back-1", starts_at="2025-11-04T02:30:00Z"),
         alert("back-2", starts_at="2025-11-04T02:30:00Z"))
    assert [(ticket_row(database, t)["status"], ticket_row(database, t)["assignee_id"]) for t in (waiting, working)] \
        == [("assigned", engineer.id), ("in_progress", engineer.id)]
    # An admin reopening a resolution nobody started puts it back in the queue too, never in progress.
    admin = people.admin()
    clock.set(shanghai(2025, 11, 4, 9, 50))
    third = fire(stub, device, alert("back-3")).ticket_ids[0]
    fire(stub, device, alert("back-3", status="resolved"))
    reopened = stub.ChangeTicket(change(third, pb.TICKET_ACTION_REOPEN, note="still down"), metadata=admin.md).ticket
    assert (reopened.status, reopened.assignee_id) == (pb.TICKET_STATUS_NEW, "")


def test_a_firing_after_its_resolution_reopens_even_with_the_episodes_start(stub, people, database):
    """A Prometheus that could not reach Alertmanager past the alert's end (or restarted and restored the
    alert) sends it again with the episode's startsAt once Alertmanager has resolved it: the alert fires and
    its ticket must say so. A late copy of the firing (the HA peer's, a retried delivery) looks the same, so
    it reopens too: a spurious reopening is seen and closed, a firing ignored is an outage nobody works on.
    A late resolution of an earlier episode leaves the newer one's ticket open."""
    device = people.device()
    firing = alert("late-1", starts_at="2025-11-04T01:00:00Z")
    tid = fire(stub, device, firing).ticket_ids[0]
    assert fire(stub, device, alert("late-1", status="resolved", starts_at="2025-11-04T01:00:00Z",
                                    ends_at="2025-11-04T01:30:00Z")).resolved == 1
    assert ticket_row(database, tid)["alert_raised_at"] == dt.datetime(2025, 11, 4, 1, 0, tzinfo=dt.timezone.utc)

    again = fire(stub, device, firing)
    assert (again.opened, again.updated, again.resolved, list(again.ticket_ids)) == (0, 1, 0, [tid])
    assert ticket_row(database, tid)["status"] == "new"
    assert ticket_events(database, tid) == ["opened", "resolved", "reopened"]
    assert len(outbox(database, "TicketReopened", ticket_id=tid)) == 1

    # A second episode; then the first episode's resolution, delivered late: the second still fires.
    assert fire(stub, device, alert("late-1", starts_at="2025-11-04T01:31:00Z")).updated == 1
    stale = fire(stub, device, alert("late-1", status="resolved", starts_at="2025-11-04T01:00:00Z",
                                     ends_at="2025-11-04T01:30:00Z"))
    assert stale.resolved == 0 and ticket_row(database, tid)["status"] == "new"
    assert fire(stub, device, alert("late-1", status="resolved", starts_at="2025-11-04T01:31:00Z",
                                    ends_at="2025-11-04T01:40:00Z")).resolved == 1


def test_a_lone_surrogate_is_replaced_and_the_whole_notification_applied_once(stub, people, database):
    """'\\ud800' is valid JSON, not text PostgreSQL can store: the alert after a good one failed with
    INTERNAL after the good one was committed, and each retry of Alertmanager's counted the good one
    again while the bad one never opened."""
    device = people.device()
    good, bad = alert("surrogate-good"), alert("surrogate-bad\ud800")
    bad["annotations"]["summary"] = "disk full \ud800"
    bad["labels"]["mount"] = "/data\udfff"
    body = json.dumps({"version": "4", "status": "firing", "alerts": [good, bad]})
    assert "\\ud800" in body
    reply = stub.ReceiveAlerts(pb.ReceiveAlertsRequest(alertmanager_payload=body), metadata=device.md)
    assert (reply.opened, reply.updated) == (2, 0)
    tickets = {t["alert_fingerprint"]: t for t in alert_tickets(database)}
    assert set(tickets) == {"surrogate-good", "surrogate-bad\ufffd"}
    assert tickets["surrogate-bad\ufffd"]["description"] == "disk full \ufffd"
    again = stub.ReceiveAlerts(pb.ReceiveAlertsRequest(alertmanager_payload=body), metadata=device.md)
    assert (again.opened, again.updated) == (0, 2)
    assert sorted(t["alert_repeats"] for t in alert_tickets(database)) == [1, 1]


def test_a_notification_is_applied_whole_or_not_at_all(store, database):
    """Whatever fails in the database on one alert (here a NUL the parser would have dropped, handed to the
    store directly) undoes the alerts before it in the same notification: Alertmanager's retry applies it once."""
    from ticketing.domain.alerts import AlertNotice

    def notice(fingerprint: str, summary: str = "HIS down") -> AlertNotice:
        return AlertNotice(fingerprint=fingerprint, status="firing", subsystem_code="HIS", alertname="HisApiDown",
                           severity="critical", summary=summary,
                           starts_at=dt.datetime(2025, 11, 4, 1, 0, tzinfo=dt.timezone.utc), ends_at=None)

    now = dt.datetime(2025, 11, 4, 1, 5, tzinfo=dt.timezone.utc)
    with pytest.raises(psycopg.DataError):
        store.receive_alerts([notice("whole-1"), notice("whole-2", "nul \x00")], "device:am", "alert", now)
    assert alert_tickets(database) == [] and outbox(database, "TicketOpened") == []
    assert store.receive_alerts([notice("whole-1"), notice("whole-2")], "device:am", "alert", now) == \
        [("opened", store_ticket(database, "whole-1")), ("opened", store_ticket(database, "whole-2"))]


def store_ticket(database, fingerprint: str) -> str:
    (row,) = query(database, "SELECT id FROM tickets WHERE alert_fingerprint = %s", fingerprint)
    return str(row["id"])


def test_a_notification_and_a_calendar_change_take_turns_instead_of_deadlocking(store):
    """A notification locks its tickets, a calendar change every open ticket: taken in two orders (the
    notification's, the table's), a notification naming A then B while the calendar change locked B then
    waited on A deadlocked, and one of them failed."""
    machine = "00000000-0000-0000-0000-00000000a1e7"
    now = utcnow()
    start = (now - dt.timedelta(minutes=5)).isoformat()

    def notices(*alerts):
        return parse_alertmanager(json.loads(alertmanager(*alerts)))

    # B's row first in the table, then A's: both open alert tickets.
    store.receive_alerts(notices(alert("lockorder-b", starts_at=start)), machine, "alert", now)
    store.receive_alerts(notices(alert("lockorder-a", starts_at=start)), machine, "alert", now)
    # New alerts between A and B: the notification holds A's row while it opens them.
    filler = [alert(f"lockorder-f{i:04d}", starts_at=start) for i in range(300)]
    with ThreadPoolExecutor(2) as pool:
        notification = pool.submit(store.receive_alerts, notices(alert("lockorder-a", starts_at=start), *filler,
                                                                  alert("lockorder-b", starts_at=start)),
                                   machine, "alert", utcnow())
        time.sleep(0.3)
        calendar = pool.submit(store.put_calendar_day, dt.date(2031, 5, 6), False, "lock order", remove=False,
                               now=utcnow())
        assert [outcome for outcome, _ in notification.result()].count("updated") == 2
        calendar.result()


def test_a_reopened_alert_ticket_is_in_progress_only_if_its_engineer_had_started(stub, people, database, clock):
    """Started by one engineer, then given to another who had not started: its firing again puts it in the
    second engineer's queue to start, not in progress under someone who never began."""
    device, dispatcher, first, second = people.device(), people.dispatcher(), people.engineer(), people.engineer()
    clock.set(shanghai(2025, 11, 4, 9, 0))
    (tid,) = fire(stub, device, alert("handed-over-1")).ticket_ids
    stub.ChangeTicket(change(tid, pb.TICKET_ACTION_ASSIGN, assignee_id=first.id), metadata=dispatcher.md)
    stub.ChangeTicket(change(tid, pb.TICKET_ACTION_START), metadata=first.md)
    stub.ChangeTicket(change(tid, pb.TICKET_ACTION_ASSIGN, assignee_id=second.id), metadata=dispatcher.md)
    clock.set(shanghai(2025, 11, 4, 9, 30))
    fire(stub, device, alert("handed-over-1", status="resolved"))
    clock.set(shanghai(2025, 11, 4, 9, 40))
    fire(stub, device, alert("handed-over-1", starts_at="2025-11-04T01:35:00Z"))
    row = ticket_row(database, tid)
    assert (row["status"], row["assignee_id"]) == ("assigned", second.id)


def test_an_alertmanager_webhook_does_not_touch_a_freezers_ticket(stub, people, store, database):
    """The specimen bank's alarms and Alertmanager's alerts share one fingerprint space: a webhook naming a
    device alarm's fingerprint ("device:<id>:<kind>") resolved the freezer's ticket (and a firing one would
    open or reopen it), which only the bank's own raise and clearance events may do. It is refused whole,
    INVALID_ARGUMENT on the payload, and the freezer's ticket stays open."""
    from ticketing.domain.alerts import AlertNotice, device_alarm_fingerprint

    fingerprint = device_alarm_fingerprint("FRZ-01", "temperature_high")
    raised = dt.datetime(2025, 11, 4, 1, 0, tzinfo=dt.timezone.utc)
    with database.transaction() as cur:
        outcome, ticket_id = store.device_alarm_raised(cur, "FRZ-01", AlertNotice(
            fingerprint=fingerprint, status="firing", subsystem_code="BIOBANK", alertname="temperature_high",
            severity="critical", summary="freezer FRZ-01 at -62 C", starts_at=raised, ends_at=None),
            "service:ticketing", raised)
    assert outcome == "opened"
    device = people.device()
    for status in ("resolved", "firing"):
        r = refused(stub.ReceiveAlerts, alerts_request(alert(fingerprint, subsystem="BIOBANK", status=status,
                                                             starts_at="2025-11-04T02:00:00Z")),
                    metadata=device.md)
        assert (r.code, r.field) == (grpc.StatusCode.INVALID_ARGUMENT, "alertmanager_payload")
        assert "fingerprint" in r.details
    row = ticket_row(database, ticket_id)
    assert (row["status"], row["alert_repeats"]) == ("new", 0)
    assert ticket_events(database, ticket_id) == ["opened"]


def test_a_re_firing_handled_by_a_replica_a_little_behind_reopens_the_ticket_for_its_sla_too(store, database):
    """Alertmanager's HA pair sends a flapping alert's resolution and its re-firing within moments, to two api
    replicas whose clocks differ by milliseconds: the reopening came before the resolution in the history, and
    the ticket, open again, read as resolved (its clock stopped, never escalated)."""
    from ticketing.domain.alerts import AlertNotice

    def notice(status: str) -> AlertNotice:
        return AlertNotice(fingerprint="flap-1", status=status, subsystem_code="HIS", alertname="HisApiDown",
                           severity="critical", summary="HIS down",
                           starts_at=dt.datetime(2025, 11, 4, 1, 0, tzinfo=dt.timezone.utc), ends_at=None)

    t0 = dt.datetime(2025, 11, 4, 1, 1, tzinfo=dt.timezone.utc)
    ((_, ticket_id),) = store.receive_alerts([notice("firing")], "device:am", "alert", t0)
    store.receive_alerts([notice("resolved")], "device:am", "alert", t0 + dt.timedelta(minutes=1, milliseconds=5))
    assert store.receive_alerts([notice("firing")], "device:am", "alert",
                                t0 + dt.timedelta(minutes=1, milliseconds=3)) == [("updated", ticket_id)]
    assert ticket_row(database, ticket_id)["status"] == "new"
    assert ticket_events(database, ticket_id) == ["opened", "resolved", "reopened"]
    row, state, *_ = store.get_ticket(ticket_id, t0 + dt.timedelta(hours=5))
    assert state.resolved_at is None and state.running
    assert state.escalation_level == 2                                          # P1: 4 hours, beyond them
    assert row["next_check_at"] is not None
