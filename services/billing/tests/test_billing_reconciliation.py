"""The daily reconciliation on the real PostgreSQL: the ledger against the
sandbox provider's own records, through the API and the CLI."""
from __future__ import annotations

import csv
import datetime as dt
import os
import subprocess
import sys
import time

import pytest

from billing import finance
from billing.domain.reconciliation import SHANGHAI, Outcome, business_date_of
from tuoguan.billing.v1 import billing_pb2 as pb
from tuoguan_common import auth, outbox
from tuoguan_common.testing import REPO

pytestmark = pytest.mark.integration

FEE = 3100


def away_from_midnight() -> str:
    """Today's business date, once far enough from Shanghai midnight that
    every movement of the test falls on it."""
    now = outbox.utcnow()
    next_midnight = dt.datetime.combine(business_date_of(now) + dt.timedelta(days=1), dt.time(), tzinfo=SHANGHAI)
    if next_midnight - now < dt.timedelta(seconds=15):
        time.sleep((next_midnight - now).total_seconds() + 0.1)
    return business_date_of(outbox.utcnow()).isoformat()


def report(cashier, day: str) -> dict:
    lines = finance.reconciliation_report(cashier.store, cashier.provider, dt.date.fromisoformat(day)).lines
    return {(line.kind.value, line.payment_id): line for line in lines}


def test_the_day_matches_the_ledger_with_the_providers_records(billing):
    day = away_from_midnight()
    kept = billing.new_payment(fee_fen=FEE)
    refunded = billing.new_payment(fee_fen=FEE)
    unanswered = billing.new_payment("tok_timeout", FEE)
    cashier = billing.cashier(after=billing.SETTLED)
    cashier.settle_pending()
    with billing.db.transaction() as cur:
        cashier.refund_for_booking(cur, payment_id=refunded.payment_id, booking_id=refunded.booking_id,
                                   reason="booking_cancelled")
    billing.cashier(after=billing.TIMED_OUT).give_up_on_unanswered()

    # The provider captured the unanswered one later; the ledger does not know yet.
    late = billing.cashier(after=billing.LATE_CAPTURED)
    lines = report(late, day)
    assert {key: line.outcome for key, line in lines.items()} == {
        ("capture", kept.payment_id): Outcome.MATCHED,
        ("capture", refunded.payment_id): Outcome.MATCHED,
        ("refund", refunded.payment_id): Outcome.MATCHED,
        ("capture", unanswered.payment_id): Outcome.MISSING_IN_LEDGER,
    }
    missing = lines[("capture", unanswered.payment_id)]
    assert (missing.ledger_fen, missing.provider_fen) == (0, 3100)
    assert missing.provider_reference == unanswered.provider_reference

    late.reconcile_unknown()
    assert {line.outcome for line in report(late, day).values()} == {Outcome.MATCHED}


def test_the_report_through_the_api_and_the_cli(billing, tmp_path):
    day = away_from_midnight()
    kept = billing.new_payment(fee_fen=FEE)
    refunded = billing.new_payment(fee_fen=FEE)
    billing.cashier(after=billing.SETTLED).settle_pending()
    with billing.db.transaction() as cur:
        billing.cashier(after=billing.SETTLED).refund_for_booking(cur, payment_id=refunded.payment_id,
                                                        booking_id=refunded.booking_id, reason="booking_cancelled")
    time.sleep(0.3)  # the API's provider reads the real clock: let the captures settle there too
    answer = billing.stub.GetReconciliationReport(pb.GetReconciliationReportRequest(business_date=day),
                                                  metadata=billing.token(None, auth.FINANCE))
    assert answer.business_date == day
    assert (answer.matched, answer.mismatched) == (3, 0)
    assert (answer.captured_fen, answer.refunded_fen) == (6200, 3100)
    assert (answer.provider_captured_fen, answer.provider_refunded_fen) == (6200, 3100)
    assert {(line.kind, line.payment_id, line.outcome, line.reason) for line in answer.lines} == {
        ("capture", kept.payment_id, "matched", ""), ("capture", refunded.payment_id, "matched", ""),
        ("refund", refunded.payment_id, "matched", "booking_cancelled"),
    }

    out = tmp_path / "report.csv"
    env = {**os.environ, "BILLING_DATABASE_URL": billing.db.url}
    done = subprocess.run([sys.executable, "-m", "billing.reconcile", "--date", day, "--csv", str(out)],
                          env=env, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "Reconciliation" in done.stdout and "62.00" in done.stdout and "31.00" in done.stdout
    with out.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert {(r["kind"], r["payment_id"], r["ledger_fen"], r["provider_fen"], r["outcome"], r["reason"])
            for r in rows} == {
        ("capture", kept.payment_id, "3100", "3100", "matched", ""),
        ("capture", refunded.payment_id, "3100", "3100", "matched", ""),
        ("refund", refunded.payment_id, "3100", "3100", "matched", "booking_cancelled"),
    }


@pytest.mark.parametrize("date", ["2026-02-30", "9999-12-31", "0001-01-01", "2026-W48-4"])
def test_the_cli_refuses_a_bad_date(date):
    done = subprocess.run([sys.executable, "-m", "billing.reconcile", "--date", date],
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "--date" in done.stderr and "Traceback" not in done.stderr
