"""A payment's lifecycle and who may pay what, without I/O."""
from __future__ import annotations

import datetime as dt
from dataclasses import replace

import pytest

from billing.domain import payments
from billing.domain.payments import Booking, ChargeState, ChargeStatus, PaymentStatus, RefundAction
from billing.exceptions import (
    AlreadyPaid,
    AlreadyRefunded,
    BookingNotHeld,
    InvalidPaymentTransition,
    NoFeeDue,
    NotRefundable,
    PaymentInProgress,
)
from tuoguan_common.errors import InvalidArgument, PermissionDenied

NOW = dt.datetime(2026, 11, 26, 1, 0, tzinfo=dt.timezone.utc)
BOOKING = Booking(booking_id="b1", patient_id="pat-1", status="HELD", fee_fen=5000)


def payment(status=PaymentStatus.PENDING, **changes) -> payments.Payment:
    return replace(payments.open_payment("p1", BOOKING, "sandbox", NOW), status=status, **changes)


@pytest.mark.parametrize("source,target", [
    (PaymentStatus.PENDING, PaymentStatus.CAPTURED),
    (PaymentStatus.PENDING, PaymentStatus.FAILED),
    (PaymentStatus.PENDING, PaymentStatus.UNKNOWN),
    (PaymentStatus.UNKNOWN, PaymentStatus.CAPTURED),
    (PaymentStatus.UNKNOWN, PaymentStatus.FAILED),
    (PaymentStatus.CAPTURED, PaymentStatus.REFUNDED),
])
def test_allowed_transitions(source, target):
    assert payments.transition(payment(source), target).status is target


@pytest.mark.parametrize("source,target", [
    (PaymentStatus.CAPTURED, PaymentStatus.CAPTURED),
    (PaymentStatus.CAPTURED, PaymentStatus.FAILED),
    (PaymentStatus.FAILED, PaymentStatus.CAPTURED),
    (PaymentStatus.REFUNDED, PaymentStatus.REFUNDED),
    (PaymentStatus.REFUNDED, PaymentStatus.CAPTURED),
    (PaymentStatus.PENDING, PaymentStatus.REFUNDED),
    (PaymentStatus.UNKNOWN, PaymentStatus.REFUNDED),
    (PaymentStatus.UNKNOWN, PaymentStatus.PENDING),
])
def test_forbidden_transitions(source, target):
    with pytest.raises(InvalidPaymentTransition):
        payments.transition(payment(source), target)


def test_sources_of_a_status_follow_the_lifecycle():
    assert payments.sources_of(PaymentStatus.CAPTURED) == {PaymentStatus.PENDING, PaymentStatus.UNKNOWN}
    assert payments.sources_of(PaymentStatus.REFUNDED) == {PaymentStatus.CAPTURED}
    assert payments.sources_of(PaymentStatus.PENDING) == set()


def test_the_amount_is_the_bookings_fee():
    opened = payments.open_payment("p1", BOOKING, "sandbox", NOW)
    assert opened.amount_fen == 5000 and opened.status is PaymentStatus.PENDING and opened.patient_id == "pat-1"


def test_a_held_booking_of_the_caller_is_payable():
    payments.check_payable(BOOKING, "pat-1", [])
    payments.check_payable(BOOKING, "pat-1", [payment(PaymentStatus.FAILED, failure_reason="card_declined")])


@pytest.mark.parametrize("booking,caller,existing,error", [
    (BOOKING, "someone-else", [], PermissionDenied),
    (Booking("b1", "pat-1", "CONFIRMED", 5000), "pat-1", [], BookingNotHeld),
    (Booking("b1", "pat-1", "EXPIRED", 5000), "pat-1", [], BookingNotHeld),
    (Booking("b1", "pat-1", "HELD", 0), "pat-1", [], NoFeeDue),
    (BOOKING, "pat-1", [payment(PaymentStatus.PENDING)], PaymentInProgress),
    (BOOKING, "pat-1", [payment(PaymentStatus.UNKNOWN)], PaymentInProgress),
    (BOOKING, "pat-1", [payment(PaymentStatus.CAPTURED)], AlreadyPaid),
    (BOOKING, "pat-1", [payment(PaymentStatus.REFUNDED)], AlreadyPaid),
])
def test_reasons_not_to_pay(booking, caller, existing, error):
    with pytest.raises(error):
        payments.check_payable(booking, caller, existing)


def test_reason_codes_are_stable():
    assert BookingNotHeld("x").reason == "booking_not_held"
    assert PaymentInProgress("x").reason == "payment_in_progress"
    assert AlreadyPaid("x").reason == "already_paid"


def test_the_same_request_names_the_same_payment():
    assert payments.payment_id_for("pat-1", "k1") == payments.payment_id_for("pat-1", "k1")
    assert payments.payment_id_for("pat-1", "k1") != payments.payment_id_for("pat-1", "k2")
    assert payments.payment_id_for("pat-1", "k1") != payments.payment_id_for("pat-2", "k1")
    assert payments.is_payment_id(payments.payment_id_for("pat-1", "k1"))


@pytest.mark.parametrize("token", ["", "  ", "4111111111111111", "tok_", "TOK_OK", "tok_ok; drop", "tok_" + "a" * 61])
def test_token_shapes_that_are_refused(token):
    with pytest.raises(InvalidArgument) as caught:
        payments.check_method_token(token)
    assert caught.value.field == "payment_method_token"


def test_payment_ids_are_checked():
    with pytest.raises(InvalidArgument):
        payments.check_payment_id("nope")
    with pytest.raises(InvalidArgument):
        payments.check_payment_id("")


def answer(state, **kw):
    return ChargeStatus(reference="ch", payment_id="p1", amount_fen=5000, state=state, **kw)


def test_settling_follows_the_providers_answer():
    assert payments.settle(payment(), None) is None
    assert payments.settle(payment(), answer(ChargeState.PENDING)) is None
    captured = payments.settle(payment(), answer(ChargeState.CAPTURED, settled_at=NOW))
    assert captured.status is PaymentStatus.CAPTURED and captured.settled_at == NOW
    failed = payments.settle(payment(PaymentStatus.UNKNOWN),
                             answer(ChargeState.DECLINED, decline_reason="insufficient_funds", settled_at=NOW))
    assert failed.status is PaymentStatus.FAILED and failed.failure_reason == "insufficient_funds"


def test_an_unanswered_payment_becomes_unknown_after_the_timeout():
    timeout = dt.timedelta(seconds=5)
    assert payments.unanswered(payment(), NOW + dt.timedelta(seconds=4), timeout) is None
    assert payments.unanswered(payment(), NOW + timeout, timeout).status is PaymentStatus.UNKNOWN
    assert payments.unanswered(payment(PaymentStatus.CAPTURED), NOW + timeout * 2, timeout) is None


def test_refunds_go_back_whole_and_once():
    refunded = payments.refund(payment(PaymentStatus.CAPTURED, refund_requested_reason="booking_cancelled"))
    assert refunded.status is PaymentStatus.REFUNDED and refunded.refunded_fen == 5000
    assert refunded.refund_requested_reason is None
    with pytest.raises(AlreadyRefunded):
        payments.refund(refunded)
    with pytest.raises(NotRefundable):
        payments.refund(payment(PaymentStatus.FAILED, failure_reason="card_declined"))


@pytest.mark.parametrize("status,action", [
    (PaymentStatus.CAPTURED, RefundAction.ISSUE),
    (PaymentStatus.REFUNDED, RefundAction.ALREADY_REFUNDED),
    (PaymentStatus.PENDING, RefundAction.AWAIT_CAPTURE),
    (PaymentStatus.UNKNOWN, RefundAction.AWAIT_CAPTURE),
    (PaymentStatus.FAILED, RefundAction.NOTHING_TO_REFUND),
])
def test_what_a_refund_request_does(status, action):
    assert payments.refund_action(payment(status)) is action
