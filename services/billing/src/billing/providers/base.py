"""The payment-provider port: what billing asks of any acquirer.

Billing never learns a card number; it hands the provider a payment method
token and the amount, and the provider answers later. Every call that moves
money takes an idempotency key, so a retried call never moves it twice.
"""
from __future__ import annotations

import abc
import datetime as dt
import time
from dataclasses import dataclass
from typing import Sequence

from tuoguan_common import metrics

from ..domain.payments import ChargeState, ChargeStatus
from ..domain.reconciliation import Movement
from ..exceptions import ProviderRequestConflict, ProviderUnavailable, UnknownPaymentMethod


@dataclass(frozen=True)
class Authorization:
    reference: str
    state: ChargeState


@dataclass(frozen=True)
class ChargeRequest:
    """One charge to authorise: ``authorize``'s arguments."""

    payment_id: str
    amount_fen: int
    method_token: str
    idempotency_key: str


# A refusal that concerns one charge of a batch, not the call.
ChargeRefusal = (UnknownPaymentMethod, ProviderRequestConflict, ProviderUnavailable)


@dataclass(frozen=True)
class RefundReceipt:
    reference: str
    charge_reference: str
    amount_fen: int
    refunded_at: dt.datetime


class PaymentProvider(abc.ABC):
    # Names the ledger's clearing account: asset:provider_clearing:<name>.
    name: str

    @abc.abstractmethod
    def authorize(self, payment_id: str, amount_fen: int, method_token: str, idempotency_key: str) -> Authorization:
        """Starts a charge; the answer is PENDING and settles later.

        Raises UnknownPaymentMethod, ProviderUnavailable, ProviderRequestConflict.
        """

    def authorize_many(self, charges: Sequence[ChargeRequest]) -> list[Authorization | Exception]:
        """``authorize`` for many charges at once, each with its own answer:
        its Authorization or the refusal that concerns it alone. An acquirer
        that takes batches overrides it; this asks about one charge at a time."""
        answers: list[Authorization | Exception] = []
        for charge in charges:
            try:
                answers.append(self.authorize(charge.payment_id, charge.amount_fen, charge.method_token,
                                              charge.idempotency_key))
            except ChargeRefusal as exc:
                answers.append(exc)
        return answers

    @abc.abstractmethod
    def authorizations(self, idempotency_keys: Sequence[str]) -> dict[str, str]:
        """The charges the provider has made under these authorisation keys,
        key -> reference; a key it never saw is left out. Raises ProviderUnavailable."""

    @abc.abstractmethod
    def poll(self, references: Sequence[str]) -> list[ChargeStatus]:
        """The online status of many charges at once. A charge the provider
        gives no answer for is left out of the list."""

    @abc.abstractmethod
    def lookup(self, references: Sequence[str]) -> list[ChargeStatus]:
        """The provider's own records of these charges (its back office): the
        authority for reconciliation, also for charges whose online answer never came."""

    @abc.abstractmethod
    def refund(self, charge_reference: str, amount_fen: int, idempotency_key: str) -> RefundReceipt:
        """Gives money of a captured charge back. Raises RefundRefused, ProviderUnavailable."""

    @abc.abstractmethod
    def statement(self, start: dt.datetime, end: dt.datetime) -> list[Movement]:
        """The provider's captures and refunds in [start, end), by its own clock."""

    def close(self) -> None:  # noqa: B027 - optional: most adapters hold nothing to release
        """Releases connections; the default has none."""


class MeteredProvider(PaymentProvider):
    """Times every call to the provider, whichever adapter it is."""

    def __init__(self, inner: PaymentProvider):
        self.inner = inner
        self.name = inner.name

    def _timed(self, operation: str, call, *args):
        started = time.perf_counter()
        outcome = "error"
        try:
            result = call(*args)
            outcome = "ok"
            return result
        finally:
            metrics.BILLING_PROVIDER_CALL_SECONDS.labels(operation, outcome).observe(time.perf_counter() - started)

    def authorize(self, payment_id, amount_fen, method_token, idempotency_key):
        return self._timed("authorize", self.inner.authorize, payment_id, amount_fen, method_token, idempotency_key)

    def authorize_many(self, charges):
        # One observation per charge, with its own outcome, as ``authorize`` gives.
        started = time.perf_counter()
        answers = None
        try:
            answers = self.inner.authorize_many(charges)
            return answers
        finally:
            elapsed = time.perf_counter() - started
            for i in range(len(charges)):
                failed = answers is None or isinstance(answers[i], Exception)
                metrics.BILLING_PROVIDER_CALL_SECONDS.labels("authorize", "error" if failed else "ok").observe(elapsed)

    def authorizations(self, idempotency_keys):
        return self._timed("authorizations", self.inner.authorizations, idempotency_keys)

    def poll(self, references):
        return self._timed("poll", self.inner.poll, references)

    def lookup(self, references):
        return self._timed("lookup", self.inner.lookup, references)

    def refund(self, charge_reference, amount_fen, idempotency_key):
        return self._timed("refund", self.inner.refund, charge_reference, amount_fen, idempotency_key)

    def statement(self, start, end):
        return self._timed("statement", self.inner.statement, start, end)

    def close(self):
        self.inner.close()
