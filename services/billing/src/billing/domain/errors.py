"""The rules' refusals: plain exceptions, no grpc and no tuoguan_common.

Each names the rule that said no. ``billing.exceptions.service_error`` maps
each of them, in one table, to the service error the api answers with (its
gRPC status code and its stable reason code).
"""
from __future__ import annotations


class BillingRuleError(Exception):
    """A rule of billing refused something."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class BadInput(BillingRuleError):
    """A field of a request is missing or malformed."""

    def __init__(self, field: str, problem: str):
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class NotTheirs(BillingRuleError):
    """The caller asked about someone else's booking."""


class BookingNotHeld(BillingRuleError):
    """Only a booking that still holds its slot can be paid."""


class NoFeeDue(BillingRuleError):
    """The booking's fee is zero: there is nothing to charge."""


class PaymentInProgress(BillingRuleError):
    """A payment for the booking is waiting for the provider's answer."""


class AlreadyPaid(BillingRuleError):
    pass


class KeyReused(BillingRuleError):
    """The idempotency key names a payment another request opened: the
    key's first use was purged by retention, and it is used again."""


class PaymentFailedHoldReleased(BillingRuleError):
    """A payment for the booking failed, so registration released its hold:
    one payment is attempted per hold, the patient holds the slot again."""


class InvalidPaymentTransition(BillingRuleError):
    """A payment asked to move to a status its lifecycle does not allow."""


class NotRefundable(BillingRuleError):
    pass


class AlreadyRefunded(BillingRuleError):
    pass


class UnbalancedJournalEntry(BillingRuleError):
    """A journal entry whose debits and credits differ: a bug, never posted."""
