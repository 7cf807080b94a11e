"""``python -m billing.reconcile --date YYYY-MM-DD``: the day's reconciliation
of the ledger against the provider, as a table on the terminal and a CSV file.

The CSV keeps amounts in fen (for machines); the table shows yuan (for people).
"""
from __future__ import annotations

import argparse
import csv
import sys
from decimal import Decimal
from pathlib import Path

from rich.console import Console
from rich.table import Table

from tuoguan_common.config import service_database_url
from tuoguan_common.db import Database

from . import finance
from .domain.errors import BadInput
from .domain.reconciliation import Outcome, ReconciliationReport, parse_business_date
from .providers import build_provider
from .settings import BillingSettings
from .store import BillingStore

CSV_COLUMNS = ("kind", "payment_id", "provider_reference", "ledger_fen", "provider_fen", "outcome", "reason")
_STYLE = {Outcome.MATCHED: "green", Outcome.AMOUNT_MISMATCH: "yellow"}


def yuan(fen: int) -> str:
    return f"{Decimal(fen) / 100:,.2f}"


def write_csv(report: ReconciliationReport, path: Path) -> Path:
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(CSV_COLUMNS)
        for line in report.lines:
            writer.writerow((line.kind.value, line.payment_id, line.provider_reference, line.ledger_fen,
                             line.provider_fen, line.outcome.value, line.reason))
    return path


def render(report: ReconciliationReport, console: Console) -> None:
    summary = Table(title=f"Reconciliation {report.business_date.isoformat()} (Asia/Shanghai)", show_lines=False)
    summary.add_column("")
    summary.add_column("Ledger (yuan)", justify="right")
    summary.add_column("Provider (yuan)", justify="right")
    summary.add_row("Captured", yuan(report.captured_fen), yuan(report.provider_captured_fen))
    summary.add_row("Refunded", yuan(report.refunded_fen), yuan(report.provider_refunded_fen))
    console.print(summary)
    counts = ", ".join(f"{outcome.value}: {report.count(outcome)}" for outcome in Outcome)
    console.print(f"{len(report.lines)} movements: {counts}")

    lines = Table(title="Movements, differences first")
    for column, justify in (("Kind", "left"), ("Payment", "left"), ("Provider reference", "left"),
                            ("Ledger (yuan)", "right"), ("Provider (yuan)", "right"), ("Outcome", "left"),
                            ("Reason", "left")):
        lines.add_column(column, justify=justify)
    for line in report.lines:
        lines.add_row(line.kind.value, line.payment_id, line.provider_reference, yuan(line.ledger_fen),
                      yuan(line.provider_fen), line.outcome.value, line.reason, style=_STYLE.get(line.outcome, "red"))
    console.print(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m billing.reconcile", description=__doc__.splitlines()[0])
    parser.add_argument("--date", required=True, help="business date in Asia/Shanghai, YYYY-MM-DD")
    parser.add_argument("--csv", type=Path, help="where to write the CSV (default: reconciliation-<date>.csv)")
    parser.add_argument("--fail-on-difference", action="store_true",
                        help="exit with status 1 when any movement does not match (for a scheduled job)")
    args = parser.parse_args(argv)
    try:
        business_date = parse_business_date(args.date)
    except BadInput as exc:
        parser.error(f"--date {exc.problem}")

    url = service_database_url("billing")
    database = Database(url, max_size=2, name="billing-reconcile").open()
    provider = build_provider(BillingSettings.from_env(), url, pool_size=1)
    try:
        report = finance.reconciliation_report(BillingStore(database), provider, business_date)
    finally:
        provider.close()
        database.close()

    render(report, Console())
    path = write_csv(report, args.csv or Path(f"reconciliation-{business_date.isoformat()}.csv"))
    print(f"CSV written to {path}")
    return 1 if args.fail_on_difference and report.mismatched else 0


if __name__ == "__main__":
    sys.exit(main())
