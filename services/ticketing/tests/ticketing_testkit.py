"""Helpers of ticketing's tests: a settable clock, people with tokens, reason
and field codes of refusals, Alertmanager payloads, and the service's rows
(tickets, their event history, the outbox) read straight from the database."""
from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import dataclass

import grpc
import pytest
from ticketing.domain.calendar import HOSPITAL_TZ
from tuoguan.ticketing.v1 import ticketing_pb2 as pb
from tuoguan_common import auth
from tuoguan_common.db import Database
from tuoguan_common.grpc_server import FIELD_KEY, REASON_KEY
from tuoguan_common.outbox import utcnow

# Subsystems of the seeded catalogue (subsystems.json): one served around the
# clock, one in the hospital's office hours with a lunch break.
ALWAYS = "HIS"
OFFICE = "FIN"


def shanghai(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, tzinfo=HOSPITAL_TZ)


def instant(text: str) -> dt.datetime:
    """An RFC 3339 instant of a reply, parsed (fails the test when empty)."""
    assert text, "expected an instant, got an empty string"
    return dt.datetime.fromisoformat(text)


class Clock:
    """The api's clock: real time until a test sets it, then frozen there until moved."""

    def __init__(self) -> None:
        self.now: dt.datetime | None = None

    def __call__(self) -> dt.datetime:
        return self.now or utcnow()

    def set(self, moment: dt.datetime) -> dt.datetime:
        self.now = moment
        return moment

    def advance(self, **delta: float) -> dt.datetime:
        assert self.now is not None, "set the clock before moving it"
        self.now += dt.timedelta(**delta)
        return self.now


@dataclass(frozen=True)
class Person:
    id: str
    md: tuple
    # The rate grade in the person's token ("" for none): what their worklogs are recorded at.
    grade: str = ""


# An engineer's grade when a test names none: identity's tokens carry an engineer's grade once an admin set it.
ENGINEER_GRADE = "senior"


class FakeStaffDirectory:
    """Identity's list of engineers as the api's tests give it (ticketing.staff_directory.StaffDirectory): the
    engineers ``People`` made, and any a test adds. It remembers the tokens it was asked with; ``down`` makes it
    answer as identity does when it does not answer."""

    def __init__(self) -> None:
        self.engineers: set[str] = set()
        self.asked_with: list[str | None] = []
        self.down = False

    def is_engineer(self, account_id: str, caller_token: str | None) -> bool:
        from ticketing.exceptions import StaffDirectoryUnavailable

        self.asked_with.append(caller_token)
        if self.down:
            raise StaffDirectoryUnavailable()
        return account_id in self.engineers


@dataclass
class People:
    issuer: auth.TokenIssuer
    # Where the engineers made here are listed, as identity lists its engineers' accounts.
    directory: FakeStaffDirectory | None = None

    def person(self, *roles: str, grade: str = "") -> Person:
        subject = str(uuid.uuid4())
        if self.directory is not None and auth.ENGINEER in roles:
            self.directory.engineers.add(subject)
        return Person(subject, auth.bearer_metadata(self.issuer.issue(subject, list(roles), grade=grade)), grade)

    def clinician(self) -> Person:
        return self.person(auth.CLINICIAN)

    def engineer(self, grade: str = ENGINEER_GRADE) -> Person:
        return self.person(auth.ENGINEER, grade=grade)

    def ungraded_engineer(self) -> Person:
        """An engineer no admin has graded yet: their token carries no grade."""
        return self.person(auth.ENGINEER)

    def dispatcher(self) -> Person:
        return self.person(auth.DISPATCHER)

    def admin(self) -> Person:
        return self.person(auth.ADMIN)

    def device(self) -> Person:
        return self.person(auth.DEVICE)


def key() -> str:
    return str(uuid.uuid4())


def _trailing(error: grpc.RpcError) -> dict:
    return dict(error.trailing_metadata() or ())


@dataclass(frozen=True)
class Refusal:
    code: grpc.StatusCode
    reason: str | None
    field: str | None
    details: str = ""


def refused(call, *args, **kwargs) -> Refusal:
    """Calls an RPC that must fail; returns its status code, reason, field and message."""
    with pytest.raises(grpc.RpcError) as caught:
        call(*args, **kwargs)
    trailing = _trailing(caught.value)
    return Refusal(caught.value.code(), trailing.get(REASON_KEY), trailing.get(FIELD_KEY), caught.value.details())


def open_request(subsystem: str = ALWAYS, impact: int = pb.LEVEL_MEDIUM, urgency: int = pb.LEVEL_MEDIUM, *,
                 kind: int = pb.TICKET_KIND_INCIDENT, title: str = "挂号窗口无法打印发票",
                 idempotency_key: str | None = None, **fields) -> pb.OpenTicketRequest:
    return pb.OpenTicketRequest(kind=kind, subsystem_code=subsystem, title=title, impact=impact, urgency=urgency,
                                idempotency_key=idempotency_key or key(), **fields)


def change(ticket_id: str, action: int, **fields) -> pb.ChangeTicketRequest:
    fields.setdefault("idempotency_key", key())
    return pb.ChangeTicketRequest(ticket_id=ticket_id, action=action, **fields)


def worklog(ticket_id: str, started_at: dt.datetime, minutes: int, *, grade: str = "",
            activity: str = "onsite", note: str = "") -> pb.RecordWorklogRequest:
    """A RecordWorklogRequest; no grade unless the test names one (the service records the token's)."""
    return pb.RecordWorklogRequest(ticket_id=ticket_id, grade=grade, activity=activity,
                                   started_at=started_at.isoformat(), minutes=minutes, note=note,
                                   idempotency_key=key())


# ---- the database, read directly ---------------------------------------------------------------


def query(database: Database, sql: str, *params) -> list[dict]:
    with database.transaction() as cur:
        cur.execute(sql, params)
        return cur.fetchall()


def ticket_row(database: Database, ticket_id: str) -> dict:
    (row,) = query(database, "SELECT * FROM tickets WHERE id = %s", ticket_id)
    return row


def ticket_events(database: Database, ticket_id: str) -> list[str]:
    """The kinds of a ticket's SLA history, in order."""
    return [r["kind"] for r in query(database, "SELECT kind FROM ticket_events WHERE ticket_id = %s ORDER BY at, id",
                                     ticket_id)]


def outbox(database: Database, event_type: str, **fields) -> list[dict]:
    """The payloads of ``event_type`` in the outbox whose ``fields`` have the given values, in order."""
    rows = query(database, "SELECT payload FROM outbox WHERE event_type = %s ORDER BY id", event_type)
    return [r["payload"] for r in rows if all(r["payload"].get(k) == v for k, v in fields.items())]


# ---- Alertmanager ------------------------------------------------------------------------------


def alert(fingerprint: str, *, subsystem: str = ALWAYS, status: str = "firing", alertname: str = "HisApiDown",
          severity: str = "critical", instance: str = "his-app-1:8080",
          starts_at: str = "2025-11-04T01:12:30.123456789Z", ends_at: str = "2025-11-04T02:00:00Z") -> dict:
    """One alert as Alertmanager (v0.27) sends it in a webhook notification: ``starts_at`` its episode's
    start, ``ends_at`` its end once resolved (a firing one's is Go's zero time)."""
    return {
        "status": status,
        "labels": {"alertname": alertname, "subsystem": subsystem, "severity": severity, "instance": instance,
                   "job": subsystem.lower(), "env": "prod"},
        "annotations": {"summary": f"{alertname} on {instance}",
                        "description": f"{instance} has not answered its health check for 5 minutes.",
                        "runbook_url": "https://wiki.hospital.example/runbooks/his-api"},
        "startsAt": starts_at,
        "endsAt": ends_at if status == "resolved" else "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus.hospital.example:9090/graph?g0.expr=up%7Bjob%3D%22his%22%7D+%3D%3D+0",
        "fingerprint": fingerprint,
    }


def alertmanager(*alerts: dict, status: str | None = None) -> str:
    """A version-4 webhook body for ``alerts`` (the group's status: firing while any fires)."""
    if status is None:
        status = "firing" if any(a["status"] == "firing" for a in alerts) else "resolved"
    common = {"env": "prod"}
    return json.dumps({
        "receiver": "tuoguan-ticketing",
        "status": status,
        "alerts": list(alerts),
        "groupLabels": {"alertname": alerts[0]["labels"]["alertname"]} if alerts else {},
        "commonLabels": common,
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.hospital.example:9093",
        "version": "4",
        "groupKey": '{}/{env="prod"}:{alertname="HisApiDown"}',
        "truncatedAlerts": 0,
    })


def alerts_request(*alerts: dict, status: str | None = None) -> pb.ReceiveAlertsRequest:
    return pb.ReceiveAlertsRequest(alertmanager_payload=alertmanager(*alerts, status=status))
