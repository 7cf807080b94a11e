"""Billing's gRPC API: parse the request, ask the cashier or finance, reply.

``python -m billing.api`` serves it (tuoguan_common.api_main).
"""
from __future__ import annotations

import grpc

from tuoguan.billing.v1 import billing_pb2, billing_pb2_grpc
from tuoguan_common import api_main, auth, outbox, paging, telemetry
from tuoguan_common.auth import current_principal
from tuoguan_common.config import Settings
from tuoguan_common.db import Database
from tuoguan_common.errors import idempotency_key
from tuoguan_common.grpc_server import current_token
from tuoguan_common.payment_tickets import PaymentTickets

from . import finance
from .cashier import Cashier, FeeRequest
from .checkout import Checkout
from .domain import payments
from .domain.reconciliation import parse_business_date
from .exceptions import PaymentNotFound, answers_rule_errors
from .messages import balances_message, payment_message, report_message
from .migrate import MIGRATIONS_DIR
from .providers import build_provider
from .providers.base import PaymentProvider
from .registration_client import BookingSource, RegistrationClient
from .settings import BillingSettings
from .store import BillingStore

# Who may read any patient's payments; a patient reads only their own.
PAYMENT_READERS = (auth.FINANCE, auth.ADMIN, auth.SERVICE)
FINANCE_ROLES = (auth.FINANCE, auth.ADMIN)
# The most of a patient's payments one ListPayments page holds (and gives when asked for no number).
MAX_PAYMENTS_PAGE = 100


class BillingServicer(billing_pb2_grpc.BillingServiceServicer):
    """Each method parses, asks the cashier or finance, and replies; the
    domain's refusals leave it as service errors (answers_rule_errors)."""

    def __init__(self, cashier: Cashier, checkout: Checkout):
        self.cashier = cashier
        self.checkout = checkout
        self.store = cashier.store

    @answers_rule_errors
    async def PayRegistrationFee(self, request, context):
        # A coroutine, unlike the other methods: payments in a surge share
        # transactions (billing.checkout) and wait for registration and the
        # provider without a thread each.
        patient = current_principal().require(auth.PATIENT)
        booking_id = payments.check_booking_id(request.booking_id)
        method_token = payments.check_method_token(request.payment_method_token)
        key = idempotency_key(request.idempotency_key)
        # The request as parsed: spellings of one booking id are one request,
        # with or without the hold's ticket.
        parsed = outbox.as_parsed(request, booking_id=booking_id, payment_method_token=method_token,
                                  idempotency_key=key, payment_ticket="")
        return await self.checkout.pay_fee(FeeRequest(
            patient_id=patient.subject, booking_id=booking_id, method_token=method_token, idempotency_key=key,
            fingerprint=outbox.request_fingerprint(parsed), bearer=current_token(), trace_carrier=telemetry.inject(),
            payment_ticket=request.payment_ticket,
        ))

    @answers_rule_errors
    def GetPayment(self, request, context):
        caller = current_principal()
        payment_id = payments.check_payment_id(request.payment_id)
        with self.store.database.transaction() as cur:
            payment = self.store.get_payment(cur, payment_id)
        if payment is None:
            raise PaymentNotFound(f"no payment {payment_id}")
        caller.require_owner_or(payment.patient_id, *PAYMENT_READERS)
        return billing_pb2.GetPaymentResponse(payment=payment_message(payment))

    @answers_rule_errors
    def ListPayments(self, request, context):
        """A booking's payments; without a booking id, a page of the caller's own."""
        caller = current_principal()
        booking_id = payments.check_booking_id(request.booking_id) if request.booking_id.strip() else None
        page = paging.page("payments", request.page_size, request.page_token, default=MAX_PAYMENTS_PAGE,
                           maximum=MAX_PAYMENTS_PAGE)
        next_page_token = ""
        with self.store.database.transaction() as cur:
            if booking_id:
                found = self.store.payments_for_booking(cur, booking_id)
            else:
                found, next_page_token = self.store.payments_of_patient(cur, caller.subject, page)
        for payment in found:
            caller.require_owner_or(payment.patient_id, *PAYMENT_READERS)
        return billing_pb2.ListPaymentsResponse(payments=[payment_message(p) for p in found],
                                                next_page_token=next_page_token)

    @answers_rule_errors
    def GetLedgerBalances(self, request, context):
        current_principal().require(*FINANCE_ROLES)
        return balances_message(finance.ledger_balances(self.store))

    @answers_rule_errors
    def GetReconciliationReport(self, request, context):
        current_principal().require(*FINANCE_ROLES)
        business_date = parse_business_date(request.business_date)
        return report_message(finance.reconciliation_report(self.store, self.cashier.provider, business_date))


def build_cashier(database: Database, *, provider: PaymentProvider | None = None,
                  billing_settings: BillingSettings | None = None, pool_size: int = 4) -> Cashier:
    """The api's cashier; tests hand in their own provider."""
    billing_settings = billing_settings or BillingSettings.from_env()
    if provider is None:
        provider = build_provider(billing_settings, database.url, pool_size=pool_size)
    return Cashier(BillingStore(database), provider, payment_timeout=billing_settings.payment_timeout,
                   authorize_grace=billing_settings.authorize_grace, batch_size=billing_settings.batch_size)


def register(server: grpc.Server, settings: Settings | None, database: Database, *,
             bookings: BookingSource | None = None, provider: PaymentProvider | None = None,
             tickets: PaymentTickets | None = None) -> list[str]:
    """Adds billing's servicer; tests hand in their own registration, provider
    and ticket key (otherwise from the environment)."""
    pool_size = settings.db_pool_size if settings is not None else 4
    billing_settings = BillingSettings.from_env()
    cashier = build_cashier(database, provider=provider, billing_settings=billing_settings, pool_size=pool_size)
    if bookings is None:
        bookings = RegistrationClient(billing_settings.registration_address,
                                      timeout=billing_settings.registration_timeout_seconds)
    checkout = Checkout(cashier, bookings, max_batch=billing_settings.pay_batch_max,
                        tickets=tickets if tickets is not None else billing_settings.payment_tickets)
    billing_pb2_grpc.add_BillingServiceServicer_to_server(BillingServicer(cashier, checkout), server)
    return [billing_pb2.DESCRIPTOR.services_by_name["BillingService"].full_name]


# Past the platform's 128, payments are not turned away: a payment waiting
# on its group commit holds no thread, and its patient already holds a
# place. At 128, billing refused 900-2,500 payments of a 60 s surge at 300/s
# on 2 cores (holds made, then not paid for); at 512, 95 and 0, registration's
# hold admission turning the excess away before anything was held.
MAX_IN_FLIGHT = 512


def main() -> None:
    api_main.run("billing", register, migrations_dir=MIGRATIONS_DIR, max_in_flight=MAX_IN_FLIGHT)


if __name__ == "__main__":
    main()
