"""Ticketing's worker: the SLA clocks (escalation before and after a breach),
unconfirmed resolutions that close by themselves, the open-ticket gauge, the
specimen bank's device alarms, and the purge of the outbox, inbox and
idempotency keys past their retention (``RetentionPurge``).
``tuoguan-worker ticketing`` runs it."""
from __future__ import annotations

import datetime as dt
import functools
import os

from nameko.timer import timer
from tuoguan.specimens.v1 import events_pb2 as specimen_events
from tuoguan_common import metrics
from tuoguan_common.config import PORTS
from tuoguan_common.nameko_support import (Observability, OutboxRelayer, RetentionPurge, WorkerStore, event_handler,
                                           handle_event)
from tuoguan_common.outbox import utcnow

from .config import TicketingConfig
from .domain.alerts import AlertNotice, device_alarm_fingerprint, storable, within_ticket_text
from .domain.calendar import HOSPITAL_TZ, holidays_known_until
from .store import Store

# Timer intervals are fixed when the class is defined, so the settings are read at import.
CONFIG = TicketingConfig.from_env()
BATCH = 200
PRIORITIES = (1, 2, 3, 4)


def _instant(text: str) -> dt.datetime:
    """The bank's time of a raise or a clearance; ValueError when there is none (``device_event``)."""
    moment = dt.datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)


def device_event(event) -> None:
    """What a device's raise or clearance must carry to be acted on (handle_event's check: malformed, dead-
    lettered, otherwise): the device, and the bank's time of it. Without a time it was stamped with
    ticketing's, so a copy of an old raise, re-sent after its clearance, reopened the resolved ticket, and a
    clearance without one resolved alarms raised after it."""
    if not device_id(event):
        raise ValueError(f"{event.DESCRIPTOR.name}.device_id is empty")
    field = "raised_at" if event.DESCRIPTOR.name == "DeviceAlarmRaised" else "cleared_at"
    try:
        _instant(getattr(event, field))
    except ValueError:
        raise ValueError(f"{event.DESCRIPTOR.name}.{field} is not a time") from None


def device_id(event) -> str:
    """The event's device id as ticketing keeps it (``alerts.storable``): the raise and the clearance of one
    device read it the same way."""
    return storable(event.device_id)


def device_notice(event, status: str) -> AlertNotice:
    """A freezer's alarm as an alert: one ticket per device and kind of trouble. The bank's text is made
    storable as Alertmanager's is: a protobuf string may hold a NUL, which PostgreSQL's text cannot, and the
    event would be dead-lettered with the freezer's ticket never opened (or never resolved)."""
    device, kind = device_id(event), storable(getattr(event, "kind", ""))
    return AlertNotice(
        fingerprint=device_alarm_fingerprint(device, kind or "alarm"),
        status=status, subsystem_code=storable(event.subsystem_code) or "BIOBANK",
        alertname=kind or "device_alarm", severity=storable(getattr(event, "severity", "")) or "critical",
        summary=within_ticket_text(storable(getattr(event, "summary", ""))) or f"device {device}",
        starts_at=_instant(getattr(event, "raised_at", "") or getattr(event, "cleared_at", "")), ends_at=None)


class TicketingWorker(RetentionPurge):
    name = "ticketing"

    store = WorkerStore(functools.partial(Store, config=CONFIG), "ticketing")
    relayer = OutboxRelayer("ticketing")
    observability = Observability("ticketing")

    @event_handler("specimens", "DeviceAlarmRaised", requeue_on_error=True)
    def on_device_alarm(self, payload):
        outcomes = []

        def apply(cur, event):
            # Nothing when the device's clearance, handled first, is at or after this raise.
            outcomes.append(self.store.device_alarm_raised(cur, device_id(event), device_notice(event, "firing"),
                                                           "service:ticketing", utcnow())[0])

        result = handle_event(self.store.db, payload, specimen_events.DeviceAlarmRaised, "device_alarm", apply,
                              check=device_event)
        for outcome in outcomes:
            metrics.TICKETING_ALERTS.labels(outcome).inc()
        return result

    @event_handler("specimens", "DeviceAlarmCleared", requeue_on_error=True)
    def on_device_alarm_cleared(self, payload):
        outcomes = []

        def apply(cur, event):
            # A cleared alarm carries no kind: every open ticket of the device's alarms raised until then
            # resolves, and the clearance is kept for the raises still on their way.
            outcomes.extend(self.store.device_alarm_cleared(cur, device_id(event), device_notice(event, "resolved"),
                                                            _instant(event.cleared_at), "service:ticketing",
                                                            utcnow()))

        result = handle_event(self.store.db, payload, specimen_events.DeviceAlarmCleared, "device_alarm_cleared",
                              apply, check=device_event)
        for outcome in outcomes:
            metrics.TICKETING_ALERTS.labels(outcome).inc()
        return result

    @timer(interval=CONFIG.escalation_interval)
    def escalate(self):
        """SLA thresholds crossed since the last look: notify, breach (priority up a step), escalate further."""
        while True:
            acted = self.store.escalate_due(utcnow(), BATCH)
            for _ticket, level, breaches in acted:
                metrics.TICKETING_ESCALATIONS.labels(str(level)).inc()
                for target in breaches:
                    metrics.TICKETING_SLA_BREACHES.labels(target).inc()
            if len(acted) < BATCH:
                return

    @timer(interval=CONFIG.auto_close_interval)
    def close_unconfirmed(self):
        closed = self.store.auto_close_due(utcnow(), BATCH)
        if closed:
            metrics.TICKETING_TICKETS_CLOSED.labels("auto").inc(closed)
        # One row per device at most, but devices come and go: a month-old clearance has no raise left to stop.
        self.store.forget_old_clearances(utcnow())

    @timer(interval=15, eager=True)
    def measure_open_tickets(self):
        # Every outcome starts at zero, so a dashboard sees the series before the first breach.
        for target in ("response", "resolution"):
            metrics.TICKETING_SLA_BREACHES.labels(target)
        for level in ("1", "2", "3"):
            metrics.TICKETING_ESCALATIONS.labels(level)
        for how in ("auto",):
            metrics.TICKETING_TICKETS_CLOSED.labels(how)
        today = utcnow().astimezone(HOSPITAL_TZ).date()
        known = holidays_known_until(today, self.store.override_years(today))
        metrics.TICKETING_CALENDAR_KNOWN_DAYS.set((known - today).days)
        counts = self.store.open_by_priority()
        for priority in PRIORITIES:
            metrics.TICKETING_OPEN_TICKETS.labels(f"P{priority}").set(counts.get(priority, 0))


def main() -> None:
    # worker_main patches the standard library for eventlet when imported: only here, in the worker process.
    from tuoguan_common import worker_main

    port = int(os.environ.get("TICKETING_WORKER_METRICS_PORT") or PORTS["ticketing"]["worker_metrics"])
    worker_main.run(TicketingWorker, "ticketing", port)
