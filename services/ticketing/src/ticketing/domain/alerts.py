"""Prometheus Alertmanager webhook notifications, read into plain decisions (no I/O).

One notification carries a group of alerts; each alert is identified by its
fingerprint (a hash of its labels), so repeats of the same alert update the
ticket it opened, and its ``resolved`` status resolves it.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from ticketing.domain.priority import Level

FIRING = "firing"
RESOLVED = "resolved"
_STATUSES = (FIRING, RESOLVED)
# Alertmanager's "no end time": the zero time of Go.
_GO_ZERO_YEAR = 1
# Alertmanager's fingerprints are 16 hex digits. The key goes into the unique index that keeps one open
# ticket per alert, and a btree entry has a limit of its own (about 2.7 kB): far past this is not an alert.
MAX_FINGERPRINT = 200
# The longest text a ticket keeps (a description, a note, a comment): an alert's summary too, cut there.
MAX_TICKET_TEXT = 10_000


# Every device alarm's fingerprint starts with this (``device_alarms_prefix``). The tickets of Alertmanager's
# alerts and of the specimen bank's alarms share one fingerprint space (one open ticket per fingerprint), so an
# Alertmanager fingerprint may not start with it: a webhook naming "device:FRZ-01:temperature" resolved (or
# opened, or reopened) a freezer's ticket that only the bank's own raise and clearance events may touch.
DEVICE_FINGERPRINTS = "device:"


def device_alarms_prefix(device_id: str) -> str:
    """What every fingerprint of one device's alarms starts with, and no other device's: a ':' in the id is
    written %3A (and '%' itself %25), so it cannot read as another device's id and kind ("FRZ" and kind
    "1:door_open" against "FRZ:1" and "door_open"), and clearing FRZ leaves FRZ:1's alarms open. Any other
    id reads as it did before, so the alarms open across an upgrade still clear."""
    return DEVICE_FINGERPRINTS + device_id.replace("%", "%25").replace(":", "%3A") + ":"


def device_alarm_fingerprint(device_id: str, kind: str) -> str:
    """One open ticket per device and kind of trouble."""
    return device_alarms_prefix(device_id) + kind


# A device alarm's time (raised or cleared) further ahead of ticketing's clock than this is the bank's clock's
# mistake: it is kept as ticketing's time plus this, so a clearance dated 2099 cannot silence the device's
# alarms until then, nor an alarm dated 2099 ignore every clearance.
ALARM_CLOCK_SKEW = dt.timedelta(minutes=5)
# How long a device's latest clearance is remembered: an alarm raised before it and delivered later than
# this (a month behind its clearance) would open a ticket again.
CLEARANCE_KEPT = dt.timedelta(days=30)


def alarm_cleared(raised_at: dt.datetime | None, cleared_at: dt.datetime | None) -> bool:
    """Whether a device alarm raised at ``raised_at`` is over by the device's clearance at ``cleared_at``.

    The bank's DeviceAlarmRaised and DeviceAlarmCleared come on separate queues, in any order, and a
    clearance names no kind: it clears every alarm of the device raised until then (at the same instant
    included). So a raise at or before the device's latest clearance opens nothing, and a clearance older
    than an open ticket's latest raise (an earlier episode's, delivered late) leaves it open. No clearance
    clears nothing; a clearance clears a ticket whose raise time is unknown (opened before it was kept).
    """
    if cleared_at is None:
        return False
    return raised_at is None or raised_at <= cleared_at


def alarm_time(at: dt.datetime, now: dt.datetime) -> dt.datetime:
    """A raise or clearance time of the bank's clock as kept and compared: as it is, unless it is past ``now``
    by more than ``ALARM_CLOCK_SKEW`` (then ``now`` plus that). Both times the same way: with a bank clock
    running fast, a raise and its clearance handled in order still compare in order."""
    return min(at, now + ALARM_CLOCK_SKEW)


@dataclass(frozen=True)
class AlertNotice:
    fingerprint: str
    status: str                 # "firing" | "resolved"
    subsystem_code: str
    alertname: str
    severity: str
    summary: str
    starts_at: dt.datetime
    ends_at: dt.datetime | None
    # Addition: all the alert's labels, for the ticket's description.
    labels: Mapping[str, str] | None = field(default=None, compare=False)

    @property
    def firing(self) -> bool:
        return self.status == FIRING


# A lone UTF-16 surrogate (JSON's "\ud800" without its pair: valid JSON, json.loads reads it) is no character
# UTF-8 can write, so PostgreSQL never sees the row: the whole write fails.
_SURROGATE = re.compile("[\ud800-\udfff]")
REPLACEMENT = "\ufffd"


def storable(text: str) -> str:
    """Machine-sent text as PostgreSQL's text can hold it: NUL dropped, a lone surrogate replaced by U+FFFD
    (what a UTF-8 decoder puts for a broken character). Never a refusal: a machine's ticket must not be lost
    over one byte, and Alertmanager would send the same notification again and again."""
    return _SURROGATE.sub(REPLACEMENT, text.replace("\x00", ""))


def within_ticket_text(text: str) -> str:
    """A machine's text cut to what a ticket keeps (``MAX_TICKET_TEXT``), not refused: its ticket must not be
    lost over a long annotation (a stack trace, say)."""
    return text if len(text) <= MAX_TICKET_TEXT else text[:MAX_TICKET_TEXT - 1] + "…"


def _text_map(value: object, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValueError(f"{where}: must be an object of strings")
    out = {}
    for key, item in value.items():
        if not isinstance(key, str) or not isinstance(item, str):
            # The key made storable too: the message goes back in the reply, which is UTF-8 as well.
            raise ValueError(f"{where}.{storable(str(key))}: must be a string")
        # PostgreSQL's text cannot hold NUL nor a lone surrogate: dropped or replaced, not the alert.
        out[storable(key)] = storable(item)
    return out


def _timestamp(value: object, where: str, *, required: bool) -> dt.datetime | None:
    if value in (None, ""):
        if required:
            raise ValueError(f"{where}: is required")
        return None
    if not isinstance(value, str):
        raise ValueError(f"{where}: must be an RFC 3339 timestamp")
    try:
        moment = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(f"{where}: {value!r} is not an RFC 3339 timestamp") from None
    if moment.tzinfo is None:
        raise ValueError(f"{where}: {value!r} has no time zone")
    if moment.year == _GO_ZERO_YEAR:
        if required:
            raise ValueError(f"{where}: is the zero time")
        return None
    return moment


def _fingerprint(labels: Mapping[str, str]) -> str:
    """A stable stand-in when a (very old) Alertmanager sends no fingerprint: a hash of the sorted labels."""
    text = "\xff".join(f"{k}\xfe{v}" for k, v in sorted(labels.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def parse_alertmanager(payload: Mapping) -> list[AlertNotice]:
    """The alerts of an Alertmanager webhook (version 4) payload; ValueError naming the bad field."""
    if not isinstance(payload, Mapping):
        raise ValueError("payload: must be a JSON object")
    version = payload.get("version")
    if version is not None and str(version) != "4":
        raise ValueError(f"version: {version!r} is not supported (expected \"4\")")
    group_status = payload.get("status")
    if group_status is not None and group_status not in _STATUSES:
        raise ValueError(f"status: {group_status!r} is not firing or resolved")
    alerts = payload.get("alerts")
    if not isinstance(alerts, list):
        raise ValueError("alerts: must be a list")
    common_labels = _text_map(payload.get("commonLabels"), "commonLabels")
    notices = []
    for index, alert in enumerate(alerts):
        where = f"alerts[{index}]"
        if not isinstance(alert, Mapping):
            raise ValueError(f"{where}: must be an object")
        status = alert.get("status", group_status)
        if status not in _STATUSES:
            raise ValueError(f"{where}.status: {status!r} is not firing or resolved")
        labels = {**common_labels, **_text_map(alert.get("labels"), f"{where}.labels")}
        annotations = _text_map(alert.get("annotations"), f"{where}.annotations")
        fingerprint = alert.get("fingerprint")
        if fingerprint is not None and not isinstance(fingerprint, str):
            raise ValueError(f"{where}.fingerprint: must be a string")
        fingerprint = storable(fingerprint or "").strip()
        if not fingerprint:
            # A blank one would make every such alert the same ticket.
            fingerprint = _fingerprint(labels)
        elif len(fingerprint) > MAX_FINGERPRINT:
            raise ValueError(f"{where}.fingerprint: must be at most {MAX_FINGERPRINT} characters")
        elif fingerprint.startswith(DEVICE_FINGERPRINTS):
            # Alertmanager's are hex digits: one in the devices' space is a sender posing as the specimen bank.
            raise ValueError(f"{where}.fingerprint: must not start with {DEVICE_FINGERPRINTS!r}, the specimen "
                             "bank's device alarms")
        alertname = labels.get("alertname") or "unnamed alert"
        subsystem = (labels.get("subsystem") or labels.get("service") or "unknown").strip() or "unknown"
        summary = within_ticket_text((annotations.get("summary") or annotations.get("description") or alertname).strip())
        notices.append(AlertNotice(
            fingerprint=fingerprint,
            status=status,
            subsystem_code=subsystem,
            alertname=alertname,
            severity=(labels.get("severity") or "").strip().lower(),
            summary=summary,
            starts_at=_timestamp(alert.get("startsAt"), f"{where}.startsAt", required=True),
            ends_at=_timestamp(alert.get("endsAt"), f"{where}.endsAt", required=False),
            labels=labels,
        ))
    return notices


def alert_impact_urgency(severity: str) -> tuple[Level, Level]:
    """critical -> (high, high); warning -> (medium, medium); info and anything else -> (low, low)."""
    value = (severity or "").strip().lower()
    if value == "critical":
        return Level.HIGH, Level.HIGH
    if value == "warning":
        return Level.MEDIUM, Level.MEDIUM
    return Level.LOW, Level.LOW
