"""Billing's own settings, read from the environment once at start-up."""
from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass

from tuoguan_common.config import PORTS, env_number, service_address
from tuoguan_common.payment_tickets import PaymentTickets


def _number(name: str, default, kind=float):
    return env_number(name, default, kind, minimum=0)


@dataclass(frozen=True)
class BillingSettings:
    registration_address: str
    registration_timeout_seconds: float
    # How long the provider may leave a payment unanswered before it is UNKNOWN.
    payment_timeout: dt.timedelta
    settle_interval_seconds: float
    # How old a payment opened but not authorised must be before the worker
    # finishes its authorisation (the api's own request normally does it in
    # milliseconds), and how often the worker looks for such payments.
    authorize_grace: dt.timedelta
    authorize_retry_interval_seconds: float
    timeout_check_interval_seconds: float
    reconcile_interval_seconds: float
    # How long after billing failed a payment without the provider's word a
    # charge may still land on it (at least the acquirer's longest
    # authorisation), and how often the worker asks the provider about such payments.
    late_charge_window: dt.timedelta
    late_charge_check_interval_seconds: float
    batch_size: int
    # The most payments one of the api's transactions takes in a surge (billing.checkout).
    pay_batch_max: int
    worker_metrics_port: int
    # The sandbox provider: where its books are (default: billing's database),
    # how long it takes to settle, and when a tok_timeout charge is captured.
    sandbox_database_url: str | None
    sandbox_settle_delay: dt.timedelta
    sandbox_late_capture_delay: dt.timedelta
    # Verifies registration's payment tickets (None: billing asks registration about every booking).
    payment_tickets: PaymentTickets | None = None

    @classmethod
    def from_env(cls) -> "BillingSettings":
        return cls(
            registration_address=service_address("registration", PORTS["registration"]["grpc"]),
            registration_timeout_seconds=_number("BILLING_REGISTRATION_TIMEOUT_SECONDS", 3.0),
            payment_timeout=dt.timedelta(seconds=_number("BILLING_PAYMENT_TIMEOUT_SECONDS", 5.0)),
            settle_interval_seconds=_number("BILLING_SETTLE_INTERVAL_SECONDS", 0.1),
            authorize_grace=dt.timedelta(seconds=_number("BILLING_AUTHORIZE_GRACE_SECONDS", 5.0)),
            authorize_retry_interval_seconds=_number("BILLING_AUTHORIZE_RETRY_INTERVAL_SECONDS", 1.0),
            timeout_check_interval_seconds=_number("BILLING_TIMEOUT_CHECK_INTERVAL_SECONDS", 0.5),
            reconcile_interval_seconds=_number("BILLING_RECONCILE_INTERVAL_SECONDS", 10.0),
            late_charge_window=dt.timedelta(seconds=_number("BILLING_LATE_CHARGE_WINDOW_SECONDS", 86400.0)),
            late_charge_check_interval_seconds=_number("BILLING_LATE_CHARGE_CHECK_INTERVAL_SECONDS", 60.0),
            # At least 1: every timer takes at most a batch, and with 0 the worker would run and do nothing.
            batch_size=env_number("BILLING_BATCH_SIZE", 500, int, minimum=1),
            pay_batch_max=max(1, _number("BILLING_PAY_BATCH_MAX", 128, int)),
            worker_metrics_port=_number("BILLING_WORKER_METRICS_PORT", PORTS["billing"]["worker_metrics"], int),
            sandbox_database_url=os.environ.get("SANDBOX_PROVIDER_DATABASE_URL") or None,
            sandbox_settle_delay=dt.timedelta(milliseconds=_number("SANDBOX_SETTLE_DELAY_MS", 200)),
            sandbox_late_capture_delay=dt.timedelta(milliseconds=_number("SANDBOX_LATE_CAPTURE_MS", 2000)),
            payment_tickets=PaymentTickets.from_env(),
        )
