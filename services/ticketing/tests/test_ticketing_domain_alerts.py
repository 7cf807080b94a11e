"""Alertmanager webhook payloads read into alert notices."""
from __future__ import annotations

import copy
import datetime as dt

import pytest
from ticketing.domain.alerts import (
    MAX_TICKET_TEXT,
    AlertNotice,
    alert_impact_urgency,
    device_alarm_fingerprint,
    device_alarms_prefix,
    parse_alertmanager,
)
from ticketing.domain.priority import Level

UTC = dt.timezone.utc

# A real-shaped Alertmanager v4 notification (as sent by alertmanager 0.27).
PAYLOAD = {
    "receiver": "tuoguan-ticketing",
    "status": "firing",
    "alerts": [
        {
            "status": "firing",
            "labels": {"alertname": "FreezerTemperatureHigh", "severity": "critical", "subsystem": "BIOBANK",
                       "freezer": "F-12", "instance": "iot-gw-3:9100"},
            "annotations": {"summary": "Freezer F-12 above -70 °C", "description": "-64.2 °C for 5 minutes"},
            "startsAt": "2026-11-30T01:02:03.123456789Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus:9090/graph?g0.expr=...",
            "fingerprint": "c2a4f6d9e0b1a3c5",
        },
        {
            "status": "resolved",
            "labels": {"alertname": "HisApiLatencyHigh", "severity": "warning", "service": "his"},
            "annotations": {"description": "p99 above 2 s"},
            "startsAt": "2026-11-30T08:00:00+08:00",
            "endsAt": "2026-11-30T08:20:00+08:00",
            "fingerprint": "0f1e2d3c4b5a6978",
        },
    ],
    "groupLabels": {"alertname": "FreezerTemperatureHigh"},
    "commonLabels": {},
    "commonAnnotations": {},
    "externalURL": "http://alertmanager:9093",
    "version": "4",
    "groupKey": "{}:{alertname=\"FreezerTemperatureHigh\"}",
    "truncatedAlerts": 0,
}


def test_a_real_payload():
    freezer, his = parse_alertmanager(PAYLOAD)
    assert freezer == AlertNotice(
        fingerprint="c2a4f6d9e0b1a3c5", status="firing", subsystem_code="BIOBANK",
        alertname="FreezerTemperatureHigh", severity="critical", summary="Freezer F-12 above -70 °C",
        starts_at=dt.datetime(2026, 11, 30, 1, 2, 3, 123456, tzinfo=UTC), ends_at=None)
    assert freezer.firing and freezer.labels["freezer"] == "F-12"
    assert his.status == "resolved" and not his.firing
    assert his.subsystem_code == "his"  # falls back to the "service" label
    assert his.summary == "p99 above 2 s"  # description when there is no summary
    assert his.ends_at == dt.datetime(2026, 11, 30, 0, 20, tzinfo=UTC)
    assert his.severity == "warning"


def test_no_subsystem_label_is_unknown_and_no_fingerprint_is_derived_from_labels():
    payload = copy.deepcopy(PAYLOAD)
    alert = payload["alerts"][0]
    del alert["labels"]["subsystem"], alert["fingerprint"]
    first = parse_alertmanager(payload)[0]
    assert first.subsystem_code == "unknown"
    assert first.fingerprint and first.fingerprint == parse_alertmanager(copy.deepcopy(payload))[0].fingerprint
    alert["labels"]["freezer"] = "F-13"
    assert parse_alertmanager(payload)[0].fingerprint != first.fingerprint


def test_an_empty_alert_list_is_fine():
    assert parse_alertmanager({"version": "4", "status": "resolved", "alerts": []}) == []


def bad(mutate) -> str:
    payload = copy.deepcopy(PAYLOAD)
    mutate(payload)
    with pytest.raises(ValueError) as caught:
        parse_alertmanager(payload)
    return str(caught.value)


@pytest.mark.parametrize("mutate, field", [
    (lambda p: p.update(version="3"), "version"),
    (lambda p: p.update(alerts=None), "alerts"),
    (lambda p: p.update(alerts={"a": 1}), "alerts"),
    (lambda p: p.update(status="pending"), "status"),
    (lambda p: p["alerts"].append("oops"), "alerts[2]"),
    (lambda p: p["alerts"][1].update(status="silenced"), "alerts[1].status"),
    (lambda p: p["alerts"][0].update(labels=["a"]), "alerts[0].labels"),
    (lambda p: p["alerts"][0]["labels"].update(severity=3), "alerts[0].labels.severity"),
    (lambda p: p["alerts"][0].update(annotations="x"), "alerts[0].annotations"),
    (lambda p: p["alerts"][0].pop("startsAt"), "alerts[0].startsAt"),
    (lambda p: p["alerts"][0].update(startsAt="yesterday"), "alerts[0].startsAt"),
    (lambda p: p["alerts"][0].update(startsAt="2026-11-30T01:02:03"), "alerts[0].startsAt"),
    (lambda p: p["alerts"][1].update(endsAt=17), "alerts[1].endsAt"),
    (lambda p: p["alerts"][0].update(fingerprint=123), "alerts[0].fingerprint"),
    (lambda p: p["alerts"][0].update(fingerprint="f" * 201), "alerts[0].fingerprint"),
    # The specimen bank's alarms' space: only its own events touch a freezer's ticket.
    (lambda p: p["alerts"][1].update(fingerprint="device:FRZ-01:temperature"), "alerts[1].fingerprint"),
    (lambda p: p["alerts"][1].update(fingerprint=" device:FRZ-01:"), "alerts[1].fingerprint"),
])
def test_malformed_payloads_name_the_field(mutate, field):
    assert bad(mutate).startswith(field)


def test_not_an_object_at_all():
    with pytest.raises(ValueError, match="payload"):
        parse_alertmanager(["alerts"])


@pytest.mark.parametrize("severity, expected", [
    ("critical", (Level.HIGH, Level.HIGH)),
    ("CRITICAL", (Level.HIGH, Level.HIGH)),
    ("warning", (Level.MEDIUM, Level.MEDIUM)),
    ("info", (Level.LOW, Level.LOW)),
    ("", (Level.LOW, Level.LOW)),
    ("page", (Level.LOW, Level.LOW)),
])
def test_severity_to_impact_and_urgency(severity, expected):
    assert alert_impact_urgency(severity) == expected


def test_a_storm_of_repeats_has_few_distinct_fingerprints():
    """Thousands of notifications for the same alerts reduce to one key per distinct alert."""
    storm = [PAYLOAD] * 2000
    fingerprints = {notice.fingerprint for payload in storm for notice in parse_alertmanager(payload)}
    assert fingerprints == {"c2a4f6d9e0b1a3c5", "0f1e2d3c4b5a6978"}


def test_a_nul_in_an_alerts_text_is_dropped_not_the_alert():
    payload = copy.deepcopy(PAYLOAD)
    payload["alerts"][0]["annotations"]["summary"] = "Freezer F-12\x00 above -70 °C"
    payload["alerts"][0]["labels"]["freezer"] = "F-\x0012"
    payload["alerts"][0]["fingerprint"] = "c2a4f6d9\x00e0b1a3c5"
    freezer, _ = parse_alertmanager(payload)
    assert freezer.summary == "Freezer F-12 above -70 °C"
    assert freezer.labels["freezer"] == "F-12"
    assert freezer.fingerprint == "c2a4f6d9e0b1a3c5"


def test_a_lone_surrogate_in_an_alerts_text_is_replaced_not_the_alert():
    """"\\ud800" is valid JSON and json.loads reads it, but no UTF-8 can write it: PostgreSQL never took the
    ticket (INTERNAL, and Alertmanager sent the notification again and again). Replaced by U+FFFD, as a
    UTF-8 decoder does with a broken character; a surrogate pair is one character and stays."""
    import json

    payload = copy.deepcopy(PAYLOAD)
    payload["alerts"][0]["annotations"]["summary"] = "Freezer F-12 \ud800above -70 °C \ud83d\ude00"
    payload["alerts"][0]["labels"]["freezer\udfff"] = "F-\udc0012"
    payload["commonLabels"] = {"site": "east\ud800"}
    payload["alerts"][0]["fingerprint"] = "c2a4f6d9\udbffe0b1a3c5"
    freezer, _ = parse_alertmanager(json.loads(json.dumps(payload)))
    assert freezer.summary == "Freezer F-12 \ufffdabove -70 °C \U0001f600"
    assert freezer.labels["freezer\ufffd"] == "F-\ufffd12" and freezer.labels["site"] == "east\ufffd"
    assert freezer.fingerprint == "c2a4f6d9\ufffde0b1a3c5"
    for notice in parse_alertmanager(json.loads(json.dumps(payload))):
        for text in (notice.fingerprint, notice.summary, notice.alertname, notice.subsystem_code, notice.severity,
                     *notice.labels, *notice.labels.values()):
            text.encode("utf-8")  # what psycopg does: no UnicodeEncodeError
    # Without a fingerprint, the one derived from the labels is stable, surrogates and all.
    del payload["alerts"][0]["fingerprint"]
    assert parse_alertmanager(payload)[0].fingerprint == parse_alertmanager(copy.deepcopy(payload))[0].fingerprint
    # A label that is not a string is refused, and the refusal names it in text a reply can carry.
    payload["alerts"][0]["labels"]["bad\ud800"] = 3
    with pytest.raises(ValueError) as caught:
        parse_alertmanager(payload)
    str(caught.value).encode("utf-8")
    assert "bad\ufffd" in str(caught.value)


def test_storable_text():
    from ticketing.domain.alerts import storable

    assert storable("a\x00b\ud800c\udfff") == "ab\ufffdc\ufffd"
    assert storable("冰箱 3 \U0001f600") == "冰箱 3 \U0001f600"


def test_a_blank_fingerprint_is_derived_from_the_labels():
    payload = copy.deepcopy(PAYLOAD)
    payload["alerts"][0]["fingerprint"] = " \t "
    freezer = parse_alertmanager(payload)[0]
    del payload["alerts"][0]["fingerprint"]
    assert freezer.fingerprint and freezer.fingerprint == parse_alertmanager(payload)[0].fingerprint
    payload["alerts"][0]["fingerprint"] = "f" * 200
    assert parse_alertmanager(payload)[0].fingerprint == "f" * 200


def test_a_devices_alarm_fingerprints_start_with_its_prefix_and_no_other_devices():
    assert device_alarm_fingerprint("FRZ-09", "temperature_high") == "device:FRZ-09:temperature_high"
    # Read as "FRZ" with kind "1:door_open" before the id was encoded: the same key as FRZ:1's door.
    assert device_alarm_fingerprint("FRZ", "1:door_open") != device_alarm_fingerprint("FRZ:1", "door_open")
    # Ids without ':' or '%' read as they did before the encoding: their open alarms still clear.
    assert device_alarm_fingerprint("冰箱 3/A", "door_open") == "device:冰箱 3/A:door_open"
    for device in ("FRZ:1", "FRZ%", "FRZ%3A1", "冰箱 3", "FRZ/1"):
        fingerprint = device_alarm_fingerprint(device, "door_open")
        assert fingerprint.startswith(device_alarms_prefix(device))
        assert not fingerprint.startswith(device_alarms_prefix("FRZ"))


def test_a_device_alarm_raised_at_or_before_the_devices_clearance_is_over():
    from ticketing.domain.alerts import alarm_cleared

    raised = dt.datetime(2026, 1, 1, 0, 0, tzinfo=UTC)
    second = dt.timedelta(seconds=1)
    # Raised, then cleared: over, whichever of the two events is handled first.
    assert alarm_cleared(raised, raised + second)
    assert alarm_cleared(raised, raised)                       # the same instant: cleared
    # Raised after the clearance (a new episode), or a clearance older than the open ticket's raise (an
    # earlier episode's, delivered late): not over.
    assert not alarm_cleared(raised, raised - second)
    # Never cleared: not over. A ticket whose raise was not kept (opened before): a clearance clears it.
    assert not alarm_cleared(raised, None)
    assert alarm_cleared(None, raised)
    assert not alarm_cleared(None, None)
    # Instants, whatever their time zone.
    assert alarm_cleared(raised, dt.datetime(2026, 1, 1, 8, 0, tzinfo=dt.timezone(dt.timedelta(hours=8))))


def test_alarm_times_ahead_of_our_clock_are_kept_at_our_time_plus_the_skew():
    from ticketing.domain.alerts import ALARM_CLOCK_SKEW, alarm_cleared, alarm_time

    now = dt.datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
    assert alarm_time(now - dt.timedelta(hours=1), now) == now - dt.timedelta(hours=1)
    assert alarm_time(now + ALARM_CLOCK_SKEW, now) == now + ALARM_CLOCK_SKEW
    # A bank clock gone to 2099 does not silence the device's alarms until then.
    assert alarm_time(dt.datetime(2099, 1, 1, tzinfo=UTC), now) == now + ALARM_CLOCK_SKEW
    # A bank clock an hour fast: an alarm, then its clearance a minute later, handled in order, still clears.
    minute, hour = dt.timedelta(minutes=1), dt.timedelta(hours=1)
    assert alarm_cleared(alarm_time(now + hour, now), alarm_time(now + hour + minute, now + minute))




def test_a_long_summary_is_cut_to_what_a_ticket_keeps_not_refused():
    """Audit: a 300,000-character annotation became a ticket's description, past the 10,000 a person's ticket
    may have."""
    payload = copy.deepcopy(PAYLOAD)
    payload["alerts"][0]["annotations"]["summary"] = "x" * 300_000
    payload["alerts"][1]["annotations"]["description"] = "y" * MAX_TICKET_TEXT
    freezer, his = parse_alertmanager(payload)
    assert len(freezer.summary) == MAX_TICKET_TEXT and freezer.summary.endswith("x…")
    assert his.summary == "y" * MAX_TICKET_TEXT  # at the limit: kept whole
