"""Billing's replies as protobuf messages, for the api and for the answers
the cashier stores under idempotency keys."""
from __future__ import annotations

import datetime as dt

from tuoguan.billing.v1 import billing_pb2

from .domain.ledger import TrialBalance
from .domain.payments import Payment
from .domain.reconciliation import Outcome, ReconciliationReport


def _rfc3339(value: dt.datetime | None) -> str:
    if value is None:
        return ""
    return value.astimezone(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def payment_message(payment: Payment) -> billing_pb2.Payment:
    return billing_pb2.Payment(
        payment_id=payment.payment_id, booking_id=payment.booking_id, patient_id=payment.patient_id,
        amount_fen=payment.amount_fen, status=billing_pb2.PaymentStatus.Value(f"PAYMENT_STATUS_{payment.status}"),
        provider_reference=payment.provider_reference or "", failure_reason=payment.failure_reason or "",
        created_at=_rfc3339(payment.created_at), settled_at=_rfc3339(payment.settled_at),
        refunded_fen=payment.refunded_fen, refunded_after_failure_fen=payment.refunded_after_failure_fen,
        refunded_after_failure_at=_rfc3339(payment.refunded_after_failure_at),
    )


def balances_message(trial: TrialBalance) -> billing_pb2.GetLedgerBalancesResponse:
    return billing_pb2.GetLedgerBalancesResponse(
        balances=[billing_pb2.LedgerBalance(account=b.account, debit_fen=b.debit_fen, credit_fen=b.credit_fen,
                                            balance_fen=b.balance_fen) for b in trial.balances],
        total_debit_fen=trial.total_debit_fen, total_credit_fen=trial.total_credit_fen,
    )


def report_message(report: ReconciliationReport) -> billing_pb2.GetReconciliationReportResponse:
    return billing_pb2.GetReconciliationReportResponse(
        business_date=report.business_date.isoformat(),
        captured_fen=report.captured_fen, refunded_fen=report.refunded_fen,
        provider_captured_fen=report.provider_captured_fen, provider_refunded_fen=report.provider_refunded_fen,
        matched=report.matched, mismatched=report.mismatched,
        missing_in_ledger=report.count(Outcome.MISSING_IN_LEDGER),
        missing_at_provider=report.count(Outcome.MISSING_AT_PROVIDER),
        amount_mismatches=report.count(Outcome.AMOUNT_MISMATCH),
        lines=[billing_pb2.ReconciliationLine(
            payment_id=line.payment_id, provider_reference=line.provider_reference, ledger_fen=line.ledger_fen,
            provider_fen=line.provider_fen, outcome=line.outcome.value, kind=line.kind.value, reason=line.reason,
        ) for line in report.lines],
    )
