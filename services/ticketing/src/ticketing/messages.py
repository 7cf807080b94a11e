"""Rows and SLA states as protobuf messages."""
from __future__ import annotations

import datetime as dt
from typing import Any

from tuoguan.ticketing.v1 import ticketing_pb2 as pb

from .domain.sla import SlaState

Row = dict[str, Any]


def rfc3339(value: dt.datetime | None) -> str:
    return value.astimezone(dt.timezone.utc).isoformat() if value else ""


def text(value: Any) -> str:
    return "" if value is None else str(value)


def enum_value(enum: Any, prefix: str, name: str | None) -> int:
    return enum.Value(f"{prefix}_{name.upper()}") if name else 0


def enum_key(enum: Any, prefix: str, number: int) -> str:
    """The lowercase name of an enum number (TICKET_KIND_INCIDENT -> incident); "" when unspecified."""
    return "" if not number else enum.Name(number).removeprefix(prefix + "_").lower()


def subsystem(row: Row) -> pb.Subsystem:
    return pb.Subsystem(
        subsystem_id=text(row["id"]), code=row["code"], name=row["name"], name_en=row["name_en"],
        category=row["category"], criticality=enum_value(pb.Criticality, "CRITICALITY", row["criticality"]),
        team=row["team"], vendor=row["vendor"], service_hours=row["service_hours"], active=row["active"],
    )


def sla(state: SlaState) -> pb.SlaStatus:
    return pb.SlaStatus(
        response_due=rfc3339(state.response_due), responded_at=rfc3339(state.responded_at),
        response_breached=state.response_breached, resolution_due=rfc3339(state.resolution_due),
        resolution_elapsed_seconds=state.resolution_elapsed_seconds,
        resolution_target_seconds=state.resolution_target_seconds,
        resolution_breached=state.resolution_breached, clock_stopped=state.clock_stopped,
        paused_by=enum_value(pb.PauseSide, "PAUSE_SIDE", state.paused_by),
        escalation_level=state.escalation_level, urgency_seconds=state.urgency_seconds,
    )


def ticket(row: Row, state: SlaState | None) -> pb.Ticket:
    message = pb.Ticket(
        ticket_id=text(row["id"]), number=row["number"], kind=enum_value(pb.TicketKind, "TICKET_KIND", row["kind"]),
        subsystem_id=text(row["subsystem_id"]), subsystem_code=row["subsystem_code"], title=row["title"],
        description=row["description"], impact=enum_value(pb.Level, "LEVEL", row["impact"]),
        urgency=enum_value(pb.Level, "LEVEL", row["urgency"]), priority=row["priority"],
        major_incident=row["major_incident"], status=enum_value(pb.TicketStatus, "TICKET_STATUS", row["status"]),
        source=enum_value(pb.TicketSource, "TICKET_SOURCE", row["source"]), requester_id=row["requester_id"],
        reported_by_id=row["reported_by_id"], assignee_id=text(row["assignee_id"]), team=row["team"],
        created_at=rfc3339(row["created_at"]), updated_at=rfc3339(row["updated_at"]),
        resolved_at=rfc3339(row["resolved_at"]), closed_at=rfc3339(row["closed_at"]),
        alert_fingerprint=text(row["alert_fingerprint"]), worklog_minutes=row["worklog_minutes"],
        paused_by=enum_value(pb.PauseSide, "PAUSE_SIDE", row["paused_by"]), resolution_note=row["resolution_note"],
    )
    if state is not None:
        message.sla.CopyFrom(sla(state))
    return message


def comment(row: Row) -> pb.Comment:
    return pb.Comment(comment_id=text(row["id"]), author_id=row["author_id"], body=row["body"],
                      created_at=rfc3339(row["created_at"]))


def worklog(row: Row) -> pb.Worklog:
    return pb.Worklog(
        worklog_id=text(row["id"]), ticket_id=text(row["ticket_id"]), engineer_id=row["engineer_id"],
        grade=row["grade"], activity=row["activity"], started_at=rfc3339(row["started_at"]), minutes=row["minutes"],
        note=row["note"], billable=row["billable"], created_at=rfc3339(row["created_at"]),
    )


def history_entry(row: Row) -> pb.HistoryEntry:
    return pb.HistoryEntry(at=rfc3339(row["at"]), kind=row["kind"], side=text(row["side"]),
                           priority=row["priority"] or 0, actor_id=row["actor_id"], note=row["note"])
