"""Billing's errors, each with a stable reason code the gateway translates.

They subclass tuoguan_common.errors, so the gRPC interceptor maps each to one
status code; the domain raises them and nothing catches them on the way out.
"""
from __future__ import annotations

import grpc

from tuoguan_common.errors import FailedPrecondition, InvalidArgument, NotFound, TuoguanError, Unavailable


class BookingNotHeld(FailedPrecondition):
    """Only a booking that still holds its slot can be paid."""

    reason = "booking_not_held"


class NoFeeDue(FailedPrecondition):
    reason = "no_fee_due"


class PaymentInProgress(FailedPrecondition):
    """A payment for the booking is waiting for the provider's answer."""

    reason = "payment_in_progress"


class AlreadyPaid(FailedPrecondition):
    reason = "already_paid"


class PaymentNotFound(NotFound):
    reason = "payment_not_found"


class InvalidPaymentTransition(FailedPrecondition):
    """A payment asked to move to a status its lifecycle does not allow."""

    reason = "invalid_payment_transition"


class NotRefundable(FailedPrecondition):
    reason = "not_refundable"


class AlreadyRefunded(FailedPrecondition):
    reason = "already_refunded"


class UnknownPaymentMethod(InvalidArgument):
    """The token has the right shape but the provider does not know it."""

    reason = "unknown_payment_method"

    def __init__(self) -> None:
        super().__init__("payment_method_token", "is not a payment method the provider knows")


class UnbalancedJournalEntry(TuoguanError):
    """A journal entry whose debits and credits differ: a bug, never posted."""

    code = grpc.StatusCode.INTERNAL
    reason = "unbalanced_journal_entry"


class ProviderUnavailable(Unavailable):
    reason = "payment_provider_unavailable"


class ProviderRequestConflict(TuoguanError):
    """The provider saw an idempotency key again with a different request."""

    code = grpc.StatusCode.INTERNAL
    reason = "provider_request_conflict"


class RefundRefused(FailedPrecondition):
    """The provider refused a refund (charge not captured, amount too large)."""

    reason = "refund_refused"
