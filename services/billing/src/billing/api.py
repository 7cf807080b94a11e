"""Billing's gRPC API: parse the request, ask the cashier or finance, reply.

``python -m billing.api`` serves it (tuoguan_common.api_main).
"""
from __future__ import annotations

import datetime as dt

import grpc

from tuoguan.billing.v1 import billing_pb2, billing_pb2_grpc
from tuoguan_common import api_main, auth, metrics, outbox
from tuoguan_common.auth import current_principal
from tuoguan_common.config import Settings
from tuoguan_common.db import Database
from tuoguan_common.errors import require
from tuoguan_common.grpc_server import current_token

from . import finance
from .cashier import Cashier
from .domain import payments
from .domain.ledger import TrialBalance
from .domain.payments import Payment
from .domain.reconciliation import Outcome, ReconciliationReport, parse_business_date
from .exceptions import PaymentNotFound
from .migrate import MIGRATIONS_DIR
from .providers import build_provider
from .providers.base import PaymentProvider
from .registration_client import BookingSource, RegistrationClient
from .settings import BillingSettings
from .store import BillingStore

PAY_SCOPE = "billing.PayRegistrationFee"
# Who may read any patient's payments; a patient reads only their own.
PAYMENT_READERS = (auth.FINANCE, auth.ADMIN, auth.SERVICE)
FINANCE_ROLES = (auth.FINANCE, auth.ADMIN)


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
        refunded_fen=payment.refunded_fen,
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
            provider_fen=line.provider_fen, outcome=line.outcome.value, kind=line.kind.value,
        ) for line in report.lines],
    )


class BillingServicer(billing_pb2_grpc.BillingServiceServicer):
    def __init__(self, cashier: Cashier):
        self.cashier = cashier
        self.store = cashier.store

    def PayRegistrationFee(self, request, context):
        patient = current_principal().require(auth.PATIENT)
        booking_id = require(request.booking_id, "booking_id")
        method_token = payments.check_method_token(request.payment_method_token)
        key = require(request.idempotency_key, "idempotency_key")
        with self.store.database.transaction() as cur:
            first_answer = outbox.claim_key(cur, PAY_SCOPE, patient.subject, key, outbox.request_fingerprint(request))
            if first_answer is not None:
                return billing_pb2.PayRegistrationFeeResponse.FromString(first_answer)
            payment = self.cashier.open_payment(cur, patient_id=patient.subject, booking_id=booking_id,
                                                method_token=method_token, idempotency_key=key,
                                                bearer=current_token())
            response = billing_pb2.PayRegistrationFeeResponse(payment=payment_message(payment))
            outbox.store_response(cur, PAY_SCOPE, patient.subject, key, response)
        metrics.BILLING_PAYMENTS.labels("pending").inc()
        return response

    def GetPayment(self, request, context):
        caller = current_principal()
        payment_id = payments.check_payment_id(request.payment_id)
        with self.store.database.transaction() as cur:
            payment = self.store.get_payment(cur, payment_id)
        if payment is None:
            raise PaymentNotFound(f"no payment {payment_id}")
        caller.require_owner_or(payment.patient_id, *PAYMENT_READERS)
        return billing_pb2.GetPaymentResponse(payment=payment_message(payment))

    def ListPayments(self, request, context):
        """A booking's payments; without a booking id, the caller's own."""
        caller = current_principal()
        booking_id = request.booking_id.strip()
        with self.store.database.transaction() as cur:
            found = (self.store.payments_for_booking(cur, booking_id) if booking_id
                     else self.store.payments_of_patient(cur, caller.subject))
        for payment in found:
            caller.require_owner_or(payment.patient_id, *PAYMENT_READERS)
        return billing_pb2.ListPaymentsResponse(payments=[payment_message(p) for p in found])

    def GetLedgerBalances(self, request, context):
        current_principal().require(*FINANCE_ROLES)
        return balances_message(finance.ledger_balances(self.store))

    def GetReconciliationReport(self, request, context):
        current_principal().require(*FINANCE_ROLES)
        business_date = parse_business_date(request.business_date)
        return report_message(finance.reconciliation_report(self.store, self.cashier.provider, business_date))


def build_cashier(database: Database, *, bookings: BookingSource | None = None,
                  provider: PaymentProvider | None = None, billing_settings: BillingSettings | None = None,
                  pool_size: int = 4) -> Cashier:
    """The api's cashier; tests hand in their own booking source or provider."""
    billing_settings = billing_settings or BillingSettings.from_env()
    if bookings is None:
        bookings = RegistrationClient(billing_settings.registration_address,
                                      timeout=billing_settings.registration_timeout_seconds)
    if provider is None:
        provider = build_provider(billing_settings, database.url, pool_size=pool_size)
    return Cashier(BillingStore(database), provider, bookings=bookings,
                   payment_timeout=billing_settings.payment_timeout, batch_size=billing_settings.batch_size)


def register(server: grpc.Server, settings: Settings | None, database: Database, *,
             bookings: BookingSource | None = None, provider: PaymentProvider | None = None) -> list[str]:
    pool_size = settings.db_pool_size if settings is not None else 4
    cashier = build_cashier(database, bookings=bookings, provider=provider, pool_size=pool_size)
    billing_pb2_grpc.add_BillingServiceServicer_to_server(BillingServicer(cashier), server)
    return [billing_pb2.DESCRIPTOR.services_by_name["BillingService"].full_name]


def main() -> None:
    api_main.run("billing", register, migrations_dir=MIGRATIONS_DIR)


if __name__ == "__main__":
    main()
