"""Worklog validation (time already worked, in range, at the account's grade),
overlaps between one engineer's worklogs, and when worklogs become billable."""
from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st
from ticketing.domain.calendar import HOSPITAL_TZ
from ticketing.domain.worklog import (
    CLOCK_SKEW,
    Activity,
    EngineerNotGraded,
    Grade,
    Worklog,
    WorklogBeforeTicketOpened,
    WorklogInFuture,
    WorklogOverlaps,
    billable_on_close,
    opened_minute,
    overlaps,
    refuse_before_opening,
    refuse_overlap,
    validate_worklog,
    worklog_grade,
)
from tuoguan_common.errors import InvalidArgument
from tuoguan_common.roles import GRADES

NOW = dt.datetime(2026, 11, 30, 10, 0, tzinfo=dt.timezone.utc)


def valid(**overrides):
    args = dict(engineer_id="eng-7", account_grade="senior", activity="onsite", started_at=NOW - dt.timedelta(hours=2),
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
    assert valid(account_grade="expert", activity="REMOTE", note="  ").grade == Grade.EXPERT
    assert valid(note=None).note == ""


def test_the_enums_have_the_wire_values():
    assert [a.value for a in Activity] == ["diagnosis", "repair", "onsite", "remote", "change", "travel",
                                           "documentation"]
    assert [g.value for g in Grade] == ["junior", "intermediate", "senior", "expert"]
    # The contract's grades, as identity gives them to accounts.
    assert tuple(g.value for g in Grade) == GRADES


@pytest.mark.parametrize("overrides, field", [
    ({"minutes": 0}, "minutes"),
    ({"minutes": 1441}, "minutes"),
    ({"minutes": -5}, "minutes"),
    ({"minutes": 1.5}, "minutes"),
    ({"minutes": True}, "minutes"),
    ({"requested_grade": "junior"}, "grade"),
    ({"requested_grade": "principal"}, "grade"),
    ({"activity": "coffee"}, "activity"),
    ({"engineer_id": "  "}, "engineer_id"),
    ({"note": "x" * 2001}, "note"),
    ({"note": "toner\x00"}, "note"),
    ({"note": "\x1b[31mred"}, "note"),
    ({"started_at": NOW + dt.timedelta(minutes=5, seconds=1)}, "started_at"),
    ({"started_at": NOW + dt.timedelta(seconds=61), "minutes": 1}, "started_at"),
    ({"started_at": NOW - dt.timedelta(minutes=30), "minutes": 32}, "minutes"),
    ({"started_at": NOW - dt.timedelta(days=31, seconds=1)}, "started_at"),
    ({"started_at": dt.datetime(2026, 11, 30, 9)}, "started_at"),
])
def test_invalid_worklogs_name_the_field(overrides, field):
    assert problem(**overrides).field == field


def test_the_boundaries_are_allowed():
    assert valid(minutes=1).minutes == 1
    assert valid(minutes=1440, started_at=NOW - dt.timedelta(days=1)).minutes == 1440
    assert valid(note="x" * 2000).note == "x" * 2000
    assert valid(note="1. toner\r\n2.\tdrum").note == "1. toner\r\n2.\tdrum"
    valid(started_at=NOW - dt.timedelta(days=31))
    # Ending now, or within the clock skew after it, is time worked.
    assert valid(started_at=NOW - dt.timedelta(minutes=90), minutes=90).ended_at == NOW
    assert valid(started_at=NOW - dt.timedelta(minutes=89), minutes=90).ended_at == NOW + CLOCK_SKEW
    assert valid(started_at=NOW + CLOCK_SKEW - dt.timedelta(minutes=1), minutes=1).ended_at == NOW + CLOCK_SKEW


def test_the_problem_text_lists_the_choices():
    assert "diagnosis, repair, onsite" in problem(activity="coffee").problem


# ---- the grade: the account's, never the client's ---------------------------------------------


@pytest.mark.parametrize("requested", ["", "   ", "senior", " Senior ", "SENIOR"])
def test_the_worklog_is_at_the_accounts_grade_and_the_request_may_only_repeat_it(requested):
    assert worklog_grade("senior", requested) == Grade.SENIOR
    assert valid(account_grade="senior", requested_grade=requested).grade == Grade.SENIOR


@pytest.mark.parametrize("requested", ["junior", "senior", "expert", "guru"])
def test_a_grade_other_than_the_accounts_is_refused_naming_the_accounts(requested):
    refusal = problem(account_grade="intermediate", requested_grade=requested)
    assert (refusal.code, refusal.reason, refusal.field) == ("INVALID_ARGUMENT", "invalid_argument", "grade")
    assert "this account's grade is intermediate" in refusal.problem


@pytest.mark.parametrize("account_grade", ["", "  ", None])
@pytest.mark.parametrize("requested", ["", "senior"])
def test_an_account_without_a_grade_logs_no_time(account_grade, requested):
    with pytest.raises(EngineerNotGraded) as caught:
        valid(account_grade=account_grade, requested_grade=requested)
    refusal = caught.value
    assert (refusal.code, refusal.reason) == ("FAILED_PRECONDITION", "engineer_not_graded")
    assert "an admin sets engineers' grades in identity" in refusal.message
    assert "sign in again" in refusal.message


def test_a_grade_the_contract_does_not_know_is_no_grade():
    with pytest.raises(EngineerNotGraded) as caught:
        worklog_grade("principal")
    assert caught.value.reason == "engineer_not_graded"
    assert "'principal' is not one of junior, intermediate, senior, expert" in caught.value.message


def test_the_accounts_grade_is_read_like_any_other_choice():
    assert worklog_grade(" Expert ") == Grade.EXPERT
    assert worklog_grade("EXPERT", "expert") == Grade.EXPERT


def test_the_clock_skew_is_a_minute():
    assert CLOCK_SKEW == dt.timedelta(seconds=60)


def test_time_not_worked_yet_is_refused_with_its_own_reason():
    ends_later = problem(started_at=NOW - dt.timedelta(minutes=30), minutes=45)
    assert isinstance(ends_later, WorklogInFuture)
    assert (ends_later.code, ends_later.reason, ends_later.field) == \
        ("INVALID_ARGUMENT", "worklog_in_future", "minutes")
    # The end it would have, in the hospital's time.
    assert "2026-11-30T18:15+08:00" in ends_later.problem
    starts_later = problem(started_at=NOW + dt.timedelta(minutes=10), minutes=5)
    assert (starts_later.reason, starts_later.field) == ("worklog_in_future", "started_at")
    assert valid(started_at=NOW - dt.timedelta(minutes=89), minutes=90, now=NOW).minutes == 90
    assert problem(started_at=NOW - dt.timedelta(minutes=89), minutes=90,
                   now=NOW - dt.timedelta(microseconds=1)).reason == "worklog_in_future"


@given(st.integers(1, 1440), st.sampled_from(list(Grade)), st.sampled_from(list(Activity)),
       st.integers(0, 31 * 24 * 60 * 60))
def test_anything_in_range_that_ended_is_accepted(minutes, grade, activity, seconds_ago):
    started_at = max(NOW - dt.timedelta(seconds=seconds_ago), NOW - dt.timedelta(days=31))
    started_at = min(started_at, NOW - dt.timedelta(minutes=minutes))
    log = valid(minutes=minutes, account_grade=grade.value, activity=activity.value, started_at=started_at)
    assert (log.minutes, log.grade, log.activity) == (minutes, grade, activity)
    assert log.ended_at <= NOW


@given(st.integers(1, 1440), st.integers(-31 * 24 * 3600, 25 * 3600))
def test_a_worklog_is_accepted_exactly_when_it_ends_by_now_and_its_skew(minutes, offset_seconds):
    started_at = NOW + dt.timedelta(seconds=offset_seconds)
    ended_at = started_at + dt.timedelta(minutes=minutes)
    if ended_at <= NOW + CLOCK_SKEW:
        assert valid(started_at=started_at, minutes=minutes).ended_at == ended_at
    else:
        refusal = problem(started_at=started_at, minutes=minutes)
        assert refusal.reason == "worklog_in_future"
        assert refusal.field == ("started_at" if started_at > NOW + CLOCK_SKEW else "minutes")


# ---- the ticket's opening ----------------------------------------------------------------------

OPENED = dt.datetime(2026, 11, 30, 1, 3, 27, 500, tzinfo=dt.timezone.utc)  # 09:03:27 in the hospital


def test_a_worklog_starting_before_its_ticket_was_opened_is_refused_naming_the_opening():
    # The walkthrough's: a day's work, starting ten days before the ticket was opened.
    log = valid(started_at=OPENED - dt.timedelta(days=10), minutes=1440, now=OPENED + dt.timedelta(hours=1))
    with pytest.raises(WorklogBeforeTicketOpened) as caught:
        refuse_before_opening(log.started_at, OPENED)
    refusal = caught.value
    assert (refusal.code, refusal.reason, refusal.field) == \
        ("INVALID_ARGUMENT", "worklog_before_ticket_opened", "started_at")
    # When it was opened, in the hospital's time, to the minute.
    assert "before the ticket was opened at 2026-11-30T09:03+08:00" in refusal.problem
    assert refusal.opened_at == opened_minute(OPENED)


@pytest.mark.parametrize("start, refused", [
    (OPENED - dt.timedelta(minutes=30), True),  # the form's old default on a fresh ticket
    (dt.datetime(2026, 11, 30, 1, 2, 59, tzinfo=dt.timezone.utc), True),
    (dt.datetime(2026, 11, 30, 9, 3, tzinfo=HOSPITAL_TZ), False),  # the minute it was opened, as typed
    (OPENED, False),
    (OPENED + dt.timedelta(hours=3), False),
])
def test_a_worklog_may_start_from_the_minute_its_ticket_was_opened(start, refused):
    if refused:
        with pytest.raises(WorklogBeforeTicketOpened):
            refuse_before_opening(start, OPENED)
    else:
        assert refuse_before_opening(start, OPENED) is None


@given(st.integers(-3 * 24 * 3600, 3 * 24 * 3600))
def test_the_opening_rule_is_the_minute_of_the_opening_in_any_zone(offset_seconds):
    start = (OPENED + dt.timedelta(seconds=offset_seconds)).astimezone(HOSPITAL_TZ)
    if start < OPENED.replace(second=0, microsecond=0):
        with pytest.raises(WorklogBeforeTicketOpened):
            refuse_before_opening(start, OPENED.astimezone(HOSPITAL_TZ))
    else:
        refuse_before_opening(start, OPENED.astimezone(HOSPITAL_TZ))


# ---- overlaps ---------------------------------------------------------------------------------

T9 = dt.datetime(2025, 11, 4, 1, 0, tzinfo=dt.timezone.utc)  # 09:00 in the hospital


def at(minutes: int) -> dt.datetime:
    return T9 + dt.timedelta(minutes=minutes)


def log_at(start: int, minutes: int) -> Worklog:
    return Worklog("eng-7", Grade.SENIOR, Activity.REPAIR, at(start), minutes)


@pytest.mark.parametrize("a, b, expected", [
    ((0, 60), (30, 90), True),    # the second starts inside the first
    ((30, 90), (0, 60), True),    # and the other way round
    ((0, 60), (10, 20), True),    # inside
    ((0, 60), (0, 60), True),     # the same span
    ((0, 60), (60, 90), False),   # one ends as the next starts: back to back is fine
    ((60, 90), (0, 60), False),
    ((0, 60), (61, 90), False),
    ((0, 1), (0, 1), True),
])
def test_spans_overlap_when_they_share_an_instant(a, b, expected):
    assert overlaps(at(a[0]), at(a[1]), at(b[0]), at(b[1])) == expected


@given(st.integers(0, 20), st.integers(1, 10), st.integers(0, 20), st.integers(1, 10))
def test_overlap_is_a_shared_minute_of_half_open_spans(a, a_len, b, b_len):
    shared = set(range(a, a + a_len)) & set(range(b, b + b_len))
    assert overlaps(at(a), at(a + a_len), at(b), at(b + b_len)) == bool(shared)
    assert overlaps(at(a), at(a + a_len), at(b), at(b + b_len)) == \
        overlaps(at(b), at(b + b_len), at(a), at(a + a_len))


def test_an_overlapping_worklog_is_refused_naming_the_earliest_span_it_overlaps():
    recorded = [(at(120), at(180)), (at(0), at(60)), (at(240), at(300))]
    with pytest.raises(WorklogOverlaps) as caught:
        refuse_overlap(log_at(30, 120), recorded)
    refusal = caught.value
    assert (refusal.code, refusal.reason) == ("FAILED_PRECONDITION", "worklog_overlaps")
    assert (refusal.started_at, refusal.ended_at) == (at(0), at(60))
    assert "from 2025-11-04T09:00+08:00 to 2025-11-04T10:00+08:00" in refusal.message
    # Nothing personal: not the engineer, not what they did.
    assert "eng-7" not in refusal.message and "repair" not in refusal.message


def test_back_to_back_or_apart_is_no_overlap():
    refuse_overlap(log_at(60, 60), [(at(0), at(60)), (at(120), at(180))])
    refuse_overlap(log_at(60, 60), [])


def test_a_close_bills_the_worklogs_of_a_resolved_ticket_only():
    assert billable_on_close(resolved=True)
    assert not billable_on_close(resolved=False)


def test_an_engineer_who_is_or_was_on_the_ticket_logs_time_on_it_nobody_else():
    from ticketing.domain.worklog import NotOnTicket, refuse_not_on_ticket

    refuse_not_on_ticket("e1", assignee_id="e1", was_assigned=False, dispatcher_or_admin=False)
    refuse_not_on_ticket("e1", assignee_id=None, was_assigned=True, dispatcher_or_admin=False)   # handed off
    refuse_not_on_ticket("e1", assignee_id="e2", was_assigned=True, dispatcher_or_admin=False)   # reassigned
    refuse_not_on_ticket("d1", assignee_id="e2", was_assigned=False, dispatcher_or_admin=True)
    with pytest.raises(NotOnTicket) as refused:
        refuse_not_on_ticket("e1", assignee_id="e2", was_assigned=False, dispatcher_or_admin=False)
    assert (refused.value.code, refused.value.reason) == ("PERMISSION_DENIED", "not_assignee")


def test_a_ticket_closed_unresolved_voids_its_worklogs_one_closed_resolved_bills_them():
    from ticketing.domain.worklog import billable_on_close, void_on_close

    assert void_on_close(resolved=False) and not billable_on_close(resolved=False)
    assert not void_on_close(resolved=True) and billable_on_close(resolved=True)
