"""Worklog validation and when worklogs become billable."""
from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st
from ticketing.domain.lifecycle import Status
from ticketing.domain.worklog import Activity, Grade, Worklog, billable, validate_worklog
from tuoguan_common.errors import InvalidArgument

NOW = dt.datetime(2026, 11, 30, 10, 0, tzinfo=dt.timezone.utc)


def valid(**overrides):
    args = dict(engineer_id="eng-7", grade="senior", activity="onsite", started_at=NOW - dt.timedelta(hours=2),
                minutes=90, note="replaced the PACS workstation's NIC", now=NOW)
    args.update(overrides)
    return validate_worklog(**args)


def problem(**overrides) -> InvalidArgument:
    with pytest.raises(InvalidArgument) as caught:
        valid(**overrides)
    return caught.value


def test_a_valid_worklog():
    log = valid()
    assert log == Worklog("eng-7", Grade.SENIOR, Activity.ONSITE, NOW - dt.timedelta(hours=2), 90,
                          "replaced the PACS workstation's NIC")
    assert log.ended_at == NOW - dt.timedelta(minutes=30)
    assert valid(grade=" Expert ", activity="REMOTE", note="  ").grade == Grade.EXPERT
    assert valid(note=None).note == ""


def test_the_enums_have_the_wire_values():
    assert [a.value for a in Activity] == ["diagnosis", "repair", "onsite", "remote", "change", "travel",
                                           "documentation"]
    assert [g.value for g in Grade] == ["junior", "intermediate", "senior", "expert"]


@pytest.mark.parametrize("overrides, field", [
    ({"minutes": 0}, "minutes"),
    ({"minutes": 1441}, "minutes"),
    ({"minutes": -5}, "minutes"),
    ({"minutes": 1.5}, "minutes"),
    ({"minutes": True}, "minutes"),
    ({"grade": "principal"}, "grade"),
    ({"grade": ""}, "grade"),
    ({"activity": "coffee"}, "activity"),
    ({"engineer_id": "  "}, "engineer_id"),
    ({"note": "x" * 2001}, "note"),
    ({"note": "toner\x00"}, "note"),
    ({"note": "\x1b[31mred"}, "note"),
    ({"started_at": NOW + dt.timedelta(minutes=5, seconds=1)}, "started_at"),
    ({"started_at": NOW - dt.timedelta(days=31, seconds=1)}, "started_at"),
    ({"started_at": dt.datetime(2026, 11, 30, 9)}, "started_at"),
])
def test_invalid_worklogs_name_the_field(overrides, field):
    assert problem(**overrides).field == field


def test_the_boundaries_are_allowed():
    assert valid(minutes=1).minutes == 1 and valid(minutes=1440).minutes == 1440
    assert valid(note="x" * 2000).note == "x" * 2000
    assert valid(note="1. toner\r\n2.\tdrum").note == "1. toner\r\n2.\tdrum"
    valid(started_at=NOW + dt.timedelta(minutes=5))
    valid(started_at=NOW - dt.timedelta(days=31))


def test_the_problem_text_lists_the_choices():
    assert "junior, intermediate, senior, expert" in problem(grade="guru").problem


@given(st.integers(1, 1440), st.sampled_from(list(Grade)), st.sampled_from(list(Activity)),
       st.integers(-31 * 24 * 60, 5))
def test_anything_in_range_is_accepted(minutes, grade, activity, offset):
    log = valid(minutes=minutes, grade=grade.value, activity=activity.value,
                started_at=NOW + dt.timedelta(minutes=offset))
    assert (log.minutes, log.grade, log.activity) == (minutes, grade, activity)


@pytest.mark.parametrize("status", list(Status))
def test_worklogs_are_billable_only_once_closed(status):
    assert billable(status) == (status == Status.CLOSED)
