"""The daily reconciliation's matching and calendar, without I/O."""
from __future__ import annotations

import datetime as dt

import pytest

from billing.domain.errors import BadInput
from billing.domain.reconciliation import (
    Movement,
    MovementKind,
    Outcome,
    business_date_of,
    business_day,
    movement_reason,
    parse_business_date,
    reconcile,
)

DAY = dt.date(2026, 11, 26)
C, R = MovementKind.CAPTURE, MovementKind.REFUND


def test_a_shanghai_day_starts_at_16_utc_the_day_before():
    start, end = business_day(DAY)
    assert start == dt.datetime(2026, 11, 25, 16, tzinfo=dt.timezone.utc)
    assert end - start == dt.timedelta(days=1)
    assert business_date_of(start) == DAY
    assert business_date_of(end - dt.timedelta(microseconds=1)) == DAY
    assert business_date_of(end) == DAY + dt.timedelta(days=1)


@pytest.mark.parametrize("text", ["", "2026-13-01", "26-11-2026", "20261126", "yesterday",
                                  # ISO week and ordinal dates, ten characters like YYYY-MM-DD
                                  "2026-W48-4", "2026W484", "2026-330", "\u0662\u0660\u0662\u0666-11-26",
                                  "2026-11-26T00:00", "2026-11-26\n1"])
def test_bad_dates_are_invalid_arguments(text):
    with pytest.raises(BadInput) as caught:
        parse_business_date(text)
    assert caught.value.field == "business_date"
    assert caught.value.problem.startswith("is")


@pytest.mark.parametrize("text", ["9999-12-31", "0001-01-01", "1999-12-31", "3000-01-01"])
def test_dates_out_of_range_are_invalid_arguments(text):
    # 0001-01-01 and 9999-12-31 have no UTC instants for their Shanghai day (OverflowError).
    with pytest.raises(BadInput) as caught:
        parse_business_date(text)
    assert (caught.value.field, caught.value.problem) == ("business_date", "is out of range (2000-01-01 to 2999-12-31)")


@pytest.mark.parametrize("text", ["2000-01-01", "2999-12-31"])
def test_the_range_ends_are_business_days(text):
    day = parse_business_date(text)
    start, end = business_day(day)
    assert business_date_of(start) == day and end - start == dt.timedelta(days=1)


def test_parse_a_date():
    assert parse_business_date(" 2026-11-26 ") == DAY


def test_every_difference_is_named_and_listed_first():
    ledger = [
        Movement(C, "p1", "ch1", 5000),
        Movement(C, "p2", "ch2", 5000),
        Movement(R, "p1", "ch1", 5000),
        Movement(C, "p4", "ch4", 3000),
    ]
    provider = [
        Movement(C, "p1", "ch1", 5000),
        Movement(C, "p2", "ch2", 4000),
        Movement(R, "p1", "ch1", 5000),
        Movement(C, "p3", "ch3", 7000),
    ]
    report = reconcile(DAY, ledger, provider)
    outcomes = {(line.kind, line.payment_id): line.outcome for line in report.lines}
    assert outcomes == {
        (C, "p1"): Outcome.MATCHED, (R, "p1"): Outcome.MATCHED,
        (C, "p2"): Outcome.AMOUNT_MISMATCH,
        (C, "p3"): Outcome.MISSING_IN_LEDGER,
        (C, "p4"): Outcome.MISSING_AT_PROVIDER,
    }
    assert [line.outcome for line in report.lines][:3] == [
        Outcome.MISSING_IN_LEDGER, Outcome.MISSING_AT_PROVIDER, Outcome.AMOUNT_MISMATCH,
    ]
    assert (report.matched, report.mismatched) == (2, 3)
    assert (report.captured_fen, report.refunded_fen) == (13000, 5000)
    assert (report.provider_captured_fen, report.provider_refunded_fen) == (16000, 5000)
    missing = next(line for line in report.lines if line.payment_id == "p3")
    assert (missing.ledger_fen, missing.provider_fen, missing.provider_reference) == (0, 7000, "ch3")


def test_a_movement_recorded_twice_is_not_a_match():
    report = reconcile(DAY, [Movement(C, "p1", "ch1", 5000)] * 2, [Movement(C, "p1", "ch1", 5000)])
    assert [line.outcome for line in report.lines] == [Outcome.AMOUNT_MISMATCH]


def test_an_empty_day_reconciles():
    report = reconcile(DAY, [], [])
    assert report.lines == () and report.matched == report.mismatched == 0


@pytest.mark.parametrize("kind,refund_reason,reason", [
    (R, "booking_cancelled", "booking_cancelled"),
    (R, "charged_after_failure", "charged_after_failure"),
    (C, "charged_after_failure", "charged_after_failure"),
    (C, "booking_cancelled", ""),
    (C, None, ""),
])
def test_a_movement_says_why_the_money_moved(kind, refund_reason, reason):
    assert movement_reason(kind, refund_reason) == reason


def test_a_line_keeps_the_ledgers_reason():
    ledger = [Movement(C, "p1", "ch1", 5000, "charged_after_failure"),
              Movement(R, "p1", "ch1", 5000, "charged_after_failure"),
              Movement(R, "p2", "ch2", 5000, "booking_cancelled")]
    provider = [Movement(C, "p1", "ch1", 5000), Movement(R, "p1", "ch1", 5000), Movement(R, "p3", "ch3", 100)]
    lines = {(line.kind, line.payment_id): line.reason for line in reconcile(DAY, ledger, provider).lines}
    assert lines == {(C, "p1"): "charged_after_failure", (R, "p1"): "charged_after_failure",
                     (R, "p2"): "booking_cancelled", (R, "p3"): ""}
