"""Ticketing's gRPC API: parse the request, check the caller, call the store,
reply. ``python -m ticketing.api`` runs it."""
from __future__ import annotations

import datetime as dt
import json
import re
from typing import Callable

import grpc
from tuoguan.ticketing.v1 import ticketing_pb2 as pb
from tuoguan.ticketing.v1 import ticketing_pb2_grpc as pb_grpc
from tuoguan_common import api_main, metrics, roles
from tuoguan_common.auth import Principal, current_principal
from tuoguan_common.config import PORTS, Settings, service_address
from tuoguan_common.db import Database
from tuoguan_common.errors import calendar_date, entity_id, idempotency_key, require, text
from tuoguan_common.grpc_server import current_token
from tuoguan_common.outbox import Idempotent, as_parsed, utcnow
from tuoguan_common.json_nesting import nested_too_deeply

from . import messages
from .config import TicketingConfig
from .domain.alerts import MAX_TICKET_TEXT, parse_alertmanager
from .domain.calendar import HOSPITAL_TZ, ServiceHours, WorkingCalendar, statutory_data_until
from .domain.lifecycle import Action
from .domain.priority import Level
from .domain.sla import Side
from .domain.worklog import validate_worklog
from .exceptions import AssigneeNotAnEngineer, InvalidArgument, MajorIncidentNotAllowed, not_found
from .migrate import MIGRATIONS_DIR
from .staff_directory import IdentityStaffDirectory, StaffDirectory
from .store import ALERT_OUTCOMES, NewTicket, Store

STAFF = (roles.ENGINEER, roles.DISPATCHER, roles.ADMIN)
# Who may open a ticket: clinicians for themselves, the service desk for a caller, machines for alerts.
# Who may open one for a caller: the service desk and the registration office. Not an engineer: the
# requester is who confirms a resolution, and one who named them could bill hours nobody else looked at.
ON_BEHALF = (roles.DISPATCHER, roles.ADMIN, roles.REGISTRATION_OFFICE)
REPORTERS = (roles.CLINICIAN, *STAFF, roles.REGISTRATION_OFFICE, roles.FINANCE, roles.CONSULTANT)
MACHINES = (roles.DEVICE, roles.SERVICE, roles.ADMIN)
MAX_TITLE = 200
MAX_ALERT_PAYLOAD = 1 << 20
_CODE = re.compile(r"^[A-Z0-9][A-Z0-9-]{0,15}$")


def _enum(value: int, enum, prefix: str, field: str, *, required: bool = True) -> str | None:
    key = messages.enum_key(enum, prefix, value) if value in enum.values() else None
    if value and key is None:
        raise InvalidArgument(field, "is not a known value")
    if required and not key:
        raise InvalidArgument(field, "is required")
    return key or None


def _code(value: str, field: str = "subsystem_code") -> str:
    value = (value or "").strip().upper()
    if not _CODE.match(value):
        raise InvalidArgument(field, "must be a subsystem code such as HIS or PACS")
    return value


def _instant(value: str, field: str) -> dt.datetime:
    value = require(value, field)
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise InvalidArgument(field, "must be an RFC 3339 instant") from None
    if moment.tzinfo is None:
        raise InvalidArgument(field, "must carry its offset (e.g. +08:00 or Z)")
    return moment


ACTIONS = {getattr(pb, f"TICKET_ACTION_{a.name}"): a for a in Action if hasattr(pb, f"TICKET_ACTION_{a.name}")}


class TicketingServicer(pb_grpc.TicketingServiceServicer):
    def __init__(self, store: Store, config: TicketingConfig, staff: StaffDirectory,
                 clock: Callable[[], dt.datetime] = utcnow):
        self.store = store
        self.config = config
        self.staff = staff
        self.clock = clock
        # Served at 0 from the start: an alert on their increase sees the first one.
        for outcome in ALERT_OUTCOMES:
            metrics.TICKETING_ALERTS.labels(outcome)

    # The catalogue.

    def ListSubsystems(self, request, context):
        current_principal()
        rows = self.store.list_subsystems(request.include_inactive)
        return pb.ListSubsystemsResponse(subsystems=[messages.subsystem(r) for r in rows])

    def PutSubsystem(self, request, context):
        admin = current_principal().require(roles.ADMIN)
        s = request.subsystem
        hours = text(s.service_hours, "subsystem.service_hours", 200)
        try:
            hours = str(ServiceHours.parse(hours))
        except ValueError as exc:
            raise InvalidArgument("subsystem.service_hours", str(exc)) from None
        fields = {
            "id": entity_id(s.subsystem_id, "subsystem.subsystem_id") if s.subsystem_id else None,
            "code": _code(s.code, "subsystem.code"), "name": text(s.name, "subsystem.name", 100),
            "name_en": text(s.name_en, "subsystem.name_en", 100, required=False),
            "category": text(s.category, "subsystem.category", 40, required=False),
            "criticality": _enum(s.criticality, pb.Criticality, "CRITICALITY", "subsystem.criticality"),
            "team": text(s.team, "subsystem.team", 40), "vendor": text(s.vendor, "subsystem.vendor", 100,
                                                                      required=False),
            "service_hours": hours, "active": s.active,
        }
        idem = Idempotent.of("subsystem", admin.subject, idempotency_key(request.idempotency_key), request,
                             pb.PutSubsystemResponse)
        return self.store.put_subsystem(idem, fields, self.clock())

    # Tickets.

    def OpenTicket(self, request, context):
        caller = current_principal().require(*REPORTERS)
        requester = caller.subject
        source = "portal"
        if request.on_behalf_of:
            caller.require(*ON_BEHALF)
            # The caller's account id: it is the ticket's requester (who sees it, confirms or reopens it) and
            # goes out in TicketOpened, which carries ids, never what someone typed (a name, a phone number).
            requester = entity_id(request.on_behalf_of, "on_behalf_of")
            source = "staff"
        elif set(caller.roles) & set(STAFF):
            source = "staff"
        if request.major_incident and not caller.has(*STAFF):
            # P1 whatever the impact and urgency: the service desk's call, not the reporter's (the portal's form
            # offers it to the O&M team only).
            raise MajorIncidentNotAllowed()
        new = NewTicket(
            kind=_enum(request.kind, pb.TicketKind, "TICKET_KIND", "kind"),
            subsystem_code=_code(request.subsystem_code), title=text(request.title, "title", MAX_TITLE),
            description=text(request.description, "description", MAX_TICKET_TEXT, required=False),
            impact=Level(_enum(request.impact, pb.Level, "LEVEL", "impact")),
            urgency=Level(_enum(request.urgency, pb.Level, "LEVEL", "urgency")),
            major_incident=request.major_incident, source=source, requester_id=requester,
            reported_by_id=caller.subject)
        key = idempotency_key(request.idempotency_key)
        parsed = as_parsed(request, subsystem_code=new.subsystem_code, title=new.title, description=new.description,
                           on_behalf_of=requester if request.on_behalf_of else "", idempotency_key=key)
        idem = Idempotent.of("open", caller.subject, key, parsed, pb.OpenTicketResponse)
        response = self.store.open_ticket(idem, new, self.clock())
        if not idem.replayed:
            metrics.TICKETING_TICKETS_OPENED.labels(source, f"P{response.ticket.priority}").inc()
        return response

    def GetTicket(self, request, context):
        caller = current_principal()
        found = self.store.get_ticket(entity_id(request.ticket_id, "ticket_id"), self.clock())
        if found is None:
            raise not_found("ticket")
        row, state, comments, worklogs, history = found
        self.store.check_visible(row, caller)
        return pb.GetTicketResponse(ticket=messages.ticket(row, state),
                                    comments=[messages.comment(c) for c in comments],
                                    worklogs=[messages.worklog(w) for w in worklogs],
                                    history=[messages.history_entry(e) for e in history])

    def ListTickets(self, request, context):
        caller = current_principal()
        view = _enum(request.view, pb.TicketView, "TICKET_VIEW", "view", required=False) or "mine"
        if view == "queue":
            caller.require(roles.ENGINEER, roles.DISPATCHER, roles.ADMIN)
        elif view == "board":
            caller.require(roles.DISPATCHER, roles.ADMIN, roles.ENGINEER)
        if request.limit < 0:
            raise InvalidArgument("limit", "must not be negative")
        code = _code(request.subsystem_code) if request.subsystem_code else None
        rated = self.store.list_tickets(view, caller.subject, open_only=request.open_only, subsystem_code=code,
                                        limit=request.limit, now=self.clock())
        return pb.ListTicketsResponse(tickets=[messages.ticket(r, s) for r, s in rated])

    def ChangeTicket(self, request, context):
        caller = current_principal()
        ticket_id = entity_id(request.ticket_id, "ticket_id")
        action = ACTIONS.get(request.action)
        if action is None:
            raise InvalidArgument("action", "is required" if not request.action else "is not a known action")
        side = None
        if action == Action.PAUSE:
            side = Side(_enum(request.pause_side, pb.PauseSide, "PAUSE_SIDE", "pause_side"))
        assignee = None
        team = text(request.team, "team", 40, required=False) or None
        if action == Action.ASSIGN:
            # The contract: an engineer's account id and/or their team (a team alone puts it in the team's queue).
            # An account id, not a name: it goes out in TicketAssigned and decides whose queue it is in.
            assignee = entity_id(request.assignee_id, "assignee_id", required=team is None)
        note = text(request.note, "note", MAX_TICKET_TEXT, required=action == Action.RESOLVE)
        key = idempotency_key(request.idempotency_key)
        parsed = as_parsed(request, ticket_id=ticket_id, assignee_id=assignee or "", team=team or "", note=note,
                           idempotency_key=key)
        idem = Idempotent.of("change", caller.subject, key, parsed, pb.ChangeTicketResponse)
        if assignee is not None:
            self._check_assignee(caller, assignee, idem)
        response = self.store.change_ticket(idem, ticket_id, caller, action, assignee_id=assignee,
                                            team=team, side=side,
                                            note=note, now=self.clock())
        if not idem.replayed and action == Action.RESOLVE:
            metrics.TICKETING_RESOLUTION_SECONDS.labels(f"P{response.ticket.priority}").observe(
                response.ticket.sla.resolution_elapsed_seconds)
        if not idem.replayed and response.ticket.status == pb.TICKET_STATUS_CLOSED:
            metrics.TICKETING_TICKETS_CLOSED.labels("confirmed" if action == Action.CONFIRM else "closed").inc()
        return response

    def _check_assignee(self, caller: Principal, assignee_id: str, idem: Idempotent) -> None:
        """An assignment names an engineer (AssigneeNotAnEngineer otherwise): nobody else's queue shows the
        ticket, and only the assignee may start it. Asked before the transaction, so no ticket is locked while
        identity answers, and only when it decides something:

        * an engineer taking a ticket for themself: their own token says they are one;
        * a caller who is neither dispatcher nor admin: the lifecycle refuses them (role_not_allowed) anyway,
          and identity would not let them list the engineers;
        * a retry of an assignment already answered: it gets its first answer, whoever identity lists now.

        Identity not answering refuses it (StaffDirectoryUnavailable, UNAVAILABLE): never assigned unchecked."""
        if assignee_id == caller.subject and caller.has(roles.ENGINEER):
            return
        if not caller.has(roles.DISPATCHER, roles.ADMIN):
            return
        if self.store.answered(idem):
            return
        if not self.staff.is_engineer(assignee_id, current_token()):
            raise AssigneeNotAnEngineer()

    def AddComment(self, request, context):
        caller = current_principal()
        ticket_id = entity_id(request.ticket_id, "ticket_id")
        body = text(request.body, "body", MAX_TICKET_TEXT)
        key = idempotency_key(request.idempotency_key)
        idem = Idempotent.of("comment", caller.subject, key,
                             as_parsed(request, ticket_id=ticket_id, body=body, idempotency_key=key),
                             pb.AddCommentResponse)
        return self.store.add_comment(idem, ticket_id, caller, body, self.clock())

    def RecordWorklog(self, request, context):
        # The contract prices engineers' hours only, and only an engineer's account has a grade: a dispatcher or an
        # admin who does an engineer's work holds the engineer role too.
        caller = current_principal().require(roles.ENGINEER)
        now = self.clock()
        ticket_id = entity_id(request.ticket_id, "ticket_id")
        key = idempotency_key(request.idempotency_key)
        idem = Idempotent.of("worklog", caller.subject, key, as_parsed(request, ticket_id=ticket_id, idempotency_key=key),
                             pb.RecordWorklogResponse)
        # A retry of a worklog already recorded gets its first answer, whatever the checks would say now: its
        # start gone past 31 days since, or the account regraded. Refused, the engineer would read the time as
        # not recorded, and it is.
        first = self.store.first_answer(idem)
        if first is not None:
            return first
        # Priced at the grade identity gave the account (the token's claim); the request's may only repeat it.
        log = validate_worklog(caller.subject, caller.grade, request.activity,
                               _instant(request.started_at, "started_at"), request.minutes, request.note, now,
                               requested_grade=request.grade)
        response = self.store.record_worklog(idem, ticket_id, caller, log, now)
        if not idem.replayed:
            metrics.TICKETING_WORKLOG_MINUTES.labels(log.grade).inc(log.minutes)
        return response

    def ListWorklogs(self, request, context):
        caller = current_principal()
        found = self.store.worklogs(entity_id(request.ticket_id, "ticket_id"))
        if found is None:
            raise not_found("ticket")
        row, logs = found
        self.store.check_visible(row, caller)
        return pb.ListWorklogsResponse(worklogs=[messages.worklog(w) for w in logs])

    # The calendar.

    def ListCalendarDays(self, request, context):
        current_principal().require(roles.ADMIN, roles.DISPATCHER)
        today = self.clock().astimezone(HOSPITAL_TZ).date()
        year = request.year or today.year
        if not 2000 <= year <= 2100:
            raise InvalidArgument("year", "must be between 2000 and 2100")
        rows = self.store.calendar_days(year)
        until = statutory_data_until(today)
        return pb.ListCalendarDaysResponse(
            days=[pb.CalendarDay(day=r["day"].isoformat(), working=r["working"], note=r["note"]) for r in rows],
            statutory_data=WorkingCalendar().covers(dt.date(year, 6, 30)), statutory_data_until=until.isoformat())

    def PutCalendarDay(self, request, context):
        current_principal().require(roles.ADMIN)
        day = calendar_date(require(request.day.day, "day.day"), "day.day")
        note = text(request.day.note, "day.note", 200, required=False)
        row = self.store.put_calendar_day(day, request.day.working, note, remove=request.remove, now=self.clock())
        if row is None:
            raise not_found("calendar_day")
        return pb.PutCalendarDayResponse(day=pb.CalendarDay(day=row["day"].isoformat(), working=row["working"],
                                                            note=row["note"]))

    # Machines.

    def ReceiveAlerts(self, request, context):
        caller = current_principal().require(*MACHINES)
        if len(request.alertmanager_payload) > MAX_ALERT_PAYLOAD:
            raise InvalidArgument("alertmanager_payload", "is larger than 1 MiB")
        if nested_too_deeply(request.alertmanager_payload):
            raise InvalidArgument("alertmanager_payload", "is nested too deeply")
        try:
            notices = parse_alertmanager(json.loads(request.alertmanager_payload))
        except (ValueError, TypeError) as exc:
            raise InvalidArgument("alertmanager_payload", str(exc)) from None
        counts = dict.fromkeys(ALERT_OUTCOMES, 0)
        ids = []
        # Every alert read before the first write, and all written in one transaction: a notification is
        # applied whole or not at all (Alertmanager sends it again), never half of it counted on each retry.
        for outcome, ticket_id in self.store.receive_alerts(notices, caller.subject, "alert", self.clock()):
            counts[outcome] += 1
            metrics.TICKETING_ALERTS.labels(outcome).inc()
            if ticket_id and ticket_id not in ids:
                ids.append(ticket_id)
        return pb.ReceiveAlertsResponse(opened=counts["opened"], updated=counts["updated"],
                                        resolved=counts["resolved"], ticket_ids=ids)


SERVICE_NAME = pb.DESCRIPTOR.services_by_name["TicketingService"].full_name


def register(server: grpc.Server, settings: Settings | None, database: Database,
             config: TicketingConfig | None = None, clock: Callable[[], dt.datetime] = utcnow, *,
             staff: StaffDirectory | None = None) -> list[str]:
    """Adds the servicer to ``server``; returns the full service names for health and reflection. ``staff``:
    who is an engineer; identity's ListStaff at IDENTITY_ADDR unless a test hands in its own."""
    config = config or TicketingConfig.from_env()
    if staff is None:
        staff = IdentityStaffDirectory(service_address("identity", PORTS["identity"]["grpc"]),
                                       cache_seconds=config.staff_cache_seconds,
                                       timeout=config.identity_timeout_seconds)
    pb_grpc.add_TicketingServiceServicer_to_server(
        TicketingServicer(Store(database, config), config, staff, clock), server)
    return [SERVICE_NAME]


def main() -> None:
    api_main.run("ticketing", register, migrations_dir=MIGRATIONS_DIR)


if __name__ == "__main__":
    main()
