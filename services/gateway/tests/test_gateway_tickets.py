"""Ticketing through HTTP: the subsystem catalogue, tickets and their
lifecycle, comments, worklogs, device tokens and Alertmanager's webhook.
Requests reach the service with the caller's token and idempotency key;
enum values are lower-case names; refusals come back mapped."""
from __future__ import annotations

import json
import socket
import time
import uuid
from dataclasses import dataclass

import httpx
import pytest
from gateway_testkit import JSON_CONTENT, error, escaped_json, new_key

from tuoguan.ticketing.v1 import ticketing_pb2 as tkt
from tuoguan_common import auth

pytestmark = pytest.mark.integration

SUBSYSTEM = {"code": "LIS", "name": "检验信息系统", "name_en": "Laboratory information system", "category": "laboratory",
             "criticality": "high", "team": "lab-pathology", "vendor": "杏和", "service_hours": "24x7", "active": True}
INCIDENT = {"kind": "incident", "subsystem_code": "PACS", "title": "阅片工作站无法调阅影像",
            "description": "放射科 3 号工作站打开检查时报错", "impact": "high", "urgency": "medium"}


@dataclass
class Staff:
    subject: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@pytest.fixture
def person(issuer):
    """A fresh account holding the roles named: person(auth.CLINICIAN). An engineer's token carries
    ``grade`` (senior unless named; "" for an engineer not graded yet), as identity signs it."""
    def make(*roles: str, grade: str | None = None) -> Staff:
        subject = str(uuid.uuid4())  # identity's account ids
        if grade is None:
            grade = "senior" if auth.ENGINEER in roles else ""
        return Staff(subject, issuer.issue(subject, list(roles), grade=grade))
    return make


def open_ticket(http, caller, **changes):
    reply = http.post("/api/v1/tickets", headers=caller.headers | new_key(), json=INCIDENT | changes)
    assert reply.status_code == 201, reply.text
    return reply.json()


def act(http, caller, ticket_id, action, body=None, key=None):
    return http.post(f"/api/v1/tickets/{ticket_id}/actions/{action}", headers=caller.headers | (key or new_key()),
                     json=body)


# The subsystem catalogue.

def test_anyone_signed_in_lists_the_active_subsystems(http, fakes, person):
    clinician = person(auth.CLINICIAN)
    reply = http.get("/api/v1/subsystems", headers=clinician.headers)
    assert reply.status_code == 200
    listed = {s["code"]: s for s in reply.json()["subsystems"]}
    assert {"HIS", "PACS"} <= set(listed) and "OA" not in listed
    assert listed["HIS"] == {
        "subsystem_id": "sub-his", "code": "HIS", "name": "医院信息系统", "name_en": "Hospital information system",
        "category": "clinical", "criticality": "critical", "team": "apps-clinical", "vendor": "东华软件",
        "service_hours": "24x7", "active": True}
    assert fakes["ticketing"].last("ListSubsystems")[2]["authorization"] == f"Bearer {clinician.token}"
    everything = http.get("/api/v1/subsystems", headers=clinician.headers, params={"include_inactive": "true"})
    assert "OA" in {s["code"] for s in everything.json()["subsystems"]}
    assert fakes["ticketing"].last("ListSubsystems")[1].include_inactive is True
    assert error(http.get("/api/v1/subsystems")) == (401, "unauthenticated", None)


def test_an_admin_creates_and_changes_a_subsystem(http, fakes, demo, person):
    admin = demo("admin")
    key = new_key()
    created = http.put("/api/v1/admin/subsystems", headers=admin.headers | key, json=SUBSYSTEM)
    assert created.status_code == 200, created.text
    assert created.json() == SUBSYSTEM | {"subsystem_id": "sub-lis"}
    _, request, metadata = fakes["ticketing"].last("PutSubsystem")
    assert request.subsystem.criticality == tkt.CRITICALITY_HIGH and request.subsystem.subsystem_id == ""
    assert request.idempotency_key == key["Idempotency-Key"]
    assert metadata["authorization"] == f"Bearer {admin.token}"
    # Resending with the same key returns the first answer.
    again = http.put("/api/v1/admin/subsystems", headers=admin.headers | key, json=SUBSYSTEM | {"vendor": "x"})
    assert again.json() == created.json()
    changed = http.put("/api/v1/admin/subsystems", headers=admin.headers | new_key(),
                       json=created.json() | {"criticality": "critical", "service_hours": "08:00-17:30"})
    assert changed.json()["subsystem_id"] == "sub-lis" and changed.json()["criticality"] == "critical"
    assert fakes["ticketing"].last("PutSubsystem")[1].subsystem.subsystem_id == "sub-lis"


def test_subsystem_changes_are_refused_with_reasons(http, demo, person):
    admin = demo("admin")
    put = "/api/v1/admin/subsystems"
    assert error(http.put(put, headers=admin.headers, json=SUBSYSTEM)) == (422, "invalid_argument", "Idempotency-Key")
    assert error(http.put(put, headers=admin.headers | new_key(), json=SUBSYSTEM | {"criticality": "dire"}))[::2] \
        == (422, "criticality")
    assert error(http.put(put, headers=admin.headers | new_key(), json=SUBSYSTEM | {"code": ""})) == \
        (422, "invalid_argument", "subsystem.code")
    assert error(http.put(put, headers=admin.headers | new_key(), json=SUBSYSTEM | {"subsystem_id": "sub-none"})) == \
        (404, "subsystem_not_found", None)
    clinician = person(auth.CLINICIAN)
    assert error(http.put(put, headers=clinician.headers | new_key(), json=SUBSYSTEM)) == \
        (403, "permission_denied", None)


# Tickets.

@pytest.mark.parametrize("change, field", [
    ({"impact": None}, "impact"), ({"urgency": None}, "urgency"),
    ({"major_incident": "yes"}, "major_incident"), ({"major_incident": 1}, "major_incident"),
])
def test_a_ticket_says_how_bad_it_is_in_the_documented_types(http, fakes, person, change, field):
    """What the OpenAPI says is required is required (ticketing requires impact and urgency), and a
    major incident, which makes a ticket P1, is true or false, not whatever reads as one."""
    body = {name: value for name, value in (INCIDENT | change).items() if value is not None}
    before = len(fakes["ticketing"].requests)
    assert error(http.post("/api/v1/tickets", headers=person(auth.CLINICIAN).headers | new_key(), json=body))[::2] \
        == (422, field)
    assert len(fakes["ticketing"].requests) == before
    schema = http.get("/openapi.json").json()["components"]["schemas"]["OpenTicket"]
    assert {"kind", "subsystem_code", "title", "impact", "urgency"} <= set(schema["required"])


def test_a_clinician_opens_a_ticket_with_their_token_and_key(http, fakes, person):
    clinician = person(auth.CLINICIAN)
    key = new_key()
    reply = http.post("/api/v1/tickets", headers=clinician.headers | key, json=INCIDENT | {"major_incident": False})
    assert reply.status_code == 201, reply.text
    ticket = reply.json()
    assert set(ticket) == set(tkt.Ticket.DESCRIPTOR.fields_by_name)
    assert set(ticket["sla"]) == set(tkt.SlaStatus.DESCRIPTOR.fields_by_name)
    assert {k: ticket[k] for k in ("kind", "subsystem_code", "status", "source", "impact", "urgency", "priority",
                                   "requester_id", "paused_by")} == {
        "kind": "incident", "subsystem_code": "PACS", "status": "new", "source": "portal", "impact": "high",
        "urgency": "medium", "priority": "p2", "requester_id": clinician.subject, "paused_by": "unspecified"}
    assert ticket["number"].startswith("T2026") and ticket["sla"]["resolution_target_seconds"] == 14400.0
    _, request, metadata = fakes["ticketing"].last("OpenTicket")
    assert (request.kind, request.impact, request.urgency, request.idempotency_key) == \
        (tkt.TICKET_KIND_INCIDENT, tkt.LEVEL_HIGH, tkt.LEVEL_MEDIUM, key["Idempotency-Key"])
    assert metadata["authorization"] == f"Bearer {clinician.token}"
    # The same key again: the first ticket, not a second one.
    again = http.post("/api/v1/tickets", headers=clinician.headers | key, json=INCIDENT)
    assert again.status_code == 201 and again.json()["ticket_id"] == ticket["ticket_id"]


def test_staff_open_a_ticket_on_behalf_of_a_caller(http, fakes, person):
    dispatcher, caller = person(auth.DISPATCHER), person(auth.CLINICIAN)
    ticket = open_ticket(http, dispatcher, kind="service_request", on_behalf_of=caller.subject, major_incident=True,
                         impact="low", urgency="low")
    assert (ticket["kind"], ticket["source"], ticket["requester_id"], ticket["reported_by_id"], ticket["priority"]) \
        == ("service_request", "staff", caller.subject, dispatcher.subject, "p1")
    assert fakes["ticketing"].last("OpenTicket")[1].on_behalf_of == caller.subject
    # The caller's account id, not their name or number: the service refuses typed text, naming the field.
    for typed in ("内科 张三 13800138000", "acc-caller"):
        assert error(http.post("/api/v1/tickets", headers=dispatcher.headers | new_key(),
                               json=INCIDENT | {"on_behalf_of": typed})) == (422, "invalid_argument", "on_behalf_of")


def test_opening_a_ticket_is_refused_with_reasons(http, patient, person):
    clinician = person(auth.CLINICIAN)
    tickets = "/api/v1/tickets"
    assert error(http.post(tickets, headers=clinician.headers, json=INCIDENT)) == \
        (422, "invalid_argument", "Idempotency-Key")
    assert error(http.post(tickets, headers=clinician.headers | new_key(), json=INCIDENT | {"subsystem_code": "XYZ"})) \
        == (422, "invalid_argument", "subsystem_code")
    # An inactive subsystem takes no new tickets.
    assert error(http.post(tickets, headers=clinician.headers | new_key(), json=INCIDENT | {"subsystem_code": "OA"})) \
        == (422, "invalid_argument", "subsystem_code")
    assert error(http.post(tickets, headers=clinician.headers | new_key(), json=INCIDENT | {"title": " "})) == \
        (422, "invalid_argument", "title")
    assert error(http.post(tickets, headers=clinician.headers | new_key(), json=INCIDENT | {"kind": "complaint"})
                 )[::2] == (422, "kind")
    without_title = {k: v for k, v in INCIDENT.items() if k != "title"}
    assert error(http.post(tickets, headers=clinician.headers | new_key(), json=without_title))[::2] == (422, "title")
    assert error(http.post(tickets, headers=new_key(), json=INCIDENT)) == (401, "unauthenticated", None)
    assert error(http.post(tickets, headers=patient.headers | new_key(), json=INCIDENT)) == \
        (403, "permission_denied", None)
    # A clinician may not open tickets for someone else.
    assert error(http.post(tickets, headers=clinician.headers | new_key(), json=INCIDENT | {"on_behalf_of": "x"}))[0] \
        == 403


def test_the_three_views_of_tickets(http, fakes, person):
    clinician, engineer, dispatcher = person(auth.CLINICIAN), person(auth.ENGINEER), person(auth.DISPATCHER)
    first = open_ticket(http, clinician)
    second = open_ticket(http, clinician, subsystem_code="HIS")
    mine = http.get("/api/v1/tickets", headers=clinician.headers)
    assert mine.status_code == 200
    assert [t["ticket_id"] for t in mine.json()["tickets"]] == [first["ticket_id"], second["ticket_id"]]
    assert fakes["ticketing"].last("ListTickets")[1].view == tkt.TICKET_VIEW_MINE

    assert act(http, dispatcher, second["ticket_id"], "assign", {"assignee_id": engineer.subject}).status_code == 200
    queue = http.get("/api/v1/tickets", headers=engineer.headers, params={"view": "queue"})
    assert [t["ticket_id"] for t in queue.json()["tickets"]] == [second["ticket_id"]]
    assert queue.json()["tickets"][0]["status"] == "assigned"

    board = http.get("/api/v1/tickets", headers=dispatcher.headers,
                     params={"view": "board", "open_only": "true", "subsystem_code": "HIS", "limit": 500})
    assert second["ticket_id"] in {t["ticket_id"] for t in board.json()["tickets"]}
    assert {t["subsystem_code"] for t in board.json()["tickets"]} == {"HIS"}
    request = fakes["ticketing"].last("ListTickets")[1]
    assert (request.view, request.open_only, request.subsystem_code, request.limit) == \
        (tkt.TICKET_VIEW_BOARD, True, "HIS", 500)
    assert fakes["ticketing"].last("ListTickets")[2]["authorization"] == f"Bearer {dispatcher.token}"

    assert error(http.get("/api/v1/tickets", headers=clinician.headers, params={"view": "board"})) == \
        (403, "permission_denied", None)
    assert error(http.get("/api/v1/tickets", headers=clinician.headers, params={"view": "all"}))[::2] == (422, "view")
    assert error(http.get("/api/v1/tickets", headers=clinician.headers, params={"limit": 10**6}))[::2] == \
        (422, "limit")


def test_a_ticket_with_its_comments_and_worklogs(http, fakes, person):
    clinician, engineer = person(auth.CLINICIAN), person(auth.ENGINEER)
    ticket = open_ticket(http, clinician)
    tid = ticket["ticket_id"]
    key = new_key()
    comment = http.post(f"/api/v1/tickets/{tid}/comments", headers=clinician.headers | key,
                        json={"body": "仍然无法打开 / still failing"})
    assert comment.status_code == 201
    assert comment.json() == {"comment_id": f"cm-{tid}-1", "author_id": clinician.subject,
                              "body": "仍然无法打开 / still failing", "created_at": "2026-11-26T09:00:00Z"}
    assert fakes["ticketing"].last("AddComment")[1].idempotency_key == key["Idempotency-Key"]
    # No grade: the gateway sends the one in the engineer's token, and the service records it.
    worklog_body = {"activity": "remote", "started_at": "2026-11-26T09:30:00+08:00", "minutes": 45,
                    "note": "重启影像服务"}
    key = new_key()
    worklog = http.post(f"/api/v1/tickets/{tid}/worklogs", headers=engineer.headers | key, json=worklog_body)
    assert worklog.status_code == 201, worklog.text
    assert worklog.json() == worklog_body | {"worklog_id": f"wl-{tid}-1", "ticket_id": tid, "grade": "senior",
                                             "engineer_id": engineer.subject, "billable": False,
                                             "created_at": "2026-11-26T09:00:00Z"}
    _, request, metadata = fakes["ticketing"].last("RecordWorklog")
    assert (request.ticket_id, request.minutes, request.idempotency_key) == (tid, 45, key["Idempotency-Key"])
    assert request.grade == "senior"
    assert metadata["authorization"] == f"Bearer {engineer.token}"
    listed = http.get(f"/api/v1/tickets/{tid}/worklogs", headers=clinician.headers)
    assert listed.status_code == 200 and listed.json() == {"worklogs": [worklog.json()]}

    detail = http.get(f"/api/v1/tickets/{tid}", headers=clinician.headers)
    assert detail.status_code == 200
    assert set(detail.json()) == {"ticket", "comments", "worklogs", "history"}
    assert detail.json()["ticket"]["worklog_minutes"] == 45
    assert detail.json()["comments"] == [comment.json()] and detail.json()["worklogs"] == [worklog.json()]
    assert fakes["ticketing"].last("GetTicket")[2]["authorization"] == f"Bearer {clinician.token}"


def test_comments_and_worklogs_are_refused_with_reasons(http, person):
    clinician, engineer = person(auth.CLINICIAN), person(auth.ENGINEER)
    tid = open_ticket(http, clinician)["ticket_id"]
    worklog = {"activity": "repair", "started_at": "2026-11-26T09:30:00+08:00", "minutes": 30}
    assert error(http.post(f"/api/v1/tickets/{tid}/comments", headers=clinician.headers, json={"body": "x"})) == \
        (422, "invalid_argument", "Idempotency-Key")
    assert error(http.post(f"/api/v1/tickets/{tid}/worklogs", headers=engineer.headers, json=worklog)) == \
        (422, "invalid_argument", "Idempotency-Key")
    assert error(http.post(f"/api/v1/tickets/{tid}/comments", headers=clinician.headers | new_key(),
                           json={"body": ""})) == (422, "invalid_argument", "body")
    assert error(http.post(f"/api/v1/tickets/{tid}/worklogs", headers=engineer.headers | new_key(),
                           json=worklog | {"minutes": 0})) == (422, "invalid_argument", "minutes")
    # Past int32, or a lone surrogate: refused by the gateway, not a failure in the protobuf runtime.
    assert error(http.post(f"/api/v1/tickets/{tid}/worklogs", headers=engineer.headers | new_key(),
                           json=worklog | {"minutes": 2**40}))[::2] == (422, "minutes")
    assert error(http.post(f"/api/v1/tickets/{tid}/worklogs", headers=engineer.headers | new_key() | JSON_CONTENT,
                           content=escaped_json(worklog | {"note": "\ud800"}))) == (422, "invalid_argument", "note")
    assert error(http.post(f"/api/v1/tickets/{tid}/comments", headers=clinician.headers | new_key() | JSON_CONTENT,
                           content=escaped_json({"body": "已重启\udc00"}))) == (422, "invalid_argument", "body")
    assert error(http.post(f"/api/v1/tickets/{tid}/worklogs", headers=clinician.headers | new_key(), json=worklog)) \
        == (403, "permission_denied", None)
    assert error(http.post("/api/v1/tickets/tk-none/comments", headers=clinician.headers | new_key(),
                           json={"body": "x"})) == (404, "ticket_not_found", None)
    assert error(http.get("/api/v1/tickets/tk-none/worklogs", headers=clinician.headers)) == \
        (404, "ticket_not_found", None)


def test_a_worklog_starting_before_its_ticket_was_opened_is_422_on_started_at(http, fakes, person):
    clinician, engineer = person(auth.CLINICIAN), person(auth.ENGINEER)
    ticket = open_ticket(http, clinician)
    tid = ticket["ticket_id"]
    assert ticket["created_at"] == "2026-11-25T16:00:00Z"  # 2026-11-26 00:00 in the hospital
    before = len(fakes["ticketing"].worklogs.get(tid, []))
    refused = http.post(f"/api/v1/tickets/{tid}/worklogs", headers=engineer.headers | new_key(), json={
        "activity": "repair", "started_at": "2026-11-25T23:59:00+08:00", "minutes": 30})
    assert error(refused) == (422, "worklog_before_ticket_opened", "started_at")
    assert "before the ticket was opened at 2026-11-26T00:00+08:00" in refused.json()["error"]["message"]
    assert len(fakes["ticketing"].worklogs.get(tid, [])) == before


def test_a_worklog_is_at_the_accounts_grade_and_another_is_refused(http, fakes, person):
    clinician, engineer = person(auth.CLINICIAN), person(auth.ENGINEER, grade="intermediate")
    ungraded = person(auth.ENGINEER, grade="")
    tid = open_ticket(http, clinician)["ticket_id"]
    worklog = {"activity": "repair", "started_at": "2026-11-26T09:30:00+08:00", "minutes": 30}
    before = len(fakes["ticketing"].worklogs.get(tid, []))

    claimed = http.post(f"/api/v1/tickets/{tid}/worklogs", headers=engineer.headers | new_key(),
                        json=worklog | {"grade": "expert"})
    assert error(claimed) == (422, "invalid_argument", "grade")
    assert "intermediate" in claimed.json()["error"]["message"]
    not_graded = http.post(f"/api/v1/tickets/{tid}/worklogs", headers=ungraded.headers | new_key(), json=worklog)
    assert error(not_graded) == (409, "engineer_not_graded", None)
    assert "an admin sets engineers' grades" in not_graded.json()["error"]["message"]
    assert len(fakes["ticketing"].worklogs.get(tid, [])) == before

    # The account's own grade, named or not, is recorded.
    for body in (worklog, worklog | {"grade": "Intermediate", "started_at": "2026-11-26T10:30:00+08:00"}):
        logged = http.post(f"/api/v1/tickets/{tid}/worklogs", headers=engineer.headers | new_key(), json=body)
        assert logged.status_code == 201 and logged.json()["grade"] == "intermediate", logged.text
    # A grade the body names goes on as it is (ticketing judges it); none, the token's ("" when it has none).
    sent = [r.grade for name, r, _ in fakes["ticketing"].requests if name == "RecordWorklog" and r.ticket_id == tid]
    assert sent == ["expert", "", "intermediate", "Intermediate"]


def test_a_ticketing_pod_from_before_grades_records_the_tokens_grade(http, fakes, person, monkeypatch):
    """A rolling upgrade: this gateway reaching a ticketing-api pod that still requires a grade. A worklog
    naming none goes there with the token's, so an engineer who was graded (and signed in again) logs time
    at it; one not graded yet is refused on grade, as that pod always refused a worklog without one."""
    monkeypatch.setattr(fakes["ticketing"], "before_grades", True)
    clinician, engineer = person(auth.CLINICIAN), person(auth.ENGINEER, grade="expert")
    ungraded = person(auth.ENGINEER, grade="")
    tid = open_ticket(http, clinician)["ticket_id"]
    worklogs = f"/api/v1/tickets/{tid}/worklogs"
    worklog = {"activity": "repair", "started_at": "2026-11-26T09:30:00+08:00", "minutes": 30}
    logged = http.post(worklogs, headers=engineer.headers | new_key(), json=worklog)
    assert logged.status_code == 201 and logged.json()["grade"] == "expert", logged.text
    assert fakes["ticketing"].last("RecordWorklog")[1].grade == "expert"
    assert error(http.post(worklogs, headers=ungraded.headers | new_key(), json=worklog)) == \
        (422, "invalid_argument", "grade")
    # Blank is none: the token's grade, not spaces that pod would refuse.
    blank = worklog | {"grade": " ", "started_at": "2026-11-26T10:30:00+08:00"}
    assert http.post(worklogs, headers=engineer.headers | new_key(), json=blank).json()["grade"] == "expert"


def test_a_ticket_through_its_lifecycle(http, fakes, person):
    clinician, engineer, dispatcher = person(auth.CLINICIAN), person(auth.ENGINEER), person(auth.DISPATCHER)
    tid = open_ticket(http, clinician)["ticket_id"]
    key = new_key()
    assigned = act(http, dispatcher, tid, "assign", {"assignee_id": engineer.subject, "team": "imaging"}, key=key)
    assert assigned.status_code == 200, assigned.text
    assert (assigned.json()["status"], assigned.json()["assignee_id"], assigned.json()["team"]) == \
        ("assigned", engineer.subject, "imaging")
    _, request, metadata = fakes["ticketing"].last("ChangeTicket")
    assert (request.ticket_id, request.action, request.assignee_id, request.team, request.idempotency_key) == \
        (tid, tkt.TICKET_ACTION_ASSIGN, engineer.subject, "imaging", key["Idempotency-Key"])
    assert metadata["authorization"] == f"Bearer {dispatcher.token}"

    # Actions without anything to say need no body.
    started = http.post(f"/api/v1/tickets/{tid}/actions/start", headers=engineer.headers | new_key())
    assert started.status_code == 200 and started.json()["status"] == "in_progress"
    paused = act(http, engineer, tid, "pause", {"pause_side": "vendor", "note": "等待厂商补丁"})
    assert (paused.json()["status"], paused.json()["paused_by"]) == ("pending", "vendor")
    assert paused.json()["sla"]["clock_stopped"] is True and paused.json()["sla"]["paused_by"] == "vendor"
    request = fakes["ticketing"].last("ChangeTicket")[1]
    assert (request.action, request.pause_side, request.note) == \
        (tkt.TICKET_ACTION_PAUSE, tkt.PAUSE_SIDE_VENDOR, "等待厂商补丁")
    resumed = act(http, engineer, tid, "resume", {})
    assert (resumed.json()["status"], resumed.json()["paused_by"]) == ("in_progress", "unspecified")
    resolved = act(http, engineer, tid, "resolve", {"note": "更换网卡驱动"})
    assert (resolved.json()["status"], resolved.json()["resolution_note"]) == ("resolved", "更换网卡驱动")
    reopened = act(http, clinician, tid, "reopen", {"note": "又出现了"})
    assert reopened.json()["status"] == "in_progress"
    act(http, engineer, tid, "resolve", {"note": "更换网卡"})
    confirmed = act(http, clinician, tid, "confirm")
    assert confirmed.status_code == 200 and confirmed.json()["status"] == "closed" and confirmed.json()["closed_at"]
    assert fakes["ticketing"].last("ChangeTicket")[1].action == tkt.TICKET_ACTION_CONFIRM


def test_lifecycle_refusals_map_to_http(http, person):
    clinician, engineer, dispatcher = person(auth.CLINICIAN), person(auth.ENGINEER), person(auth.DISPATCHER)
    tid = open_ticket(http, clinician)["ticket_id"]
    # A step the lifecycle does not allow from "new".
    assert error(act(http, engineer, tid, "start")) == (409, "invalid_transition", None)
    assert error(act(http, dispatcher, tid, "close")) == (409, "invalid_transition", None)
    assert error(act(http, dispatcher, tid, "assign", {})) == (422, "invalid_argument", "assignee_id")
    assert error(act(http, dispatcher, tid, "assign", {"assignee_id": "周杰"})) == \
        (422, "invalid_argument", "assignee_id")
    assert error(act(http, clinician, tid, "assign", {"assignee_id": engineer.subject})) == \
        (403, "permission_denied", None)
    assert error(act(http, engineer, tid, "confirm")) == (403, "not_requester", None)
    assert error(act(http, engineer, tid, "teleport"))[::2] == (422, "action")
    assert error(act(http, engineer, tid, "pause", {"pause_side": "nobody"}))[::2] == (422, "pause_side")
    assert error(act(http, engineer, "tk-none", "start")) == (404, "ticket_not_found", None)
    assert error(http.post(f"/api/v1/tickets/{tid}/actions/start", headers=engineer.headers)) == \
        (422, "invalid_argument", "Idempotency-Key")
    assert error(http.get("/api/v1/tickets/tk-none", headers=clinician.headers)) == (404, "ticket_not_found", None)
    # Another clinician does not see the ticket.
    assert error(http.get(f"/api/v1/tickets/{tid}", headers=person(auth.CLINICIAN).headers)) == \
        (403, "permission_denied", None)


def test_an_assignment_to_an_account_that_is_no_engineers_is_409_on_assignee_id(http, fakes, person, monkeypatch):
    """Ticketing refuses an assignee identity does not list as an engineer (a clinician's account, an unknown
    one): 409 with its reason and the field, not 404 (the ticket exists); identity down is 503, retryable."""
    clinician, dispatcher, engineer = person(auth.CLINICIAN), person(auth.DISPATCHER), person(auth.ENGINEER)
    tid = open_ticket(http, clinician)["ticket_id"]
    monkeypatch.setattr(fakes["ticketing"], "not_engineers", {clinician.subject})
    reply = act(http, dispatcher, tid, "assign", {"assignee_id": clinician.subject})
    assert error(reply) == (409, "assignee_not_an_engineer", "assignee_id")
    assert "engineer" in reply.json()["error"]["message"]
    assert fakes["ticketing"].tickets[tid].assignee_id == ""
    monkeypatch.setattr(fakes["ticketing"], "identity_down", True)
    reply = act(http, dispatcher, tid, "assign", {"assignee_id": engineer.subject})
    assert error(reply) == (503, "staff_directory_unavailable", None) and reply.headers["Retry-After"]
    monkeypatch.setattr(fakes["ticketing"], "identity_down", False)
    assert act(http, dispatcher, tid, "assign", {"assignee_id": engineer.subject}).json()["assignee_id"] == \
        engineer.subject
    # The contract says so.
    operation = http.get("/openapi.json").json()["paths"]["/api/v1/tickets/{ticket_id}/actions/{action}"]["post"]
    assert "assignee_not_an_engineer" in operation["responses"]["409"]["description"]
    assert "staff_directory_unavailable" in operation["responses"]["503"]["description"]


# Device tokens and Alertmanager's webhook.

def alertmanager_payload(firing: str, resolved: str) -> dict:
    """What Alertmanager 0.27 posts (webhook version 4) for a group with
    send_resolved: one alert still firing, one resolved."""
    labels = {"alertname": "PacsStorageNearlyFull", "severity": "critical", "subsystem": "PACS", "job": "node"}
    return {
        "receiver": "tuoguan-ticketing",
        "status": "firing",
        "alerts": [
            {"status": "firing", "labels": labels | {"instance": "pacs-store-01:9100"},
             "annotations": {"summary": "PACS 存储使用率 93%", "runbook_url": "https://wiki.hospital.local/pacs"},
             "startsAt": "2026-11-26T01:02:03.456Z", "endsAt": "0001-01-01T00:00:00Z",
             "generatorURL": "http://prometheus:9090/graph?g0.expr=node_filesystem_avail_bytes%3C0.07",
             "fingerprint": firing},
            {"status": "resolved", "labels": labels | {"instance": "pacs-store-02:9100"},
             "annotations": {"summary": "PACS 存储使用率 95%"},
             "startsAt": "2026-11-26T00:40:00Z", "endsAt": "2026-11-26T01:05:00Z",
             "generatorURL": "http://prometheus:9090/graph?g0.expr=node_filesystem_avail_bytes%3C0.07",
             "fingerprint": resolved},
        ],
        "groupLabels": {"alertname": "PacsStorageNearlyFull"},
        "commonLabels": {"alertname": "PacsStorageNearlyFull", "severity": "critical", "subsystem": "PACS"},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.ops.hospital.local:9093",
        "version": "4",
        "groupKey": '{}/{subsystem="PACS"}:{alertname="PacsStorageNearlyFull"}',
        "truncatedAlerts": 0,
    }


@pytest.fixture
def device_token(http, demo):
    """Alertmanager's token, issued by the real identity through the gateway."""
    reply = http.post("/api/v1/admin/device-tokens", headers=demo("admin").headers | new_key(),
                      json={"device_name": "alertmanager", "valid_days": 365})
    assert reply.status_code == 201, reply.text
    return reply.json()["access_token"]


def test_an_admin_issues_a_device_token(http, demo, verifier):
    reply = http.post("/api/v1/admin/device-tokens", headers=demo("admin").headers | new_key(),
                      json={"device_name": "freezer-b2-07", "valid_days": 30})
    assert reply.status_code == 201 and set(reply.json()) == {"access_token", "expires_at", "token_id"}
    principal = verifier.verify(reply.json()["access_token"])
    assert principal.subject == "device:freezer-b2-07" and principal.roles == {auth.DEVICE}
    assert reply.json()["expires_at"].endswith("Z")


def test_device_tokens_are_refused_with_reasons(http, demo):
    admin, office = demo("admin"), demo("office")
    office_headers, admin_headers = office.headers | new_key(), admin.headers | new_key()
    route = "/api/v1/admin/device-tokens"
    assert error(http.post(route, headers=office_headers, json={"device_name": "x", "valid_days": 1})) == \
        (403, "permission_denied", None)
    assert error(http.post(route, headers=new_key(), json={"device_name": "x", "valid_days": 1})) == \
        (401, "unauthenticated", None)
    assert error(http.post(route, headers=admin_headers, json={"device_name": "Freezer 7", "valid_days": 30})) == \
        (422, "device_name_format", "device_name")
    assert error(http.post(route, headers=admin_headers, json={"device_name": "freezer-7", "valid_days": 400})) == \
        (422, "valid_days_range", "valid_days")
    assert error(http.post(route, headers=admin_headers, json={"device_name": "freezer-7", "valid_days": 10**12})
                 )[::2] == (422, "valid_days")
    assert error(http.post(route, headers=admin.headers, json={"device_name": "freezer-7", "valid_days": 30})) == \
        (422, "invalid_argument", "Idempotency-Key")


def test_alertmanager_notifications_reach_the_service_verbatim(http, fakes, device_token):
    firing, resolved = uuid.uuid4().hex[:16], uuid.uuid4().hex[:16]
    webhook = "/api/v1/alertmanager/webhook"
    headers = {"Authorization": f"Bearer {device_token}", "Content-Type": "application/json"}
    # Both fire first: two tickets.
    both_firing = alertmanager_payload(firing, resolved)
    both_firing["alerts"][1] |= {"status": "firing", "endsAt": "0001-01-01T00:00:00Z"}
    first = http.post(webhook, headers=headers, content=json.dumps(both_firing).encode())
    assert first.status_code == 200, first.text
    assert (first.json()["opened"], first.json()["updated"], first.json()["resolved"]) == (2, 0, 0)
    ticket_ids = first.json()["ticket_ids"]

    # Then one still fires and one is resolved; the body is passed on byte for byte (not re-serialised).
    text = json.dumps(alertmanager_payload(firing, resolved), ensure_ascii=False, indent=1)
    reply = http.post(webhook, headers=headers, content=text.encode("utf-8"))
    assert reply.status_code == 200, reply.text
    assert reply.json() == {"opened": 0, "updated": 1, "resolved": 1, "ticket_ids": ticket_ids}
    _, request, metadata = fakes["ticketing"].last("ReceiveAlerts")
    assert request.alertmanager_payload == text
    assert metadata["authorization"] == f"Bearer {device_token}"
    opened = fakes["ticketing"].tickets[ticket_ids[0]]
    assert (opened.source, opened.requester_id, opened.alert_fingerprint) == \
        (tkt.TICKET_SOURCE_ALERT, "device:alertmanager", firing)
    assert fakes["ticketing"].tickets[ticket_ids[1]].status == tkt.TICKET_STATUS_RESOLVED
    # No idempotency key: Alertmanager resends, and the service deduplicates by fingerprint.
    again = http.post(webhook, headers=headers, content=text.encode("utf-8"))
    assert again.json() == {"opened": 0, "updated": 1, "resolved": 0, "ticket_ids": ticket_ids[:1]}


@pytest.mark.parametrize("content", [
    b"alertname=PacsStorageNearlyFull", b"", b'{"version": "4", "alerts": [', b"[1, 2]", b'"firing"',
    b'{"summary": "\xff\xfe"}', b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
], ids=["form", "empty", "truncated", "array", "string", "not-utf8", "too-deep"])
def test_a_webhook_body_that_is_not_a_json_object_is_422(http, fakes, device_token, content):
    before = len(fakes["ticketing"].requests)
    # The webhook reads its body whatever it is labelled: a deep one labelled a form was a 500.
    for labelled in ({}, {"Content-Type": "application/x-www-form-urlencoded"}):
        reply = http.post("/api/v1/alertmanager/webhook",
                          headers={"Authorization": f"Bearer {device_token}"} | labelled, content=content)
        assert error(reply) == (422, "invalid_argument", "body")
    assert len(fakes["ticketing"].requests) == before


def test_a_webhook_body_over_one_mebibyte_is_413(http, fakes, device_token):
    headers = {"Authorization": f"Bearer {device_token}", "Content-Type": "application/json"}
    storm = alertmanager_payload("f" * 16, "e" * 16)
    storm["padding"] = "x" * (1 << 20)
    before = len(fakes["ticketing"].requests)
    assert error(http.post("/api/v1/alertmanager/webhook", headers=headers, content=json.dumps(storm).encode())) == \
        (413, "payload_too_large", "body")

    # Without a Content-Length (chunked), counted as it arrives.
    def chunks():
        body = json.dumps(storm).encode()
        for start in range(0, len(body), 64 * 1024):
            yield body[start:start + 64 * 1024]

    assert error(http.post("/api/v1/alertmanager/webhook", headers=headers, content=chunks())) == \
        (413, "payload_too_large", "body")
    assert len(fakes["ticketing"].requests) == before
    # Just under the limit is taken.
    storm["padding"] = ""
    small = json.dumps(storm).encode()
    storm["padding"] = "x" * ((1 << 20) - len(small))
    exactly = json.dumps(storm).encode()
    assert len(exactly) == 1 << 20
    assert http.post("/api/v1/alertmanager/webhook", headers=headers, content=exactly).status_code == 200


def test_the_webhook_needs_a_device_token(http, fakes, person):
    body = json.dumps(alertmanager_payload(uuid.uuid4().hex[:16], uuid.uuid4().hex[:16])).encode()
    webhook = "/api/v1/alertmanager/webhook"
    before = len(fakes["ticketing"].requests)
    assert error(http.post(webhook, content=body)) == (401, "unauthenticated", None)
    # The service, not the gateway, said no.
    assert len(fakes["ticketing"].requests) == before + 1
    assert "authorization" not in fakes["ticketing"].last("ReceiveAlerts")[2]
    assert error(http.post(webhook, headers=person(auth.CLINICIAN).headers, content=body)) == \
        (403, "permission_denied", None)


PROXIED = [{"X-Forwarded-For": "203.0.113.7"}, {"Forwarded": "for=203.0.113.7"}]


@pytest.mark.parametrize("proxied", PROXIED, ids=["x-forwarded-for", "forwarded"])
def test_through_a_proxy_the_webhook_is_not_there(http, fakes, device_token, proxied):
    """Alertmanager calls the pod; through the ingress the webhook is an unknown path (its 1 MiB bodies,
    read before the token is checked, are not the internet's to send)."""
    headers = {"Authorization": f"Bearer {device_token}", "Content-Type": "application/json"} | proxied
    body = json.dumps(alertmanager_payload(uuid.uuid4().hex[:16], uuid.uuid4().hex[:16])).encode()
    before = len(fakes["ticketing"].requests)
    assert error(http.post("/api/v1/alertmanager/webhook", headers=headers, content=body)) == \
        (404, "not_found", None)
    assert len(fakes["ticketing"].requests) == before


def test_through_a_proxy_the_webhook_is_refused_before_its_body_is_read(gateway_url):
    """A proxied request that sends its headers and then nothing is answered at once, not after the body's
    30-second deadline: none of the body was waited for."""
    host, port = gateway_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as conn:
        conn.sendall(b"POST /api/v1/alertmanager/webhook HTTP/1.1\r\nHost: gateway\r\n"
                     b"X-Forwarded-For: 203.0.113.7\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 1000000\r\n\r\n{")
        started = time.monotonic()
        answer = conn.recv(4096)
        assert answer.startswith(b"HTTP/1.1 404"), answer[:200]
        assert time.monotonic() - started < 3
        # The rest of the body is not waited for either: the connection is closed, not kept to trickle on.
        while chunk := conn.recv(4096):
            answer += chunk
        assert b'"not_found"' in answer and b"connection: close" in answer.lower()


def test_a_deployment_may_let_alertmanager_through_its_proxy(own_gateway, fakes, device_token):
    url = own_gateway(webhook_via_proxy=True)
    headers = {"Authorization": f"Bearer {device_token}", "Content-Type": "application/json"} | PROXIED[0]
    body = json.dumps(alertmanager_payload(uuid.uuid4().hex[:16], uuid.uuid4().hex[:16])).encode()
    with httpx.Client(base_url=url, timeout=20) as client:
        reply = client.post("/api/v1/alertmanager/webhook", headers=headers, content=body)
        assert reply.status_code == 200, reply.text
        # /metrics stays the pod's whatever the webhook does.
        assert client.get("/metrics", headers=PROXIED[0]).status_code == 404
