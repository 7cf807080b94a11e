"""The O&M pages: clinicians report problems and follow their tickets, engineers
work their queue (start, pause, log time, resolve), dispatchers assign from the
board; the requester confirms or reopens a resolution. The ticketing service
decides who may do what; these pages only offer the steps that make sense for
the person looking."""
from __future__ import annotations

import asyncio
import datetime as dt

import grpc
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from tuoguan.identity.v1 import identity_pb2
from tuoguan.ticketing.v1 import ticketing_pb2 as tkt

from ..deps import token_grade
from ..grpc_trailers import first_value
from tuoguan_common.grpc_server import FIELD_KEY
from . import i18n
from .i18n import HOSPITAL_TIME, N_
from .web import (
    GoBack, PortalRoute, call, check_field_text, flash, form_key, gettext, has_role, language, portal_state,
    posted_form, redirect, refusal_field, refusal_status, refusal_text, render, safe_next, services, sign_in_redirect, signed_in,
    translate,
)

router = APIRouter(prefix="/tickets", route_class=PortalRoute, include_in_schema=False,
                   default_response_class=HTMLResponse)

# Who reports problems (as the ticketing service accepts them), who works them, who dispatches.
REPORTERS = ("clinician", "engineer", "dispatcher", "admin", "registration_office", "finance", "consultant")
STAFF = ("engineer", "dispatcher", "admin")
DESK = ("dispatcher", "admin")
ENGINEERS = ("engineer", "dispatcher", "admin")

ACTIONS = {
    "assign": tkt.TICKET_ACTION_ASSIGN, "start": tkt.TICKET_ACTION_START, "pause": tkt.TICKET_ACTION_PAUSE,
    "resume": tkt.TICKET_ACTION_RESUME, "resolve": tkt.TICKET_ACTION_RESOLVE, "confirm": tkt.TICKET_ACTION_CONFIRM,
    "reopen": tkt.TICKET_ACTION_REOPEN, "close": tkt.TICKET_ACTION_CLOSE,
}
DONE = {
    "assign": N_("The ticket is assigned to {name}."),
    "start": N_("Work has started: the response time is recorded."),
    "pause": N_("The ticket is on hold."),
    "resume": N_("Work has resumed."),
    "resolve": N_("The ticket is resolved. The reporter is asked to confirm."),
    "confirm": N_("Thank you for confirming: the ticket is closed."),
    "reopen": N_("The ticket is reopened and back with the engineer."),
    "close": N_("The ticket is closed."),
}
# A reopened ticket nobody had started or was assigned goes back to the dispatchers, not to an engineer.
REOPENED_TO_THE_BOARD = N_("The ticket is reopened and back on the dispatchers' board.")
FINISHED = frozenset({tkt.TICKET_STATUS_RESOLVED, tkt.TICKET_STATUS_CLOSED})
# How a worklog's start is typed (an <input type="datetime-local">, in the hospital's time).
LOCAL_MINUTE = "%Y-%m-%dT%H:%M"
LOGGED_MINUTES_DEFAULT = 30


def _refused(request: Request, roles: tuple[str, ...], message: str) -> HTMLResponse | None:
    """Sign-in for strangers, a clear 403 for the wrong role; None when the page is theirs."""
    if not signed_in(request):
        return sign_in_redirect(request)
    if not has_role(request, *roles):
        return render(request, "error.html", status_code=403, message=translate(request, message))
    return None


def _for_reporters(request: Request) -> HTMLResponse | None:
    return _refused(request, REPORTERS, N_("These pages are for hospital staff and the O&M team."))


async def _me(request: Request) -> str:
    """The signed-in account's id (kept in the session since sign-in; asked of identity for older sessions)."""
    account = request.session.get("account") or {}
    if not account.get("account_id"):
        reply = await services(request).identity.GetMyAccount(identity_pb2.GetMyAccountRequest())
        request.session["account"] = {**account, "account_id": reply.account.account_id}
        return reply.account.account_id
    return account["account_id"]


def _my_grade(request: Request) -> str:
    """The rate grade in the signed-in person's token, as identity signed it at sign-in: the grade ticketing
    records their worklogs at; "" for none (or one the portal has no name for). Read, not verified
    (deps.token_grade), only shown and passed on: ticketing verifies the token and decides."""
    grade = token_grade(request.session.get("token"))
    return grade if grade in i18n.WORKLOG_GRADES else ""


async def _staff(request: Request, *roles: str) -> dict[str, list[identity_pb2.Account]]:
    """The accounts holding each role, for the service desk only (identity refuses anyone else)."""
    if not has_role(request, *DESK):
        return {role: [] for role in roles}
    cache = portal_state(request).catalogue
    identity = services(request).identity

    async def accounts(role: str) -> list[identity_pb2.Account]:
        reply = await cache.get(("staff", role), lambda: identity.ListStaff(identity_pb2.ListStaffRequest(role=role)))
        return list(reply.accounts)

    found = await asyncio.gather(*(accounts(role) for role in roles))
    return dict(zip(roles, found))


class People:
    """Names for the account ids on a ticket, as far as the viewer may know them."""

    def __init__(self, request: Request, me: str, staff: dict[str, list[identity_pb2.Account]]):
        self._ = gettext(request)
        self.me = me
        self.known = {a.account_id: a.display_name for accounts in staff.values() for a in accounts}

    def name(self, account_id: str, ticket: tkt.Ticket | None = None, default: str = "") -> str:
        _ = self._
        if not account_id:
            return "—"
        if account_id == self.me:
            return _("You")
        if account_id in self.known:
            return self.known[account_id]
        if account_id.startswith("device:"):
            return _("Monitoring system")
        if ticket is not None and account_id == ticket.requester_id:
            return _("The reporter")
        if ticket is not None and account_id == ticket.assignee_id:
            return _("The assigned engineer")
        return default or _("Service desk")


def sla_view(request: Request, ticket: tkt.Ticket) -> dict[str, str]:
    """The SLA at a glance: on track, due at a time (close to its breach), breached, clock stopped, met."""
    _ = gettext(request)
    fmt = i18n.Formatter(language(request))
    sla = ticket.sla
    breached = sla.resolution_breached or sla.response_breached
    if ticket.status in FINISHED:
        state, text = ("late", _("Resolved late")) if breached else ("met", _("Met the SLA"))
        return {"state": state, "text": text, "detail": ""}
    awaiting_response = not sla.responded_at and ticket.status in (tkt.TICKET_STATUS_NEW, tkt.TICKET_STATUS_ASSIGNED)
    due = sla.response_due if awaiting_response else sla.resolution_due
    detail = ""
    if due:
        detail = (_("Respond by {time}") if awaiting_response else _("Resolve by {time}")).format(time=fmt.moment(due))
    if breached or sla.escalation_level >= 2:
        return {"state": "breached", "text": _("Breached"), "detail": detail}
    if sla.clock_stopped:
        return {"state": "stopped", "text": _(i18n.CLOCK_STOPPED.get(sla.paused_by, N_("Clock stopped"))),
                "detail": ""}
    if sla.escalation_level == 1 and due:
        return {"state": "due", "text": _("Due at {time}").format(time=fmt.moment(due)), "detail": ""}
    return {"state": "on_track", "text": _("On track"), "detail": detail}


def duration(request: Request, seconds: float) -> str:
    _ = gettext(request)
    minutes = max(0, round(seconds / 60))
    hours, minutes = divmod(minutes, 60)
    if hours and minutes:
        return _("{hours} h {minutes} min").format(hours=hours, minutes=minutes)
    if hours:
        return _("{hours} h").format(hours=hours)
    return _("{minutes} min").format(minutes=minutes)


def _actions(request: Request, ticket: tkt.Ticket, me: str) -> set[str]:
    """The steps this viewer may take now: the lifecycle's, as the service will allow them."""
    status = ticket.status
    offered: set[str] = {"comment"}
    if has_role(request, *DESK):
        if status in (tkt.TICKET_STATUS_NEW, tkt.TICKET_STATUS_ASSIGNED, tkt.TICKET_STATUS_IN_PROGRESS):
            offered.add("assign")
        if status in (tkt.TICKET_STATUS_NEW, tkt.TICKET_STATUS_ASSIGNED, tkt.TICKET_STATUS_RESOLVED):
            offered.add("close")
    if me and ticket.assignee_id == me:
        if status == tkt.TICKET_STATUS_ASSIGNED:
            offered.add("start")
        if status == tkt.TICKET_STATUS_IN_PROGRESS:
            offered.update({"pause", "resolve"})
        if status == tkt.TICKET_STATUS_PENDING:
            offered.update({"resume", "resolve"})
        # Only engineers log time (ticketing refuses anyone else: the contract prices engineers' hours).
        if status != tkt.TICKET_STATUS_CLOSED and has_role(request, "engineer"):
            offered.add("worklog")
    if me and ticket.requester_id == me and status == tkt.TICKET_STATUS_RESOLVED:
        offered.update({"confirm", "reopen"})
    return offered


def _card(request: Request, ticket: tkt.Ticket, people: People) -> dict:
    return {"t": ticket, "sla": sla_view(request, ticket),
            "assignee": people.name(ticket.assignee_id, ticket, default=translate(request, "An engineer"))
            if ticket.assignee_id else ""}


async def _list(request: Request, view: int, **kwargs) -> list[tkt.Ticket]:
    reply = await services(request).ticketing.ListTickets(tkt.ListTicketsRequest(view=view, **kwargs))
    return list(reply.tickets)


# ---- my tickets and reporting a problem ----------------------------------------------------------

@router.get("")
async def my_tickets(request: Request):
    if (refusal := _for_reporters(request)) is not None:
        return refusal
    me, tickets, systems = await asyncio.gather(_me(request), _list(request, tkt.TICKET_VIEW_MINE), _systems(request))
    people = People(request, me, {})
    cards = [_card(request, t, people) for t in tickets]
    return render(request, "tickets/mine.html", systems=systems,
                  active=[c for c in cards if c["t"].status != tkt.TICKET_STATUS_CLOSED],
                  closed=[c for c in cards if c["t"].status == tkt.TICKET_STATUS_CLOSED])


async def _subsystems(request: Request) -> list[tuple[str, list[tkt.Subsystem]]]:
    """The active subsystems by category, in the catalogue's order of categories."""
    reply = await portal_state(request).catalogue.get(
        ("subsystems",), lambda: services(request).ticketing.ListSubsystems(tkt.ListSubsystemsRequest()))
    groups: dict[str, list[tkt.Subsystem]] = {category: [] for category in i18n.SUBSYSTEM_CATEGORIES}
    for subsystem in reply.subsystems:
        groups.setdefault(subsystem.category, []).append(subsystem)
    return [(category, items) for category, items in groups.items() if items]


async def _systems(request: Request) -> dict[str, tkt.Subsystem]:
    """The active subsystems by code (for their names on the ticket pages)."""
    return {s.code: s for _, group in await _subsystems(request) for s in group}


def _report_form(request: Request, groups: list, *, status_code: int = 200, key: str = "", error: str = "",
                 field: str | None = None, **values) -> HTMLResponse:
    return render(request, "tickets/new.html", status_code=status_code, groups=groups, staff=has_role(request, *STAFF),
                  values=values, key=key or form_key(), error=error, field=field)


@router.get("/new")
async def report_page(request: Request, subsystem: str = ""):
    if (refusal := _for_reporters(request)) is not None:
        return refusal
    return _report_form(request, await _subsystems(request), subsystem_code=subsystem.upper(),
                        kind=tkt.TICKET_KIND_INCIDENT, impact=tkt.LEVEL_MEDIUM, urgency=tkt.LEVEL_MEDIUM)


def _number(value, allowed) -> int:
    try:
        number = int(value or 0)
    except ValueError:
        return 0
    return number if number in allowed else 0


@router.post("")
async def report(request: Request):
    if (refusal := _for_reporters(request)) is not None:
        return refusal
    form = await posted_form(request)
    values = {
        "subsystem_code": str(form.get("subsystem_code", "")), "kind": _number(form.get("kind"), i18n.TICKET_KINDS),
        "title": str(form.get("title", "")), "description": str(form.get("description", "")),
        "impact": _number(form.get("impact"), i18n.LEVELS), "urgency": _number(form.get("urgency"), i18n.LEVELS),
        # Declaring a major incident is the O&M team's call, whatever a form sends.
        "major_incident": form.get("major_incident") == "on" and has_role(request, *STAFF),
    }
    key = str(form.get("key", ""))
    try:
        reply = await services(request).ticketing.OpenTicket(tkt.OpenTicketRequest(**values, idempotency_key=key))
    except grpc.aio.AioRpcError as exc:
        if exc.code() == grpc.StatusCode.UNAUTHENTICATED:
            raise
        # The form comes back as it was typed, with the reason in words.
        return _report_form(request, await _subsystems(request), status_code=refusal_status(exc), key=key,
                            error=refusal_text(request, exc), field=refusal_field(exc), **values)
    ticket = reply.ticket
    flash(request, translate(request, "Your report is received as ticket {number}. Priority: {priority}.").format(
        number=ticket.number, priority=translate(request, i18n.PRIORITIES.get(ticket.priority, "—"))), "success")
    return redirect(f"/tickets/{ticket.ticket_id}")


# ---- the engineer's queue and the dispatcher's board ---------------------------------------------

@router.get("/queue")
async def queue(request: Request):
    if (refusal := _refused(request, ENGINEERS, N_("This page is for the O&M engineers."))) is not None:
        return refusal
    me, tickets, systems = await asyncio.gather(
        _me(request), _list(request, tkt.TICKET_VIEW_QUEUE, open_only=True), _systems(request))
    people = People(request, me, {})
    return render(request, "tickets/queue.html", systems=systems, cards=[_card(request, t, people) for t in tickets])


@router.get("/board")
async def board(request: Request):
    if (refusal := _refused(request, DESK, N_("This page is for the O&M dispatchers."))) is not None:
        return refusal
    me, tickets, staff, systems = await asyncio.gather(
        _me(request), _list(request, tkt.TICKET_VIEW_BOARD, open_only=True), _staff(request, "engineer"),
        _systems(request))
    people = People(request, me, staff)
    cards = [_card(request, t, people) for t in tickets]
    return render(request, "tickets/board.html", systems=systems, cards=cards, engineers=staff["engineer"],
                  unassigned=sum(1 for c in cards if not c["t"].assignee_id), key=form_key())


# ---- one ticket ----------------------------------------------------------------------------------

@router.get("/{ticket_id}")
async def ticket_page(request: Request, ticket_id: str):
    if (refusal := _for_reporters(request)) is not None:
        return refusal
    try:
        reply = await services(request).ticketing.GetTicket(tkt.GetTicketRequest(ticket_id=ticket_id))
    except grpc.aio.AioRpcError as exc:
        if exc.code() == grpc.StatusCode.INVALID_ARGUMENT and first_value(exc.trailing_metadata(),
                                                                          FIELD_KEY) == "ticket_id":
            # Not an id at all: as unknown as a ticket that does not exist.
            return render(request, "error.html", status_code=404,
                          message=translate(request, i18n.REASONS["ticket_not_found"]))
        raise
    ticket = reply.ticket
    me, staff, systems = await asyncio.gather(
        _me(request), _staff(request, "engineer", "clinician", "dispatcher", "admin"), _systems(request))
    people = People(request, me, staff)
    offered = _actions(request, ticket, me)
    now = dt.datetime.now(HOSPITAL_TIME).replace(second=0, microsecond=0)
    # Ticketing refuses a worklog starting before the minute the ticket was opened: half an hour ago is
    # before that on a fresh ticket, so the form neither starts earlier nor lets the engineer pick earlier.
    opened = _opened_minute(ticket)
    started_min = opened.strftime(LOCAL_MINUTE) if opened else ""
    started_default = now - dt.timedelta(minutes=LOGGED_MINUTES_DEFAULT)
    if opened:
        started_default = max(started_default, opened)
        now = max(now, opened)  # ticketing's clock a little ahead of this one: still a start the form takes
    return render(
        request, "tickets/detail.html", t=ticket, sla=sla_view(request, ticket), systems=systems,
        requester=people.name(ticket.requester_id, ticket, default=translate(request, "A hospital colleague")),
        reporter=people.name(ticket.reported_by_id, ticket),
        # Not "the assigned engineer" in the engineer's own field: their name when known, else that it is assigned.
        assignee=people.name(ticket.assignee_id, default=translate(request, i18n.TICKET_STATUSES[
            tkt.TICKET_STATUS_ASSIGNED])),
        timeline=_timeline(request, ticket, list(reply.comments), list(reply.history), people),
        worklogs=[(w, people.name(w.engineer_id, ticket, default=translate(request, "An engineer")))
                  for w in reply.worklogs] if has_role(request, *STAFF) else None,
        offered=offered, engineers=staff["engineer"], grade=_my_grade(request),
        elapsed=duration(request, ticket.sla.resolution_elapsed_seconds),
        target=duration(request, ticket.sla.resolution_target_seconds), key=form_key(),
        started_default=started_default.strftime(LOCAL_MINUTE), started_min=started_min,
        started_max=now.strftime(LOCAL_MINUTE))


def _opened_minute(ticket: tkt.Ticket) -> dt.datetime | None:
    """The minute the ticket was opened, in the hospital's time: the earliest start ticketing takes for a
    worklog on it. None when the ticket carries no readable time."""
    try:
        opened = dt.datetime.fromisoformat(ticket.created_at)
    except ValueError:
        return None
    if opened.tzinfo is None:
        return None
    return opened.astimezone(HOSPITAL_TIME).replace(second=0, microsecond=0)


def _timeline(request: Request, ticket: tkt.Ticket, comments: list[tkt.Comment], history: list[tkt.HistoryEntry],
              people: People) -> list[dict]:
    """What happened, oldest first: the ticket's history (the one its SLA is computed from) and the comments."""
    _ = gettext(request)
    entries = []
    for e in history:
        if e.kind == "paused":
            text = _(i18n.PAUSED_BY.get(e.side, i18n.GENERAL_EVENT))
        elif e.kind == "priority_changed":
            text = _("Priority changed to {priority}.").format(priority=_(i18n.PRIORITIES.get(e.priority, "")))
        else:
            text = _(i18n.HISTORY_EVENTS.get(e.kind, i18n.GENERAL_EVENT))
        if e.note:
            text = f"{text} {e.note}"
        who = "" if e.actor_id.startswith("service:") else people.name(e.actor_id, ticket)
        entries.append({"at": e.at, "who": who, "kind": e.kind, "text": text})
    entries += [{"at": c.created_at, "who": people.name(c.author_id, ticket), "kind": "comment", "text": c.body}
                for c in comments]
    return sorted(entries, key=lambda e: _instant(e["at"]))


def _instant(rfc3339: str) -> dt.datetime:
    try:
        return dt.datetime.fromisoformat(rfc3339)
    except ValueError:
        return dt.datetime.min.replace(tzinfo=dt.timezone.utc)


@router.post("/{ticket_id}/actions/{action}")
async def change(request: Request, ticket_id: str, action: str):
    if (refusal := _for_reporters(request)) is not None:
        return refusal
    if action not in ACTIONS:
        return render(request, "error.html", status_code=404, message=translate(request, i18n.REASONS["not_found"]))
    form = await posted_form(request)
    back = safe_next(form.get("back"), f"/tickets/{ticket_id}")
    assignee_id = str(form.get("assignee_id", "")) if action == "assign" else ""
    if action == "assign" and not assignee_id:
        flash(request, translate(request, "Choose the engineer to assign the ticket to."), "error")
        raise GoBack(back)
    reply = await call(request, back, services(request).ticketing.ChangeTicket(tkt.ChangeTicketRequest(
        ticket_id=ticket_id, action=ACTIONS[action], assignee_id=assignee_id,
        pause_side=_number(form.get("pause_side"), i18n.PAUSE_SIDES) if action == "pause" else 0,
        note=str(form.get("note", "")), idempotency_key=str(form.get("key", "")))))
    _ = gettext(request)
    name = ""
    if action == "assign":
        staff = await _staff(request, "engineer")
        name = People(request, "", staff).name(reply.ticket.assignee_id, default=_("An engineer"))
    done = REOPENED_TO_THE_BOARD if action == "reopen" and not reply.ticket.assignee_id else DONE[action]
    flash(request, _(done).format(name=name), "success")
    return redirect(back)


@router.post("/{ticket_id}/comments")
async def comment(request: Request, ticket_id: str):
    if (refusal := _for_reporters(request)) is not None:
        return refusal
    form = await posted_form(request)
    back = f"/tickets/{ticket_id}"
    await call(request, back, services(request).ticketing.AddComment(tkt.AddCommentRequest(
        ticket_id=ticket_id, body=str(form.get("body", "")), idempotency_key=str(form.get("key", "")))))
    flash(request, translate(request, "Your comment is added."), "success")
    return redirect(f"{back}#timeline")


@router.post("/{ticket_id}/worklogs")
async def worklog(request: Request, ticket_id: str):
    if (refusal := _for_reporters(request)) is not None:
        return refusal
    form = await posted_form(request)
    back = f"/tickets/{ticket_id}"
    _ = gettext(request)
    try:
        started = dt.datetime.strptime(str(form.get("started_at", "")), LOCAL_MINUTE).replace(tzinfo=HOSPITAL_TIME)
        minutes = int(form.get("minutes") or 0)
    except ValueError:
        flash(request, _("Enter when the work started and how many whole minutes it took."), "error")
        raise GoBack(back) from None
    try:
        # The grade is the token's, never the form's (a posted one is ignored). It is sent rather than left
        # empty for ticketing-api pods from before grades, which require one and which this portal may reach
        # during a rolling upgrade; a current ticketing verifies the token and records its grade, and this one
        # is that grade.
        recording = tkt.RecordWorklogRequest(
            ticket_id=ticket_id, grade=_my_grade(request), activity=str(form.get("activity", "")),
            started_at=started.isoformat(), minutes=minutes, note=str(form.get("note", "")),
            idempotency_key=str(form.get("key", "")))
    except ValueError:
        # Too many minutes for the proto's int32: the words the service has for too many minutes.
        flash(request, check_field_text(request, "minutes"), "error")
        raise GoBack(back) from None
    reply = await call(request, back, services(request).ticketing.RecordWorklog(recording), i18n.WORKLOG_REASONS)
    flash(request, _("{minutes} minutes of work are logged.").format(minutes=reply.worklog.minutes), "success")
    return redirect(f"{back}#worklogs")
