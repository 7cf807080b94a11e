"""SQL for ticketing's own tables, its outbox and its idempotency keys.

A ticket's SLA is never stored as the truth: it is computed from the
ticket's event history (``ticket_events``), the subsystem's service hours and
the working calendar whenever it is read. The worker keeps two things on the
row only to find work: ``next_check_at`` (the next threshold the clock will
cross) and the escalation level already acted on.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import logging
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from tuoguan.ticketing.v1 import events_pb2 as events
from tuoguan.ticketing.v1 import ticketing_pb2 as pb
from tuoguan_common import outbox, roles
from tuoguan_common.auth import Principal
from tuoguan_common.db import Database
from tuoguan_common.errors import AlreadyExists, PermissionDenied
from tuoguan_common.outbox import Idempotent

from . import messages
from .config import TicketingConfig
from .domain import escalation, lifecycle
from .domain.alerts import (
    CLEARANCE_KEPT,
    AlertNotice,
    alarm_cleared,
    alarm_time,
    alert_impact_urgency,
    device_alarms_prefix,
)
from .domain.calendar import ServiceHours, WorkingCalendar
from .domain.lifecycle import Action, Status, TicketRefused
from .domain.priority import Level, Priority
from .domain.sla import EventKind, Side, SlaState, TicketEvent, compute_sla
from .domain.worklog import (
    Worklog,
    billable_on_close,
    refuse_before_opening,
    refuse_not_on_ticket,
    refuse_overlap,
    void_on_close,
)
from .exceptions import not_found, refused

Row = dict[str, Any]

log = logging.getLogger(__name__)

TICKET_VIEW = """
SELECT t.*, s.code AS subsystem_code, s.service_hours
FROM tickets t JOIN subsystems s ON s.id = t.subsystem_id
"""
OPEN = ("new", "assigned", "in_progress", "pending")
# What an alert or a device alarm did (tuoguan_ticketing_alert_notifications_total's outcomes).
ALERT_OUTCOMES = ("opened", "updated", "resolved", "ignored", "unknown_subsystem")
UNKNOWN_SUBSYSTEM = "unknown_subsystem"
STAFF = frozenset({roles.ENGINEER, roles.DISPATCHER, roles.ADMIN, roles.SERVICE})
MAX_LISTED = 500
# The queue and the board rate every open ticket (up to this many) before ordering them by urgency.
MAX_RATED = 5000
# The actor of the worker's own changes (the escalation's priority raise, auto-close).
ESCALATOR = "service:ticketing"
# Migration 0002: one engineer's worklogs may not overlap (engineer_id, [started_at, ended_at)); 0007: those
# not void (a ticket closed unresolved voids its worklogs).
WORKLOG_OVERLAP_CONSTRAINT = "worklogs_no_overlap"
# The first key of the two-key advisory locks that serialise one engineer's worklogs (a space of
# its own: the alerts' one-key locks never meet these).
WORKLOG_LOCK_SPACE = 4101
# The first key of the two-key advisory locks that serialise one device's alarms and clearances.
DEVICE_ALARM_LOCK_SPACE = 4102


@functools.lru_cache(maxsize=256)
def service_hours(text: str) -> ServiceHours:
    return ServiceHours.parse(text)


@dataclass(frozen=True)
class NewTicket:
    kind: str
    subsystem_code: str
    title: str
    description: str
    impact: Level
    urgency: Level
    major_incident: bool
    source: str
    requester_id: str
    reported_by_id: str
    alert_fingerprint: str | None = None


def _event(row: Row) -> TicketEvent:
    kind = EventKind(row["kind"])
    return TicketEvent(at=row["at"], kind=kind, side=Side(row["side"]) if row["side"] else None,
                       priority=Priority(row["priority"]) if row["priority"] else None,
                       # The escalation's own priority raise keeps the SLA targets the ticket is measured against.
                       escalation=row["escalation"])


class Store:
    def __init__(self, db: Database, config: TicketingConfig):
        self.db = db
        self.config = config
        # (summary of the overrides, the calendar read with it): one tuple, so that threads replacing it
        # at once never leave one's calendar beside another's summary.
        self._calendar: tuple[tuple, WorkingCalendar] | None = None

    # ---- the calendar and the SLA ---------------------------------------------------------------

    @staticmethod
    def _read_calendar(cur: psycopg.Cursor) -> WorkingCalendar:
        cur.execute("SELECT day, working FROM calendar_overrides")
        rows = cur.fetchall()
        return WorkingCalendar(extra_holidays=[r["day"] for r in rows if not r["working"]],
                               extra_workdays=[r["day"] for r in rows if r["working"]])

    def calendar(self, cur: psycopg.Cursor) -> WorkingCalendar:
        """The working calendar with the overrides committed now, through the caller's own transaction (a
        second connection per call would deadlock a busy pool). A summary of the overrides (how many, and a
        sum of their hashes) is read on every call and the days only when it changed:
        a replica that kept its copy for a minute after another one took a change put a ticket's next check
        back where the old calendar had it, days late across a holiday. Read through a cursor of its own on
        the caller's connection: the caller's cursor may hold rows it has not fetched yet."""
        with cur.connection.cursor() as own:
            own.execute("SELECT count(*) AS days, coalesce(sum(hashtextextended(day::text || working::text, 0)), "
                        "0) AS hashes FROM calendar_overrides")
            summary = own.fetchone()
            stamp = (summary["days"], summary["hashes"])
            kept = self._calendar
            if kept is None or kept[0] != stamp:
                kept = self._calendar = (stamp, self._read_calendar(own))
        return kept[1]

    def calendar_days(self, year: int) -> list[Row]:
        with self.db.transaction() as cur:
            cur.execute("SELECT * FROM calendar_overrides WHERE day BETWEEN %s AND %s ORDER BY day",
                        (dt.date(year, 1, 1), dt.date(year, 12, 31)))
            return cur.fetchall()

    def put_calendar_day(self, day: dt.date, working: bool, note: str, *, remove: bool,
                         now: dt.datetime) -> Row | None:
        """Sets (or removes) one day's override; every ticket's SLA is rated with it from now on."""
        with self.db.transaction() as cur:
            if remove:
                cur.execute("DELETE FROM calendar_overrides WHERE day = %s RETURNING *", (day,))
            else:
                cur.execute("INSERT INTO calendar_overrides (day, working, note) VALUES (%s, %s, %s) "
                            "ON CONFLICT (day) DO UPDATE SET working = EXCLUDED.working, note = EXCLUDED.note "
                            "RETURNING *", (day, working, note))
            row = cur.fetchone()
            if row is not None:
                self._recheck_open(cur, now)
                self._move_auto_closes(cur, self._read_calendar(cur))
        return row

    def _recheck_open(self, cur: psycopg.Cursor, now: dt.datetime, subsystem_id: str | None = None) -> None:
        """The worker looks at these open tickets again at once: next_check_at was worked out with the old
        hours or calendar, and a threshold the change brought forward would otherwise be acted on only at
        that old instant (days late across a weekend or a holiday). Those with no next look too: a ticket
        whose clock a hospital's or vendor's pause stopped has none, and the change may have put the service
        time counted before the pause past a level (its breach never announced, its escalation never made,
        until someone resumed it)."""
        # Locked in id order (as receive_alerts locks a notification's tickets): an UPDATE alone locks
        # them in the order it finds them, and two such orders deadlock.
        cur.execute("UPDATE tickets SET next_check_at = %(now)s WHERE id IN (SELECT id FROM tickets "
                    "WHERE (next_check_at IS NULL OR next_check_at > %(now)s) "
                    "AND status IN ('new', 'assigned', 'in_progress', 'pending') "
                    "AND (%(subsystem)s::uuid IS NULL OR subsystem_id = %(subsystem)s::uuid) ORDER BY id FOR UPDATE)",
                    {"now": now, "subsystem": subsystem_id})

    def _move_auto_closes(self, cur: psycopg.Cursor, calendar: WorkingCalendar) -> None:
        """Unconfirmed resolutions close after the hospital's working hours, which a changed day moves."""
        cur.execute("SELECT id, resolved_at, auto_close_at FROM tickets WHERE status = 'resolved' "
                    "AND auto_close_at IS NOT NULL ORDER BY id")
        for row in cur.fetchall():
            moved = lifecycle.auto_close_at(row["resolved_at"], lifecycle.HOSPITAL_HOURS, calendar,
                                            self.config.auto_close_working_hours)
            if moved != row["auto_close_at"]:
                # Only if it is still the same resolution: a confirmation or a reopening since wins.
                cur.execute("UPDATE tickets SET auto_close_at = %s WHERE id = %s AND status = 'resolved' "
                            "AND resolved_at = %s", (moved, row["id"], row["resolved_at"]))

    def sla(self, calendar: WorkingCalendar, row: Row, history: Sequence[Row], now: dt.datetime) -> SlaState:
        return compute_sla([_event(e) for e in history], service_hours(row["service_hours"]), calendar,
                           self.config.policy, now)

    def _history(self, cur: psycopg.Cursor, ticket_ids: Iterable[str]) -> dict[str, list[Row]]:
        ids = [str(i) for i in ticket_ids]
        found: dict[str, list[Row]] = {i: [] for i in ids}
        if ids:
            cur.execute("SELECT * FROM ticket_events WHERE ticket_id = ANY(%s::uuid[]) ORDER BY ticket_id, at, id",
                        (ids,))
            for row in cur.fetchall():
                found[str(row["ticket_id"])].append(row)
        return found

    def _view(self, cur: psycopg.Cursor, ticket_id: str, *, lock: bool = False) -> Row | None:
        cur.execute(TICKET_VIEW + "WHERE t.id = %s" + (" FOR UPDATE OF t" if lock else ""), (ticket_id,))
        return cur.fetchone()

    def _record(self, cur: psycopg.Cursor, ticket_id: str, event: TicketEvent, actor_id: str, note: str = "", *,
                assignee_id: str | None = None) -> None:
        """One event of the ticket's history; an ASSIGNED one names the engineer it assigned the ticket to
        (``assignee_id``, migration 0006; None for a team alone and the hand-off to the escalation team).

        Never dated before the ticket's latest event: the SLA takes the history in time order, and each api
        replica and the worker keep their own clock. A RESUME made on a replica a few milliseconds behind the
        one that made the PAUSE came before it in the history, so the ticket was in progress with its clock
        stopped for good (never escalated); a re-firing after a resolution the same way left it open and read
        as resolved. The caller holds the ticket's row, so its events are written one at a time."""
        cur.execute(
            "INSERT INTO ticket_events (ticket_id, at, kind, side, priority, escalation, actor_id, note, assignee_id) "
            "SELECT %(t)s, GREATEST(%(at)s, (SELECT max(at) FROM ticket_events WHERE ticket_id = %(t)s)), %(kind)s, "
            "%(side)s, %(priority)s, %(escalation)s, %(actor)s, %(note)s, %(assignee)s",
            {"t": ticket_id, "at": event.at, "kind": str(event.kind), "side": str(event.side) if event.side else None,
             "priority": int(event.priority) if event.priority else None, "escalation": event.escalation,
             "actor": actor_id, "note": note, "assignee": assignee_id if event.kind == EventKind.ASSIGNED else None})

    def _rate(self, cur: psycopg.Cursor, ticket_id: str, now: dt.datetime) -> tuple[Row, SlaState]:
        """The ticket as it now stands, its SLA, and the row's bookkeeping brought up to date."""
        row = self._view(cur, ticket_id)
        history = self._history(cur, [ticket_id])[ticket_id]
        state = self.sla(self.calendar(cur), row, history, now)
        next_check = escalation.next_check_at(state, now, response_breach_reported=row["response_breached"],
                                              level_reached=row["escalation_level"]) \
            if row["status"] in OPEN else None
        cur.execute("UPDATE tickets SET next_check_at = %s WHERE id = %s", (next_check, ticket_id))
        return row, state

    # ---- the subsystem catalogue ----------------------------------------------------------------

    def list_subsystems(self, include_inactive: bool) -> list[Row]:
        with self.db.transaction() as cur:
            cur.execute("SELECT * FROM subsystems" + ("" if include_inactive else " WHERE active") + " ORDER BY code")
            return cur.fetchall()

    def put_subsystem(self, idem: Idempotent, fields: dict[str, Any], now: dt.datetime) -> pb.PutSubsystemResponse:
        def write(cur: psycopg.Cursor) -> pb.PutSubsystemResponse:
            try:
                if fields.get("id"):
                    cur.execute(
                        "UPDATE subsystems SET code = %(code)s, name = %(name)s, name_en = %(name_en)s, "
                        "category = %(category)s, criticality = %(criticality)s, team = %(team)s, vendor = %(vendor)s, "
                        "service_hours = %(service_hours)s, active = %(active)s, updated_at = now() "
                        "WHERE id = %(id)s RETURNING *", fields)
                else:
                    cur.execute(
                        "INSERT INTO subsystems (code, name, name_en, category, criticality, team, vendor, "
                        "service_hours, active) VALUES (%(code)s, %(name)s, %(name_en)s, %(category)s, "
                        "%(criticality)s, %(team)s, %(vendor)s, %(service_hours)s, %(active)s) RETURNING *", fields)
            except psycopg.errors.UniqueViolation:
                raise AlreadyExists("another subsystem has this code", reason="subsystem_code_taken") from None
            row = cur.fetchone()
            if row is None:
                raise not_found("subsystem")
            if fields.get("id"):
                # Its tickets are rated on the new service hours from now on.
                self._recheck_open(cur, now, str(row["id"]))
            return pb.PutSubsystemResponse(subsystem=messages.subsystem(row))

        return idem.run(self.db, write)

    def load_catalogue(self, entries: Sequence[dict[str, Any]]) -> int:
        """The seed: inserts or refreshes subsystems by code."""
        with self.db.transaction() as cur:
            for e in entries:
                cur.execute(
                    "INSERT INTO subsystems (code, name, name_en, category, criticality, team, vendor, service_hours) "
                    "VALUES (%(code)s, %(name)s, %(name_en)s, %(category)s, %(criticality)s, %(team)s, %(vendor)s, "
                    "%(service_hours)s) ON CONFLICT (code) DO UPDATE SET name = EXCLUDED.name, "
                    "name_en = EXCLUDED.name_en, category = EXCLUDED.category, criticality = EXCLUDED.criticality, "
                    "team = EXCLUDED.team, vendor = EXCLUDED.vendor, service_hours = EXCLUDED.service_hours", e)
        return len(entries)

    # ---- opening and reading tickets ------------------------------------------------------------

    def _insert_ticket(self, cur: psycopg.Cursor, new: NewTicket, now: dt.datetime) -> str | None:
        cur.execute("SELECT id, team, criticality, active FROM subsystems WHERE code = %s", (new.subsystem_code,))
        subsystem = cur.fetchone()
        if subsystem is None or not subsystem["active"]:
            return None
        priority = self.config.matrix.priority(new.impact, new.urgency, major_incident=new.major_incident)
        ticket_id = str(uuid.uuid4())
        cur.execute("SELECT nextval('ticket_numbers') AS n")
        number = f"T{now.astimezone(dt.timezone(dt.timedelta(hours=8))):%Y%m%d}-{cur.fetchone()['n']:06d}"
        cur.execute(
            "INSERT INTO tickets (id, number, kind, subsystem_id, title, description, impact, urgency, priority, "
            "major_incident, status, source, requester_id, reported_by_id, team, alert_fingerprint, created_at, "
            "updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, 'new', %s, %s, %s, %s, %s, %s, %s)",
            (ticket_id, number, new.kind, subsystem["id"], new.title, new.description, str(new.impact),
             str(new.urgency), int(priority), new.major_incident, new.source, new.requester_id, new.reported_by_id,
             subsystem["team"], new.alert_fingerprint, now, now))
        self._record(cur, ticket_id, TicketEvent(at=now, kind=EventKind.OPENED, priority=priority), new.reported_by_id)
        outbox.append(cur, events.TicketOpened(
            ticket_id=ticket_id, number=number, subsystem_code=new.subsystem_code, kind=new.kind,
            priority=f"P{int(priority)}", major_incident=new.major_incident, source=new.source,
            requester_id=new.requester_id, opened_at=messages.rfc3339(now)))
        return ticket_id

    def open_ticket(self, idem: Idempotent, new: NewTicket, now: dt.datetime) -> pb.OpenTicketResponse:
        def write(cur: psycopg.Cursor) -> pb.OpenTicketResponse:
            ticket_id = self._insert_ticket(cur, new, now)
            if ticket_id is None:
                raise not_found("subsystem")
            row, state = self._rate(cur, ticket_id, now)
            return pb.OpenTicketResponse(ticket=messages.ticket(row, state))

        return idem.run(self.db, write)

    def get_ticket(self, ticket_id: str, now: dt.datetime
                   ) -> tuple[Row, SlaState, list[Row], list[Row], list[Row]] | None:
        with self.db.transaction() as cur:
            row = self._view(cur, ticket_id)
            if row is None:
                return None
            history = self._history(cur, [ticket_id])[ticket_id]
            cur.execute("SELECT * FROM comments WHERE ticket_id = %s ORDER BY created_at", (ticket_id,))
            comments = cur.fetchall()
            cur.execute("SELECT * FROM worklogs WHERE ticket_id = %s ORDER BY started_at", (ticket_id,))
            worklogs = cur.fetchall()
            return row, self.sla(self.calendar(cur), row, history, now), comments, worklogs, history

    def list_tickets(self, view: str, subject: str, *, open_only: bool, subsystem_code: str | None, limit: int,
                     now: dt.datetime) -> list[tuple[Row, SlaState]]:
        where, params = [], []
        if view == "mine":
            where.append("t.requester_id = %s")
            params.append(subject)
        elif view == "queue":
            where.append("t.assignee_id = %s")
            params.append(subject)
        if open_only or view in ("queue", "board"):
            where.append("t.status <> 'closed'")
        if subsystem_code:
            where.append("s.code = %s")
            params.append(subsystem_code)
        by_urgency = view in ("queue", "board")
        limit = min(limit or MAX_LISTED, MAX_LISTED)
        # Urgency is computed, not stored: the queue and the board rate the open tickets first and cut after
        # ordering them, or the most urgent (the oldest, as a rule) would fall off the end.
        order = " ORDER BY t.created_at" if by_urgency else " ORDER BY t.created_at DESC"
        sql = TICKET_VIEW + ("WHERE " + " AND ".join(where) if where else "") + order + " LIMIT %s"
        with self.db.transaction() as cur:
            cur.execute(sql, (*params, MAX_RATED if by_urgency else limit))
            rows = cur.fetchall()
            history = self._history(cur, [r["id"] for r in rows])
            calendar = self.calendar(cur)
        rated = [(r, self.sla(calendar, r, history[str(r["id"])], now)) for r in rows]
        if by_urgency:
            # The engineer's order: the ticket closest to (or furthest past) its breach first.
            rated.sort(key=lambda pair: (not pair[1].running, pair[1].urgency_seconds))
        return rated[:limit]

    # ---- the lifecycle --------------------------------------------------------------------------

    def answered(self, idem: Idempotent) -> bool:
        """Whether the write's key already holds an answer (the write's ``idem.run`` gives it again, or refuses
        a key used for another request): a retry that needs no checks from elsewhere. A key claimed by a
        request still running is no answer yet."""
        return self._earlier(idem) is not None

    def first_answer(self, idem: Idempotent) -> Any:
        """The answer the write's key already holds, given again (``IdempotencyConflict`` when the key was used
        for another request), or None while it holds none. Nothing is written."""
        earlier = self._earlier(idem)
        if earlier is None:
            return None
        if earlier.request_hash != idem.fingerprint:
            raise outbox.IdempotencyConflict(idem.key)
        idem.replayed = True
        return idem.response_type.FromString(earlier.response)

    def _earlier(self, idem: Idempotent) -> outbox.EarlierRequest | None:
        with self.db.transaction() as cur:
            earlier = outbox.earlier_requests(cur, idem.scope, [(idem.owner, idem.key)]).get((idem.owner, idem.key))
        return earlier if earlier is not None and earlier.response is not None else None

    def change_ticket(self, idem: Idempotent, ticket_id: str, actor: Principal, action: Action, *,
                      assignee_id: str | None, team: str | None, side: Side | None, note: str,
                      now: dt.datetime) -> pb.ChangeTicketResponse:
        def write(cur: psycopg.Cursor) -> pb.ChangeTicketResponse:
            row = self._view(cur, ticket_id, lock=True)
            if row is None:
                raise not_found("ticket")
            try:
                lifecycle.check_actor(action, frozenset(actor.roles), is_requester=row["requester_id"] == actor.subject,
                                      is_assignee=row["assignee_id"] == actor.subject)
                if action == Action.ASSIGN and not (set(actor.roles) & {roles.DISPATCHER, roles.ADMIN}):
                    if assignee_id != actor.subject:
                        raise TicketRefused("role_not_allowed", "engineers may take a ticket for themselves only")
                    if row["assignee_id"] not in (None, actor.subject):
                        raise TicketRefused("role_not_allowed",
                                            "the ticket is another engineer's: a dispatcher reassigns it")
                    if row["assignee_id"] is None:
                        lifecycle.refuse_taking_back(
                            escalation_level=row["escalation_level"],
                            was_assigned=self._was_assigned(cur, ticket_id, actor.subject))
                if action in (Action.CONFIRM, Action.CLOSE):
                    lifecycle.refuse_self_confirmation(action, Status(row["status"]), bills_actor=self._bills_work_of(
                        cur, row, actor.subject))
                status = lifecycle.next_status(Status(row["status"]), action, has_worklog=row["worklog_minutes"] > 0,
                                               require_worklog=self.config.require_worklog,
                                               started=action != Action.REOPEN or self._started(cur, ticket_id),
                                               assigned=row["assignee_id"] is not None)
            except TicketRefused as exc:
                raise refused(exc) from None
            self._apply(cur, row, actor.subject, action, status, assignee_id=assignee_id, team=team, side=side,
                        note=note, now=now)
            row, state = self._rate(cur, ticket_id, now)
            self._announce(cur, row, state, action, now)
            return pb.ChangeTicketResponse(ticket=messages.ticket(row, state))

        return idem.run(self.db, write)

    @staticmethod
    def _bills_work_of(cur: psycopg.Cursor, row: Row, person_id: str) -> bool:
        """Whether closing the ticket's resolution bills ``person_id``'s work (``lifecycle.bills_work_of``)."""
        cur.execute("SELECT DISTINCT engineer_id FROM worklogs WHERE ticket_id = %s", (row["id"],))
        return lifecycle.bills_work_of(person_id, assignee_id=row["assignee_id"],
                                       worklog_engineers=[r["engineer_id"] for r in cur.fetchall()])

    def _closes_by_itself(self, cur: psycopg.Cursor, row: Row) -> bool:
        """Whether the ticket's resolution may close by itself: not when its requester worked it."""
        return lifecycle.closes_by_itself(requester_worked=self._bills_work_of(cur, row, row["requester_id"]))

    @staticmethod
    def _started(cur: psycopg.Cursor, ticket_id: str) -> bool:
        """Whether its engineer started work on the ticket: a STARTED since its last assignment (one
        engineer's start is not the next one's, after an escalation took it off the first)."""
        cur.execute("SELECT EXISTS (SELECT 1 FROM ticket_events s WHERE s.ticket_id = %(t)s AND s.kind = %(started)s "
                    "AND s.id > COALESCE((SELECT max(a.id) FROM ticket_events a WHERE a.ticket_id = %(t)s "
                    "AND a.kind = %(assigned)s), 0)) AS started",
                    {"t": ticket_id, "started": str(EventKind.STARTED), "assigned": str(EventKind.ASSIGNED)})
        return cur.fetchone()["started"]

    def _apply(self, cur: psycopg.Cursor, row: Row, actor_id: str, action: Action, status: Status, *,
               assignee_id: str | None, team: str | None, side: Side | None, note: str, now: dt.datetime) -> None:
        changes: dict[str, Any] = {"status": str(status), "updated_at": now}
        if action == Action.ASSIGN:
            changes["assignee_id"] = assignee_id
            if team:
                changes["team"] = team
        elif action == Action.PAUSE:
            changes["paused_by"] = str(side)
        elif action in (Action.RESUME, Action.RESOLVE):
            changes["paused_by"] = None
        if action == Action.RESOLVE:
            # Its requester's own work waits for a dispatcher's close (lifecycle.closes_by_itself).
            changes.update(resolved_at=now, resolution_note=note, auto_close_at=lifecycle.auto_close_at(
                now, lifecycle.HOSPITAL_HOURS, self.calendar(cur), self.config.auto_close_working_hours)
                if self._closes_by_itself(cur, row) else None)
        elif action == Action.REOPEN:
            changes.update(resolved_at=None, auto_close_at=None)
        if status == Status.CLOSED:
            changes.update(closed_at=now, auto_close_at=None, next_check_at=None)
        assignments = ", ".join(f"{k} = %({k})s" for k in changes)
        cur.execute(f"UPDATE tickets SET {assignments} WHERE id = %(id)s", {**changes, "id": row["id"]})
        event = lifecycle.event_for(action, now, side=side)
        if event is not None:
            self._record(cur, str(row["id"]), event, actor_id, note, assignee_id=assignee_id)

    def _announce(self, cur: psycopg.Cursor, row: Row, state: SlaState, action: Action, now: dt.datetime) -> None:
        """The events a change tells the other services."""
        ticket_id, at = str(row["id"]), messages.rfc3339(now)
        self._report_response_breach(cur, row, state, now)
        self._report_late_resolution(cur, row, state, now)
        if action == Action.ASSIGN:
            outbox.append(cur, events.TicketAssigned(ticket_id=ticket_id, assignee_id=row["assignee_id"] or "",
                                                     team=row["team"], assigned_at=at))
        elif action == Action.PAUSE:
            outbox.append(cur, events.TicketPaused(ticket_id=ticket_id, side=row["paused_by"] or "",
                                                   clock_stopped=state.clock_stopped, paused_at=at))
        elif action == Action.RESUME:
            outbox.append(cur, events.TicketResumed(ticket_id=ticket_id, resumed_at=at))
        elif action == Action.RESOLVE:
            outbox.append(cur, events.TicketResolved(
                ticket_id=ticket_id, subsystem_code=row["subsystem_code"], priority=f"P{row['priority']}",
                assignee_id=row["assignee_id"] or "", resolved_at=at,
                resolution_elapsed_seconds=state.resolution_elapsed_seconds,
                resolution_breached=state.resolution_breached, response_breached=state.response_breached,
                sla_priority=f"P{int(state.sla_priority)}"))
        elif action == Action.REOPEN:
            outbox.append(cur, events.TicketReopened(ticket_id=ticket_id, reopened_at=at))
        if row["status"] == "closed":
            how = {Action.CONFIRM: "confirmed", Action.AUTO_CLOSE: "auto"}.get(action, "closed")
            resolved = row["resolved_at"] is not None
            billable = self._make_billable(cur, row, now) if billable_on_close(resolved) else 0
            if void_on_close(resolved):
                # Never billed: they no longer hold their engineers' time (migration 0007).
                cur.execute("UPDATE worklogs SET void = true WHERE ticket_id = %s AND NOT billable", (row["id"],))
            outbox.append(cur, events.TicketClosed(
                ticket_id=ticket_id, subsystem_code=row["subsystem_code"], priority=f"P{row['priority']}", how=how,
                closed_at=at, resolution_breached=state.resolution_breached,
                response_breached=state.response_breached,
                resolution_elapsed_seconds=state.resolution_elapsed_seconds, billable_minutes=billable,
                sla_priority=f"P{int(state.sla_priority)}"))

    def _report_response_breach(self, cur: psycopg.Cursor, row: Row, state: SlaState, now: dt.datetime) -> bool:
        """Announces a breached response once per ticket, when first seen: by the worker at the due instant, or
        by the change that responded late. An engineer who starts and resolves between two of the worker's looks
        (seconds apart) would otherwise leave a late response never announced: the worker looks at open tickets
        only. True when it announced."""
        if not state.response_breached or row["response_breached"]:
            return False
        self._report_breach(cur, row, "response", state.response_due, row["priority"], now)
        return True

    def _report_late_resolution(self, cur: psycopg.Cursor, row: Row, state: SlaState, now: dt.datetime) -> None:
        """Announces a breached resolution once, for a ticket resolved (or closed) after its due instant before
        the timer saw the breach: the timer looks at open tickets only. An open ticket's breach is the timer's
        to announce, with the priority raise and the escalation that go with it."""
        if row["status"] in OPEN or not state.resolution_breached or row["resolution_breached"]:
            return
        self._report_breach(cur, row, "resolution", state.resolution_due or now, row["priority"], now)

    @staticmethod
    def _report_breach(cur: psycopg.Cursor, row: Row, target: str, due_at: dt.datetime, priority: int,
                       now: dt.datetime) -> None:
        """SlaBreached for ``target`` (response or resolution), and the ticket's flag that it was announced:
        each target is announced once per ticket."""
        outbox.append(cur, events.SlaBreached(
            ticket_id=str(row["id"]), subsystem_code=row["subsystem_code"], priority=f"P{priority}", target=target,
            due_at=messages.rfc3339(due_at), detected_at=messages.rfc3339(now)))
        flag = {"response": "response_breached", "resolution": "resolution_breached"}[target]
        cur.execute(f"UPDATE tickets SET {flag} = true WHERE id = %s", (row["id"],))

    def _make_billable(self, cur: psycopg.Cursor, row: Row, now: dt.datetime) -> int:
        cur.execute("UPDATE worklogs SET billable = true WHERE ticket_id = %s AND NOT billable RETURNING *",
                    (row["id"],))
        logs = cur.fetchall()
        for log in logs:
            outbox.append(cur, events.WorklogBillable(
                worklog_id=str(log["id"]), ticket_id=str(row["id"]), engineer_id=log["engineer_id"],
                grade=log["grade"], minutes=log["minutes"], started_at=messages.rfc3339(log["started_at"]),
                billable_at=messages.rfc3339(now)))
        return sum(log["minutes"] for log in logs)

    # ---- comments and worklogs ------------------------------------------------------------------

    def _may_see(self, row: Row, actor: Principal) -> bool:
        return (row["requester_id"] == actor.subject or row["assignee_id"] == actor.subject
                or bool(STAFF & set(actor.roles)))

    def check_visible(self, row: Row, actor: Principal) -> None:
        if not self._may_see(row, actor):
            # The O&M team (engineers, dispatchers, admins) sees every ticket: it picks up work from the board.
            raise PermissionDenied("only the ticket's requester and the O&M team (engineers, dispatchers, admins) "
                                   "see it",
                                   reason="not_your_ticket")

    def add_comment(self, idem: Idempotent, ticket_id: str, actor: Principal, body: str,
                    now: dt.datetime) -> pb.AddCommentResponse:
        def write(cur: psycopg.Cursor) -> pb.AddCommentResponse:
            row = self._view(cur, ticket_id)
            if row is None:
                raise not_found("ticket")
            self.check_visible(row, actor)
            cur.execute("INSERT INTO comments (ticket_id, author_id, body, created_at) VALUES (%s, %s, %s, %s) "
                        "RETURNING *", (ticket_id, actor.subject, body, now))
            comment = cur.fetchone()
            cur.execute("UPDATE tickets SET updated_at = %s WHERE id = %s", (now, ticket_id))
            return pb.AddCommentResponse(comment=messages.comment(comment))

        return idem.run(self.db, write)

    def record_worklog(self, idem: Idempotent, ticket_id: str, actor: Principal, log: Worklog,
                       now: dt.datetime) -> pb.RecordWorklogResponse:
        def write(cur: psycopg.Cursor) -> pb.RecordWorklogResponse:
            row = self._view(cur, ticket_id, lock=True)
            if row is None:
                raise not_found("ticket")
            dispatcher_or_admin = bool({roles.DISPATCHER, roles.ADMIN} & set(actor.roles))
            refuse_not_on_ticket(actor.subject, assignee_id=row["assignee_id"],
                                 was_assigned=self._was_assigned(cur, ticket_id, actor.subject),
                                 dispatcher_or_admin=dispatcher_or_admin)
            if row["status"] == "closed":
                raise refused(TicketRefused("ticket_closed", "a closed ticket takes no more worklogs"))
            # Time before the ticket existed is no work on it, and would be billed when it closes.
            refuse_before_opening(log.started_at, row["created_at"])
            worklog_id = str(uuid.uuid4())
            saved = self._insert_worklog(cur, worklog_id, ticket_id, log, now)
            # The requester's own time on a resolution: it no longer closes by itself (lifecycle.closes_by_itself).
            cur.execute("UPDATE tickets SET worklog_minutes = worklog_minutes + %s, updated_at = %s, "
                        "auto_close_at = CASE WHEN requester_id = %s THEN NULL ELSE auto_close_at END WHERE id = %s",
                        (log.minutes, now, log.engineer_id, ticket_id))
            outbox.append(cur, events.WorklogRecorded(
                worklog_id=worklog_id, ticket_id=ticket_id, engineer_id=log.engineer_id, grade=str(log.grade),
                activity=str(log.activity), started_at=messages.rfc3339(log.started_at), minutes=log.minutes))
            return pb.RecordWorklogResponse(worklog=messages.worklog(saved))

        return idem.run(self.db, write)

    @staticmethod
    def _was_assigned(cur: psycopg.Cursor, ticket_id: str, engineer_id: str) -> bool:
        """Whether the ticket was ever assigned to the engineer: an ASSIGNED event naming them (migration 0006).
        ASSIGNED events recorded before it name nobody; for those the history still shows an engineer on the
        ticket by what only its engineer does: an ASSIGNED (an engineer takes a ticket only for themself),
        STARTED, PAUSED, RESUMED or RESOLVED event they made (a dispatcher or admin, who logs time on any
        ticket, aside), or a worklog of theirs on it."""
        cur.execute(
            "SELECT EXISTS (SELECT 1 FROM ticket_events WHERE ticket_id = %(t)s AND kind = 'assigned' "
            "AND assignee_id = %(e)s) OR EXISTS (SELECT 1 FROM ticket_events WHERE ticket_id = %(t)s "
            "AND actor_id = %(e)s AND kind IN ('assigned', 'started', 'paused', 'resumed', 'resolved')) "
            "OR EXISTS (SELECT 1 FROM worklogs WHERE ticket_id = %(t)s AND engineer_id = %(e)s) AS was",
            {"t": ticket_id, "e": engineer_id})
        return cur.fetchone()["was"]

    @staticmethod
    def _insert_worklog(cur: psycopg.Cursor, worklog_id: str, ticket_id: str, log: Worklog,
                        now: dt.datetime) -> Row:
        """The worklog's row, or ``WorklogOverlaps`` naming the engineer's worklog it overlaps.

        The database decides (the exclusion constraint ``worklogs_no_overlap``): the one place the
        rule holds against every writer at once, and the one place its violation becomes the domain's
        refusal. The engineer's advisory lock queues their concurrent worklogs, so the second finds
        the first committed and is refused at once: two inserts racing without it can each find the
        other's uncommitted row and wait for each other until PostgreSQL's deadlock detector aborts
        one (INTERNAL, a second later)."""
        cur.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (WORKLOG_LOCK_SPACE, log.engineer_id))
        try:
            # A savepoint: after the violation the transaction still reads what was overlapped.
            with cur.connection.transaction():
                cur.execute(
                    "INSERT INTO worklogs (id, ticket_id, engineer_id, grade, activity, started_at, minutes, "
                    "note, created_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING *",
                    (worklog_id, ticket_id, log.engineer_id, str(log.grade), str(log.activity), log.started_at,
                     log.minutes, log.note, now))
                return cur.fetchone()
        except psycopg.errors.ExclusionViolation as exc:
            if exc.diag.constraint_name != WORKLOG_OVERLAP_CONSTRAINT:
                raise
        cur.execute("SELECT started_at, ended_at FROM worklogs WHERE engineer_id = %s AND NOT void "
                    "AND tstzrange(started_at, ended_at) && tstzrange(%s, %s)",
                    (log.engineer_id, log.started_at, log.ended_at))
        refuse_overlap(log, [(r["started_at"], r["ended_at"]) for r in cur.fetchall()])
        # Not reached: the row the constraint met is committed (it waited for it), so the read finds it.
        raise AssertionError("worklogs_no_overlap refused a worklog that overlaps nothing")

    def worklogs(self, ticket_id: str) -> tuple[Row, list[Row]] | None:
        with self.db.transaction() as cur:
            row = self._view(cur, ticket_id)
            if row is None:
                return None
            cur.execute("SELECT * FROM worklogs WHERE ticket_id = %s ORDER BY started_at", (ticket_id,))
            return row, cur.fetchall()

    # ---- machine-opened tickets -----------------------------------------------------------------

    def receive_alerts(self, notices: Sequence[AlertNotice], reporter_id: str, source: str,
                       now: dt.datetime) -> list[tuple[str, str]]:
        """One Alertmanager notification in one transaction: all of its alerts applied, or none (Alertmanager
        sends it again), never the first half counted twice on the retry. An outcome per alert, in order:
        ("opened" | "updated" | "resolved" | "ignored" | "unknown_subsystem", ticket id)."""
        with self.db.transaction() as cur:
            # Every alert's lock first, in one order: two notifications naming the same alerts in different
            # orders (Alertmanager's HA pair) take turns instead of deadlocking.
            cur.execute("SELECT DISTINCT hashtext(f) AS k FROM unnest(%s::text[]) AS f ORDER BY k",
                        ([n.fingerprint for n in notices],))
            for key in [r["k"] for r in cur.fetchall()]:
                cur.execute("SELECT pg_advisory_xact_lock(%s)", (key,))
            # Their tickets' rows too, in id order, as every statement that locks many tickets takes them
            # (_recheck_open, _move_auto_closes): taken alert by alert, in the notification's order, they
            # deadlocked with a calendar or subsystem change rechecking every open ticket.
            cur.execute("SELECT id FROM tickets WHERE alert_fingerprint = ANY(%s) AND status <> 'closed' "
                        "ORDER BY id FOR UPDATE", ([n.fingerprint for n in notices],))
            return [self.receive_alert_in(cur, notice, reporter_id, source, now) for notice in notices]

    def receive_alert_in(self, cur: psycopg.Cursor, notice: AlertNotice, reporter_id: str, source: str,
                         now: dt.datetime) -> tuple[str, str]:
        """One alert inside the caller's transaction (the worker's, with its inbox).

        The ticket keeps the latest start it was told of (``alert_raised_at``): a resolution that started
        before it is an earlier episode's, delivered late (Alertmanager's HA pair, its retries): ignored, the
        newer one still fires. A firing after the resolution always reopens, even one with the ended
        episode's start: a Prometheus that could not reach Alertmanager past the alert's end, or restarted,
        sends the alert so once Alertmanager has resolved it, and a late copy of the firing looks the same;
        a spurious reopening is seen and closed, an ignored firing is an outage nobody works on. Times as
        ``alerts.alarm_time`` keeps them (a sender's clock far ahead cannot silence the alert)."""
        # The lock serialises the notifications of one alert across api replicas and threads.
        cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (notice.fingerprint,))
        cur.execute(TICKET_VIEW + "WHERE t.alert_fingerprint = %s AND t.status <> 'closed' FOR UPDATE OF t",
                    (notice.fingerprint,))
        row = cur.fetchone()
        starts_at = alarm_time(notice.starts_at, now)
        if notice.status == "resolved":
            status = lifecycle.alert_cleared(Status(row["status"])) if row is not None else None
            if status is None:
                return "ignored", str(row["id"]) if row else ""
            if row["alert_raised_at"] is not None and starts_at < row["alert_raised_at"]:
                return "ignored", str(row["id"])
            # From NEW or ASSIGNED too: the alert cleared before anyone started. No response (sla.py): the
            # ticket breaches nothing for it, and a new firing puts it back in the queue (reopened_status).
            self._apply(cur, row, reporter_id, Action.RESOLVE, status, assignee_id=None, team=None,
                        side=None, note=f"the alert {notice.alertname} resolved", now=now)
            row, state = self._rate(cur, str(row["id"]), now)
            self._announce(cur, row, state, Action.RESOLVE, now)
            return "resolved", str(row["id"])
        if row is not None:
            if row["status"] == "resolved":
                # It fired again after its resolution: the fix did not hold. Back to whoever was on it, or to
                # the queue when nobody had started (an alert that had cleared by itself): never in progress
                # with nobody on it.
                status = lifecycle.next_status(Status.RESOLVED, Action.REOPEN, has_worklog=True,
                                               require_worklog=False, started=self._started(cur, str(row["id"])),
                                               assigned=row["assignee_id"] is not None)
                self._apply(cur, row, reporter_id, Action.REOPEN, status, assignee_id=None,
                            team=None, side=None, note="the alert fired again", now=now)
                reopened, state = self._rate(cur, str(row["id"]), now)
                self._announce(cur, reopened, state, Action.REOPEN, now)
            cur.execute("UPDATE tickets SET alert_repeats = alert_repeats + 1, updated_at = %s, "
                        "alert_raised_at = GREATEST(alert_raised_at, %s) WHERE id = %s", (now, starts_at, row["id"]))
            return "updated", str(row["id"])
        impact, urgency = alert_impact_urgency(notice.severity)
        ticket_id = self._insert_ticket(cur, NewTicket(
            # Codes are upper case (the api's rule); Prometheus labels are often lower case ("his").
            kind="incident", subsystem_code=notice.subsystem_code.strip().upper(),
            title=f"[{notice.severity}] {notice.alertname}: {notice.summary}"[:200],
            description=notice.summary, impact=impact, urgency=urgency, major_incident=False, source=source,
            requester_id=reporter_id, reported_by_id=reporter_id, alert_fingerprint=notice.fingerprint), now)
        if ticket_id is None:
            # An outage nobody would hear of: the sender answered as if it were ticketed. Counted apart from
            # the ordinary ignored (TuoguanAlertsOnUnknownSubsystem), the label's value and the alert's name
            # logged (a rule's, not a person's), so the rule or the catalogue is put right.
            log.warning("alert for a subsystem the catalogue does not have (or has retired): no ticket",
                        extra={"subsystem_code": notice.subsystem_code[:64], "alertname": notice.alertname[:200]})
            return UNKNOWN_SUBSYSTEM, ""
        cur.execute("UPDATE tickets SET alert_raised_at = %s WHERE id = %s", (starts_at, ticket_id))
        self._rate(cur, ticket_id, now)
        return "opened", ticket_id

    def open_device_alarms(self, cur: psycopg.Cursor, device_id: str) -> dict[str, dt.datetime | None]:
        """A device's open alarm tickets: fingerprint (``alerts.device_alarm_fingerprint``) -> the alarm's
        latest raise (None for a ticket opened before it was kept)."""
        # A prefix compared as it is: with LIKE, an underscore or a percent sign in a device id was a
        # wildcard, and clearing FRZ_09 resolved FRZ-09's alarm too.
        cur.execute("SELECT alert_fingerprint, alert_raised_at FROM tickets WHERE starts_with(alert_fingerprint, %s) "
                    "AND status <> 'closed' ORDER BY alert_fingerprint", (device_alarms_prefix(device_id),))
        return {row["alert_fingerprint"]: row["alert_raised_at"] for row in cur.fetchall()}

    # The bank's DeviceAlarmRaised and DeviceAlarmCleared come on separate queues, so in any order: each
    # device's latest clearance is kept (device_alarm_clearances, migration 0004) and each device ticket its
    # alarm's latest raise (tickets.alert_raised_at); ``alerts.alarm_cleared`` compares them. A per-device
    # lock makes a raise and a clearance of one device handled at the same moment take turns: otherwise
    # the raise could miss the clearance and the clearance the raise's ticket, both uncommitted.

    def _lock_device(self, cur: psycopg.Cursor, prefix: str) -> None:
        cur.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (DEVICE_ALARM_LOCK_SPACE, prefix))

    def device_alarm_raised(self, cur: psycopg.Cursor, device_id: str, notice: AlertNotice, reporter_id: str,
                            now: dt.datetime) -> tuple[str, str]:
        """A device's alarm raised at ``notice.starts_at``, inside the caller's transaction: "ignored" when
        the device's latest clearance is at or after it, else as any alert ("opened" | "updated")."""
        prefix = device_alarms_prefix(device_id)
        raised_at = alarm_time(notice.starts_at, now)
        self._lock_device(cur, prefix)
        cur.execute("SELECT cleared_at FROM device_alarm_clearances WHERE fingerprint_prefix = %s", (prefix,))
        clearance = cur.fetchone()
        if alarm_cleared(raised_at, clearance["cleared_at"] if clearance else None):
            return "ignored", ""
        # The ticket keeps the alarm's latest raise (receive_alert_in, as for any alert).
        return self.receive_alert_in(cur, notice, reporter_id, "device", now)

    def device_alarm_cleared(self, cur: psycopg.Cursor, device_id: str, notice: AlertNotice,
                             cleared_at: dt.datetime, reporter_id: str, now: dt.datetime) -> list[str]:
        """A device's alarms cleared at ``cleared_at``, inside the caller's transaction: the clearance is
        kept (the latest per device) for alarms raised before it and handled after it, and each open ticket
        of the device's alarms raised until then resolves. An outcome per open ticket."""
        prefix = device_alarms_prefix(device_id)
        self._lock_device(cur, prefix)
        cleared_at = alarm_time(cleared_at, now)
        cur.execute("INSERT INTO device_alarm_clearances (fingerprint_prefix, cleared_at) VALUES (%s, %s) "
                    "ON CONFLICT (fingerprint_prefix) DO UPDATE "
                    "SET cleared_at = GREATEST(device_alarm_clearances.cleared_at, EXCLUDED.cleared_at)",
                    (prefix, cleared_at))
        outcomes = []
        for fingerprint, raised_at in self.open_device_alarms(cur, device_id).items():
            if not alarm_cleared(raised_at, cleared_at):
                # Raised after this clearance: an earlier episode's clearance, delivered late.
                outcomes.append("ignored")
                continue
            resolved = dataclasses.replace(notice, status="resolved", fingerprint=fingerprint)
            outcomes.append(self.receive_alert_in(cur, resolved, reporter_id, "device", now)[0])
        return outcomes

    def forget_old_clearances(self, now: dt.datetime) -> int:
        """Devices' clearances older than ``alerts.CLEARANCE_KEPT``: no alarm from before them is still coming."""
        with self.db.transaction() as cur:
            cur.execute("DELETE FROM device_alarm_clearances WHERE cleared_at < %s", (now - CLEARANCE_KEPT,))
            return cur.rowcount

    # ---- the worker's timers --------------------------------------------------------------------

    def escalate_due(self, now: dt.datetime, limit: int) -> list[tuple[str, int, list[str]]]:
        """Tickets whose SLA crossed a threshold: (ticket id, new level, breaches) for each one acted on."""
        acted = []
        with self.db.transaction() as cur:
            cur.execute(TICKET_VIEW + "WHERE t.next_check_at <= %s AND t.status IN ('new', 'assigned', "
                        "'in_progress', 'pending') ORDER BY t.next_check_at LIMIT %s FOR UPDATE OF t SKIP LOCKED",
                        (now, limit))
            rows = cur.fetchall()
            history = self._history(cur, [r["id"] for r in rows])
            calendar = self.calendar(cur) if rows else None
            for row in rows:
                ticket_id = str(row["id"])
                state = self.sla(calendar, row, history[ticket_id], now)
                breaches = ["response"] if self._report_response_breach(cur, row, state, now) else []
                priority = row["priority"]
                level = max(state.escalation_level, row["escalation_level"])
                for crossed in range(row["escalation_level"] + 1, level + 1):
                    if crossed == 2:
                        # Announced already when a late resolution was reopened: once per ticket.
                        if not row["resolution_breached"]:
                            breaches.append("resolution")
                            self._report_breach(cur, row, "resolution", state.resolution_due or now, priority, now)
                        if priority > 1:
                            # A breach raises the priority a step: the queue puts it first.
                            priority -= 1
                            self._record(cur, ticket_id, TicketEvent(at=now, kind=EventKind.PRIORITY_CHANGED,
                                                                     priority=Priority(priority), escalation=True),
                                         ESCALATOR, "raised after the resolution target was breached")
                    if crossed == 3:
                        self._hand_to_escalation_team(cur, row, now)
                    outbox.append(cur, events.SlaEscalated(ticket_id=ticket_id, level=crossed,
                                                           priority=f"P{priority}",
                                                           escalated_at=messages.rfc3339(now)))
                cur.execute(
                    "UPDATE tickets SET escalation_level = %s, priority = %s, response_breached = %s, "
                    "resolution_breached = %s WHERE id = %s",
                    (level, priority, state.response_breached or row["response_breached"],
                     level >= 2 or row["resolution_breached"], ticket_id))
                self._rate(cur, ticket_id, now)
                if level != row["escalation_level"] or breaches:
                    acted.append((ticket_id, level, breaches))
        return acted

    def _hand_to_escalation_team(self, cur: psycopg.Cursor, row: Row, now: dt.datetime) -> None:
        """Well past its target, a ticket is reassigned: to the escalation team (the contractor's second
        line and duty manager), off the engineer who has not fixed it; the dispatcher's board shows it
        unassigned. The clock keeps running."""
        team = self.config.escalation_team
        status, ends_pause = lifecycle.handed_to_escalation_team(Status(row["status"]))
        if ends_pause:
            # The history shows the pause ended before the hand-off (a contractor's pause stopped no clock).
            self._record(cur, str(row["id"]), TicketEvent(at=now, kind=EventKind.RESUMED), ESCALATOR,
                         f"the pause ended: handed to {team}")
            outbox.append(cur, events.TicketResumed(ticket_id=str(row["id"]), resumed_at=messages.rfc3339(now)))
        cur.execute("UPDATE tickets SET team = %s, assignee_id = NULL, updated_at = %s, status = %s, "
                    "paused_by = CASE WHEN %s THEN NULL ELSE paused_by END WHERE id = %s",
                    (team, now, str(status), ends_pause, row["id"]))
        self._record(cur, str(row["id"]), TicketEvent(at=now, kind=EventKind.ASSIGNED), ESCALATOR,
                     f"reassigned to {team}: well past the resolution target")
        outbox.append(cur, events.TicketAssigned(ticket_id=str(row["id"]), assignee_id="", team=team,
                                                 assigned_at=messages.rfc3339(now)))

    def auto_close_due(self, now: dt.datetime, limit: int) -> int:
        """Resolutions nobody confirmed in time close by themselves; their worklogs become billable."""
        with self.db.transaction() as cur:
            cur.execute(TICKET_VIEW + "WHERE t.status = 'resolved' AND t.auto_close_at <= %s "
                        "ORDER BY t.auto_close_at LIMIT %s FOR UPDATE OF t SKIP LOCKED", (now, limit))
            rows = cur.fetchall()
            closed = 0
            for row in rows:
                if not self._closes_by_itself(cur, row):
                    # Its requester logged time on it since its resolution: it waits for a dispatcher's close.
                    cur.execute("UPDATE tickets SET auto_close_at = NULL WHERE id = %s", (row["id"],))
                    continue
                closed += 1
                self._apply(cur, row, ESCALATOR, Action.AUTO_CLOSE, Status.CLOSED, assignee_id=None,
                            team=None, side=None, note="closed unconfirmed after its time", now=now)
                row, state = self._rate(cur, str(row["id"]), now)
                self._announce(cur, row, state, Action.AUTO_CLOSE, now)
            return closed

    def override_years(self, since: dt.date) -> set[int]:
        """The years from ``since``'s on that have calendar overrides (calendar.holidays_known_until)."""
        with self.db.transaction() as cur:
            cur.execute("SELECT DISTINCT extract(year FROM day)::int AS year FROM calendar_overrides "
                        "WHERE day >= date_trunc('year', %s::date)", (since,))
            return {r["year"] for r in cur.fetchall()}

    def open_by_priority(self) -> dict[int, int]:
        with self.db.transaction() as cur:
            # Resolved tickets waiting for the requester's confirmation are not open work: nobody needs paging.
            cur.execute("SELECT priority, count(*) AS n FROM tickets "
                        "WHERE status IN ('new', 'assigned', 'in_progress', 'pending') GROUP BY priority")
            return {r["priority"]: r["n"] for r in cur.fetchall()}
