"""An O&M ticket end to end through the gateway: a clinician reports a PACS
problem, the dispatcher assigns it (to an engineer only: identity says who
is one), the engineer works, logs time (not before the ticket was opened) and
resolves, the clinician confirms, and the worklog becomes billable at the
engineer's grade; an admin finds a new engineer without a grade in the staff
list and grades them, which ends the sessions they signed in before (their
tokens say no grade), and their worklogs are then recorded at that grade and
no other; machines open tickets through the Alertmanager webhook with a
device token, deduplicated by fingerprint, and resolve them. Every step
crosses the real identity and ticketing apis, ticketing's worker (outbox
relay) and RabbitMQ."""
from __future__ import annotations

import datetime as dt
import uuid

import pytest

from tuoguan_common.testing import EventTap, wait_for

from .journey import key, log_a_minute

pytestmark = pytest.mark.integration


def sign_in(http, login: str, password: str) -> tuple[dict[str, str], str]:
    reply = http.post("/api/v1/auth/signin", json={"login": login, "password": password})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    return {"Authorization": f"Bearer {body['access_token']}"}, body["account"]["account_id"]


def act(http, auth, ticket_id: str, action: str, **body) -> dict:
    reply = http.post(f"/api/v1/tickets/{ticket_id}/actions/{action}", json=body, headers={**auth, **key()})
    assert reply.status_code == 200, reply.text
    return reply.json()


def test_a_clinicians_ticket_from_report_to_billable_worklog(platform, http):
    clinician, clinician_id = sign_in(http, "clinician", "Clinician1234")
    dispatcher, _ = sign_in(http, "dispatcher", "Dispatcher1234")
    engineer, engineer_id = sign_in(http, "engineer", "Engineer1234")
    with EventTap(platform.amqp_uri, "ticketing", ["TicketOpened", "TicketClosed", "WorklogBillable"]) as tap:
        reply = http.post("/api/v1/tickets", headers={**clinician, **key()}, json={
            "kind": "incident", "subsystem_code": "PACS", "title": "影像调阅缓慢", "impact": "high",
            "urgency": "medium", "description": "CT images take a minute to open in clinic 3"})
        assert reply.status_code == 201, reply.text
        ticket = reply.json()
        assert ticket["status"] == "new" and ticket["priority"] == "p2" and ticket["source"] == "portal"
        assert ticket["sla"]["response_due"] and ticket["sla"]["resolution_due"]
        ticket_id = ticket["ticket_id"]

        # Only to an engineer: ticketing asks identity, and the clinician's account or an unknown one is refused.
        for nobody in (clinician_id, str(uuid.uuid4())):
            refused = http.post(f"/api/v1/tickets/{ticket_id}/actions/assign", json={"assignee_id": nobody},
                                headers={**dispatcher, **key()})
            assert refused.status_code == 409, refused.text
            assert refused.json()["error"]["reason"] == "assignee_not_an_engineer"
            assert refused.json()["error"]["field"] == "assignee_id"
        assert http.get(f"/api/v1/tickets/{ticket_id}", headers=clinician).json()["ticket"]["status"] == "new"
        assert act(http, dispatcher, ticket_id, "assign", assignee_id=engineer_id)["status"] == "assigned"
        queue = http.get("/api/v1/tickets", params={"view": "queue"}, headers=engineer).json()["tickets"]
        assert ticket_id in [t["ticket_id"] for t in queue]
        assert act(http, engineer, ticket_id, "start")["status"] == "in_progress"
        # Not before the ticket was opened: ticketing refuses a day's work dated ten days earlier, saying when.
        opened_at = dt.datetime.fromisoformat(ticket["created_at"])
        backdated = http.post(f"/api/v1/tickets/{ticket_id}/worklogs", headers={**engineer, **key()}, json={
            "activity": "repair", "started_at": (opened_at - dt.timedelta(days=10)).isoformat(), "minutes": 1440})
        assert backdated.status_code == 422, backdated.text
        assert (backdated.json()["error"]["reason"], backdated.json()["error"]["field"]) == \
            ("worklog_before_ticket_opened", "started_at")
        # The minute since it was opened, then. No grade: the demo engineer's account is senior (identity's
        # seed), and the worklog is recorded at it.
        logged = log_a_minute(http, engineer, ticket_id, note="rebuilt the PACS cache index")
        assert logged.status_code == 201, logged.text
        assert logged.json()["grade"] == "senior"
        assert act(http, engineer, ticket_id, "resolve", note="cache index rebuilt")["status"] == "resolved"
        closed = act(http, clinician, ticket_id, "confirm")
        assert closed["status"] == "closed" and closed["sla"]["responded_at"]

        detail = http.get(f"/api/v1/tickets/{ticket_id}", headers=clinician).json()
        assert [w["billable"] for w in detail["worklogs"]] == [True]
        wait_for(lambda: tap.events("TicketClosed", ticket_id=ticket_id), timeout=20,
                 message="TicketClosed relayed to RabbitMQ")
        (closed_event,) = tap.events("TicketClosed", ticket_id=ticket_id)
        assert closed_event["how"] == "confirmed" and closed_event["billable_minutes"] == 1
        assert tap.events("WorklogBillable", ticket_id=ticket_id)[0]["grade"] == "senior"


def test_an_admin_grades_an_engineer_and_their_worklogs_are_recorded_at_that_grade(platform, http):
    admin, _ = sign_in(http, "admin", "Admin1234")
    clinician, _ = sign_in(http, "clinician", "Clinician1234")
    dispatcher, _ = sign_in(http, "dispatcher", "Dispatcher1234")
    login = f"eng{uuid.uuid4().hex[:8]}"
    opened = http.post("/api/v1/admin/staff-accounts", headers={**admin, **key()}, json={
        "login": login, "password": "Engineer2026", "display_name": "郑浩", "roles": ["engineer"]})
    assert opened.status_code == 201 and opened.json()["grade"] == "", opened.text
    engineer_id = opened.json()["account_id"]
    reply = http.post("/api/v1/tickets", headers={**clinician, **key()}, json={
        "kind": "incident", "subsystem_code": "LIS", "title": "检验结果回传失败", "impact": "medium",
        "urgency": "medium"})
    assert reply.status_code == 201, reply.text
    ticket_id = reply.json()["ticket_id"]
    assert act(http, dispatcher, ticket_id, "assign", assignee_id=engineer_id)["status"] == "assigned"
    worklogs = f"/api/v1/tickets/{ticket_id}/worklogs"
    # The minute the ticket was opened in (a worklog starts no earlier): a new engineer's, overlapping nothing.
    started = dt.datetime.fromisoformat(reply.json()["created_at"]).replace(second=0, microsecond=0).isoformat()
    worklog = {"activity": "remote", "started_at": started, "minutes": 1, "note": "restarted the LIS interface"}

    # Not graded yet: ticketing records no time for the account.
    ungraded, _ = sign_in(http, login, "Engineer2026")
    refused = http.post(worklogs, headers={**ungraded, **key()}, json=worklog)
    assert refused.status_code == 409 and refused.json()["error"]["reason"] == "engineer_not_graded", refused.text

    # Whom to grade: the admin lists the engineers, and the new one is there without a grade.
    listed = http.get("/api/v1/admin/staff-accounts", headers=admin, params={"role": "engineer"})
    assert listed.status_code == 200, listed.text
    ungraded_ids = [a["account_id"] for a in listed.json()["accounts"] if a["login"] == login and not a["grade"]]
    assert ungraded_ids == [engineer_id]
    assert {a["login"]: a["grade"] for a in listed.json()["accounts"]}["engineer"] == "senior"
    graded = http.put(f"/api/v1/admin/staff-accounts/{ungraded_ids[0]}/grade", headers=admin,
                      json={"grade": "expert"})
    assert graded.status_code == 200, graded.text
    assert (graded.json()["account_id"], graded.json()["grade"]) == (engineer_id, "expert")

    # The token signed before says "no grade": withdrawn, every api refuses it within its refresh (1 s here).
    def refused_by_ticketing():
        reply = http.post(worklogs, headers={**ungraded, **key()}, json=worklog)
        return reply if reply.status_code == 401 else None

    gone = wait_for(refused_by_ticketing, timeout=15, interval=0.2,
                    message="ticketing to refuse the token signed before the grade")
    assert "sign in again" in gone.json()["error"]["message"], gone.text
    wait_for(lambda: http.get("/api/v1/me", headers=ungraded).status_code == 401, timeout=15, interval=0.2,
             message="identity to refuse it too (its own refresh)")
    engineer, _ = sign_in(http, login, "Engineer2026")
    assert http.get("/api/v1/me", headers=engineer).json()["grade"] == "expert"
    with EventTap(platform.amqp_uri, "ticketing", ["WorklogRecorded"]) as tap:
        # Another grade than the account's is refused, naming the field; nothing is recorded.
        claimed = http.post(worklogs, headers={**engineer, **key()}, json={**worklog, "grade": "junior"})
        assert claimed.status_code == 422, claimed.text
        assert (claimed.json()["error"]["field"], claimed.json()["error"]["reason"]) == ("grade", "invalid_argument")
        assert "expert" in claimed.json()["error"]["message"]
        # No grade named: the gateway sends the token's (for ticketing pods from before grades), and
        # ticketing, checking it against the token it verifies, records it.
        logged = http.post(worklogs, headers={**engineer, **key()}, json=worklog)
        assert logged.status_code == 201, logged.text
        assert (logged.json()["grade"], logged.json()["engineer_id"]) == ("expert", engineer_id)
        (recorded,) = wait_for(lambda: tap.events("WorklogRecorded", ticket_id=ticket_id), timeout=20,
                               message="WorklogRecorded relayed to RabbitMQ")
        assert (recorded["worklog_id"], recorded["grade"], recorded["minutes"]) == \
            (logged.json()["worklog_id"], "expert", 1)
    listed = http.get(worklogs, headers=dispatcher).json()["worklogs"]
    assert [(w["grade"], w["minutes"]) for w in listed] == [("expert", 1)]


def test_alertmanager_opens_one_ticket_per_alert_and_resolves_it(platform, http):
    admin, _ = sign_in(http, "admin", "Admin1234")
    issued = http.post("/api/v1/admin/device-tokens", headers={**admin, **key()},
                       json={"device_name": "alertmanager", "valid_days": 30})
    assert issued.status_code == 201, issued.text
    device = {"Authorization": f"Bearer {issued.json()['access_token']}"}
    fingerprint = uuid.uuid4().hex[:16]
    alert = {"status": "firing", "labels": {"alertname": "PacsStorageAlmostFull", "subsystem": "STORAGE",
                                            "severity": "critical"},
             "annotations": {"summary": "PACS archive volume 96% full"}, "startsAt": "2026-11-26T08:00:00Z",
             "endsAt": "0001-01-01T00:00:00Z", "fingerprint": fingerprint}
    body = {"version": "4", "status": "firing", "receiver": "tuoguan", "groupKey": "{}:{}", "alerts": [alert]}
    first = http.post("/api/v1/alertmanager/webhook", json=body, headers=device)
    again = http.post("/api/v1/alertmanager/webhook", json=body, headers=device)
    assert first.status_code == again.status_code == 200, first.text
    assert first.json()["opened"] == 1 and again.json()["updated"] == 1
    assert first.json()["ticket_ids"] == again.json()["ticket_ids"]
    (ticket_id,) = first.json()["ticket_ids"]

    resolved = http.post("/api/v1/alertmanager/webhook", headers=device, json={
        **body, "status": "resolved", "alerts": [{**alert, "status": "resolved", "endsAt": "2026-11-26T08:20:00Z"}]})
    assert resolved.json()["resolved"] == 1
    dispatcher, _ = sign_in(http, "dispatcher", "Dispatcher1234")
    ticket = http.get(f"/api/v1/tickets/{ticket_id}", headers=dispatcher).json()["ticket"]
    assert ticket["status"] == "resolved" and ticket["source"] == "alert" and ticket["subsystem_code"] == "STORAGE"
    # An admin tells the calendar about a holiday the statutory data does not know yet.
    known = http.get("/api/v1/admin/calendar", params={"year": 2027}, headers=admin).json()
    assert known["statutory_data"] is False and known["statutory_data_until"] == "2026-12-31"
    put = http.put("/api/v1/admin/calendar/2027-02-05", json={"working": False, "note": "test"}, headers=admin)
    assert put.status_code == 200 and put.json() == {"day": "2027-02-05", "working": False, "note": "test"}
    assert http.delete("/api/v1/admin/calendar/2027-02-05", headers=admin).status_code == 200
    assert http.delete("/api/v1/admin/calendar/2027-02-05", headers=admin).status_code == 404
    # A patient's token is not a device's.
    patient, _ = sign_in(http, "13800000001", "Patient1234")
    assert http.post("/api/v1/alertmanager/webhook", json=body, headers=patient).status_code == 403
