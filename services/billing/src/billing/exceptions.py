"""Billing's errors, each with a stable reason code the gateway translates.

They subclass tuoguan_common.errors, so the gRPC interceptor maps each to one
status code. The domain raises its own plain errors (billing.domain.errors);
``service_error`` below is the one place that turns them into these, and the
api's methods are wrapped in ``answers_rule_errors`` so they do it on the way out.
"""
from __future__ import annotations

import functools
import inspect
from typing import Callable, TypeVar

from tuoguan_common.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    TuoguanError,
    Unavailable,
)
from tuoguan_common.outbox import IdempotencyConflict

from .domain import errors as rules


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


class PaymentFailedHoldReleased(FailedPrecondition):
    """A payment for the booking failed and registration released the hold:
    the patient holds the slot again (a new booking) to pay."""

    reason = "payment_failed_hold_released"


class IdempotencyKeyReused(IdempotencyConflict):
    """The key names a payment another request opened (its first use was
    purged): answered as any key reused for another request is, so the
    client makes a new one."""

    def __init__(self, message: str) -> None:
        # The answer every service gives a key used for another request.
        super().__init__("")


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
    """A journal entry whose debits and credits differ: a bug, never posted (INTERNAL)."""

    reason = "unbalanced_journal_entry"


class ProviderUnavailable(Unavailable):
    reason = "payment_provider_unavailable"


class ProviderRequestConflict(TuoguanError):
    """The provider saw an idempotency key again with a different request (INTERNAL)."""

    reason = "provider_request_conflict"


class RefundRefused(FailedPrecondition):
    """The provider refused a refund (charge not captured, amount too large)."""

    reason = "refund_refused"


# Each of the domain's refusals as the service answers it: the class on the
# right gives the gRPC code and the reason code. BadInput keeps its field.
_SERVICE_ERRORS: dict[type[rules.BillingRuleError], type[TuoguanError]] = {
    rules.BadInput: InvalidArgument,
    rules.NotTheirs: PermissionDenied,
    rules.BookingNotHeld: BookingNotHeld,
    rules.NoFeeDue: NoFeeDue,
    rules.PaymentInProgress: PaymentInProgress,
    rules.AlreadyPaid: AlreadyPaid,
    rules.PaymentFailedHoldReleased: PaymentFailedHoldReleased,
    rules.KeyReused: IdempotencyKeyReused,
    rules.InvalidPaymentTransition: InvalidPaymentTransition,
    rules.NotRefundable: NotRefundable,
    rules.AlreadyRefunded: AlreadyRefunded,
    rules.UnbalancedJournalEntry: UnbalancedJournalEntry,
}


def service_error(exc: rules.BillingRuleError) -> TuoguanError:
    """The service error a refusal of the domain is answered with (INTERNAL if unmapped)."""
    if isinstance(exc, rules.BadInput):
        return InvalidArgument(exc.field, exc.problem)
    kind = next((_SERVICE_ERRORS[k] for k in type(exc).__mro__ if k in _SERVICE_ERRORS), TuoguanError)
    return kind(exc.message)


Method = TypeVar("Method", bound=Callable)


def answers_rule_errors(method: Method) -> Method:
    """Wraps an api method (a plain one or a coroutine) so a refusal of the
    domain leaves it as its service error."""

    if inspect.iscoroutinefunction(method):
        @functools.wraps(method)
        async def answering_later(*args, **kwargs):
            try:
                return await method(*args, **kwargs)
            except rules.BillingRuleError as exc:
                raise service_error(exc) from exc

        return answering_later  # type: ignore[return-value]

    @functools.wraps(method)
    def answering(*args, **kwargs):
        try:
            return method(*args, **kwargs)
        except rules.BillingRuleError as exc:
            raise service_error(exc) from exc

    return answering  # type: ignore[return-value]
