"""A payment's lifecycle and who may pay what, without I/O."""
from __future__ import annotations

import datetime as dt
import subprocess
import sys
from dataclasses import replace

import pytest

from billing import exceptions
from billing.domain import errors, payments
from billing.domain.errors import (
    AlreadyPaid,
    AlreadyRefunded,
    BadInput,
    BookingNotHeld,
    InvalidPaymentTransition,
    NoFeeDue,
    NotRefundable,
    NotTheirs,
    PaymentFailedHoldReleased,
    PaymentInProgress,
)
from billing.domain.payments import Booking, ChargeState, ChargeStatus, PaymentStatus, RefundAction, ResumeAction
from tuoguan_common.errors import TuoguanError
from tuoguan_common.outbox import IdempotencyConflict

NOW = dt.datetime(2026, 11, 26, 1, 0, tzinfo=dt.timezone.utc)
HOLD_ENDS = NOW + dt.timedelta(minutes=15)
GRACE = dt.timedelta(seconds=5)
BOOKING = Booking(booking_id="b1", patient_id="pat-1", status="HELD", fee_fen=5000, hold_expires_at=HOLD_ENDS)


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
    payments.check_payable(BOOKING, "pat-1", [], NOW)
    # Registration did not say when the hold ends: its status decides.
    payments.check_payable(replace(BOOKING, hold_expires_at=None), "pat-1", [], NOW)


@pytest.mark.parametrize("now", [HOLD_ENDS, HOLD_ENDS + dt.timedelta(seconds=1)])
def test_a_booking_whose_hold_is_over_is_not_held_whatever_registration_still_says(now):
    # Registration's expiry timer has not got to it yet: still HELD there.
    with pytest.raises(BookingNotHeld) as caught:
        payments.check_payable(BOOKING, "pat-1", [], now)
    assert "hold is over" in caught.value.message
    assert exceptions.service_error(caught.value).reason == "booking_not_held"


def test_a_payment_opens_with_the_bookings_hold_and_the_token_until_authorised():
    opened = payments.open_payment("p1", BOOKING, "sandbox", NOW, method_token="tok_ok")
    assert opened.hold_expires_at == HOLD_ENDS and opened.method_token == "tok_ok"
    assert opened.provider_reference is None and opened.authorized_at is None
    assert "tok_ok" not in repr(opened)


@pytest.mark.parametrize("booking,caller,existing,error", [
    (BOOKING, "someone-else", [], NotTheirs),
    (Booking("b1", "pat-1", "CONFIRMED", 5000), "pat-1", [], BookingNotHeld),
    (Booking("b1", "pat-1", "EXPIRED", 5000), "pat-1", [], BookingNotHeld),
    (Booking("b1", "pat-1", "HELD", 0), "pat-1", [], NoFeeDue),
    # A free booking as registration states it: confirmed as it was held.
    (Booking("b1", "pat-1", "CONFIRMED", 0, hold_expires_at=HOLD_ENDS), "pat-1", [], NoFeeDue),
    (BOOKING, "pat-1", [payment(PaymentStatus.PENDING)], PaymentInProgress),
    (BOOKING, "pat-1", [payment(PaymentStatus.UNKNOWN)], PaymentInProgress),
    (BOOKING, "pat-1", [payment(PaymentStatus.CAPTURED)], AlreadyPaid),
    (BOOKING, "pat-1", [payment(PaymentStatus.REFUNDED)], AlreadyPaid),
    # One payment per hold: a failed payment released it, whatever registration still shows.
    (BOOKING, "pat-1", [payment(PaymentStatus.FAILED, failure_reason="card_declined")], PaymentFailedHoldReleased),
    (Booking("b1", "pat-1", "EXPIRED", 5000), "pat-1", [payment(PaymentStatus.FAILED, failure_reason="x")],
     PaymentFailedHoldReleased),
    (BOOKING, "pat-1", [payment(PaymentStatus.FAILED, failure_reason="x"), payment(PaymentStatus.PENDING)],
     PaymentInProgress),
])
def test_reasons_not_to_pay(booking, caller, existing, error):
    with pytest.raises(error):
        payments.check_payable(booking, caller, existing, NOW)


def test_a_failed_payment_says_to_hold_the_slot_again():
    with pytest.raises(PaymentFailedHoldReleased) as caught:
        payments.check_payable(BOOKING, "pat-1", [payment(PaymentStatus.FAILED, failure_reason="card_declined")],
                               NOW)
    assert "hold the slot again" in caught.value.message


def test_reason_codes_are_stable():
    assert exceptions.BookingNotHeld("x").reason == "booking_not_held"
    assert exceptions.PaymentInProgress("x").reason == "payment_in_progress"
    assert exceptions.AlreadyPaid("x").reason == "already_paid"
    assert exceptions.PaymentFailedHoldReleased("x").reason == "payment_failed_hold_released"
    assert exceptions.NoFeeDue("x").reason == "no_fee_due"


def _code(error) -> str:
    # tuoguan_common.errors names the code (or, in older versions, holds a grpc.StatusCode).
    return getattr(error.code, "name", error.code)


@pytest.mark.parametrize("refusal,code,reason", [
    (errors.BadInput("booking_id", "is not a valid id"), "INVALID_ARGUMENT", "invalid_argument"),
    (errors.NotTheirs("not yours"), "PERMISSION_DENIED", "permission_denied"),
    (errors.BookingNotHeld("x"), "FAILED_PRECONDITION", "booking_not_held"),
    (errors.NoFeeDue("x"), "FAILED_PRECONDITION", "no_fee_due"),
    (errors.PaymentInProgress("x"), "FAILED_PRECONDITION", "payment_in_progress"),
    (errors.AlreadyPaid("x"), "FAILED_PRECONDITION", "already_paid"),
    (errors.PaymentFailedHoldReleased("x"), "FAILED_PRECONDITION", "payment_failed_hold_released"),
    (errors.InvalidPaymentTransition("x"), "FAILED_PRECONDITION", "invalid_payment_transition"),
    (errors.NotRefundable("x"), "FAILED_PRECONDITION", "not_refundable"),
    (errors.AlreadyRefunded("x"), "FAILED_PRECONDITION", "already_refunded"),
    (errors.UnbalancedJournalEntry("x"), "INTERNAL", "unbalanced_journal_entry"),
])
def test_each_refusal_of_the_domain_keeps_its_status_and_reason_code(refusal, code, reason):
    answered = exceptions.service_error(refusal)
    assert (_code(answered), answered.reason, answered.message) == (code, reason, refusal.message)


def test_every_refusal_of_the_domain_is_mapped():
    kinds = {value for value in vars(errors).values()
             if isinstance(value, type) and issubclass(value, errors.BillingRuleError)} - {errors.BillingRuleError}
    made = [kind("field", "problem") if kind is errors.BadInput else kind("x") for kind in kinds]
    # An unmapped refusal would be answered as a bare TuoguanError (INTERNAL).
    assert [type(r).__name__ for r in made if type(exceptions.service_error(r)) is TuoguanError] == []


def test_a_key_that_names_another_requests_payment_is_answered_as_a_reused_key():
    named = payments.payment_id_for("pat-1", "k1")
    payments.check_payment_id_unused(named, None)
    with pytest.raises(errors.KeyReused) as caught:
        payments.check_payment_id_unused(named, payment(PaymentStatus.CAPTURED))
    answered = exceptions.service_error(caught.value)
    assert isinstance(answered, IdempotencyConflict)
    assert (_code(answered), answered.reason, answered.field) == (
        "INVALID_ARGUMENT", "idempotency_key_reused", "idempotency_key")


def test_a_field_error_keeps_its_field():
    answered = exceptions.service_error(errors.BadInput("payment_method_token", "is required"))
    assert (answered.field, answered.problem) == ("payment_method_token", "is required")


def test_an_api_method_answers_a_refusal_as_its_service_error():
    @exceptions.answers_rule_errors
    def method():
        raise errors.PaymentFailedHoldReleased("hold the slot again")

    with pytest.raises(exceptions.PaymentFailedHoldReleased) as caught:
        method()
    assert isinstance(caught.value.__cause__, errors.PaymentFailedHoldReleased)


def test_the_domain_imports_neither_grpc_nor_the_service_errors():
    code = ("import sys; import billing.domain.errors, billing.domain.ledger, billing.domain.payments, "
            "billing.domain.reconciliation; "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('grpc', 'tuoguan_common', 'nameko', "
            "'psycopg') or m == 'billing.exceptions'); print(bad); sys.exit(1 if bad else 0)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("text", [
    "5B1E6F9C-3D1A-4C55-9A43-0F6F7B0D2A11", "{5b1e6f9c-3d1a-4c55-9a43-0f6f7b0d2a11}",
    "5b1e6f9c3d1a4c559a430f6f7b0d2a11", " urn:uuid:5b1e6f9c-3d1a-4c55-9a43-0f6f7b0d2a11 ",
])
def test_a_booking_id_is_canonicalised(text):
    assert payments.check_booking_id(text) == "5b1e6f9c-3d1a-4c55-9a43-0f6f7b0d2a11"


@pytest.mark.parametrize("text,problem", [("", "is required"), ("  ", "is required"), ("b1", "is not a valid id"),
                                          ("5b1e6f9c-3d1a-4c55-9a43", "is not a valid id")])
def test_a_booking_id_that_is_not_one_is_refused(text, problem):
    with pytest.raises(BadInput) as caught:
        payments.check_booking_id(text)
    assert (caught.value.field, caught.value.problem) == ("booking_id", problem)


def test_the_authorisation_key_is_the_payments():
    assert payments.authorization_key("p1") == "registration-fee:p1"


@pytest.mark.parametrize("seen,now,token,action", [
    (True, NOW, "tok_ok", ResumeAction.RECORD),
    (True, HOLD_ENDS + dt.timedelta(hours=1), None, ResumeAction.RECORD),
    (False, NOW, "tok_ok", ResumeAction.AUTHORIZE),
    (False, HOLD_ENDS, "tok_ok", ResumeAction.ABANDON),
    (False, HOLD_ENDS + dt.timedelta(hours=1), None, ResumeAction.ABANDON),
    (False, NOW, None, ResumeAction.WAIT),
])
def test_what_the_worker_does_with_an_unauthorised_payment(seen, now, token, action):
    unauthorised = replace(payment(), method_token=token)
    assert payments.resume_action(unauthorised, seen, now, grace=GRACE) is action


def test_a_payment_without_a_known_hold_is_authorised_not_abandoned():
    unauthorised = replace(payment(), hold_expires_at=None, method_token="tok_ok")
    assert payments.resume_action(unauthorised, False, NOW + dt.timedelta(days=1), grace=GRACE) is (
        ResumeAction.AUTHORIZE)


@pytest.mark.parametrize("token", ["tok_ok", None])
def test_a_payment_younger_than_the_grace_is_not_given_up_when_its_hold_ends(token):
    # Its first request may still be inside the provider's call: the charge
    # may be on its way, and failing the payment now would strand it.
    short_hold = replace(payment(), hold_expires_at=NOW + dt.timedelta(seconds=1), method_token=token)
    assert payments.resume_action(short_hold, False, NOW + dt.timedelta(seconds=2), grace=GRACE) is ResumeAction.WAIT
    assert payments.resume_action(short_hold, False, NOW + GRACE, grace=GRACE) is ResumeAction.ABANDON
    assert payments.resume_action(short_hold, True, NOW + dt.timedelta(seconds=2), grace=GRACE) is (
        ResumeAction.RECORD)


def test_an_abandoned_payment_fails_with_its_reason():
    abandoned = payments.abandon(payment(), NOW)
    assert (abandoned.status, abandoned.failure_reason, abandoned.settled_at) == (
        PaymentStatus.FAILED, payments.NEVER_AUTHORIZED, NOW)
    assert payments.abandon(payment(), NOW, payments.UNKNOWN_PAYMENT_METHOD).failure_reason == "unknown_payment_method"


def test_the_same_request_names_the_same_payment():
    assert payments.payment_id_for("pat-1", "k1") == payments.payment_id_for("pat-1", "k1")
    assert payments.payment_id_for("pat-1", "k1") != payments.payment_id_for("pat-1", "k2")
    assert payments.payment_id_for("pat-1", "k1") != payments.payment_id_for("pat-2", "k1")
    assert payments.canonical_payment_id(payments.payment_id_for("pat-1", "k1")) is not None


@pytest.mark.parametrize("token", ["", "  ", "4111111111111111", "tok_", "TOK_OK", "tok_ok; drop", "tok_" + "a" * 61])
def test_token_shapes_that_are_refused(token):
    with pytest.raises(BadInput) as caught:
        payments.check_method_token(token)
    assert caught.value.field == "payment_method_token"


def test_payment_ids_are_checked():
    with pytest.raises(BadInput):
        payments.check_payment_id("nope")
    with pytest.raises(BadInput):
        payments.check_payment_id("")


@pytest.mark.parametrize("text", [
    "5b1e6f9c-3d1a-4c55-9a43-0f6f7b0d2a11", " 5B1E6F9C-3D1A-4C55-9A43-0F6F7B0D2A11 ",
    "urn:uuid:5b1e6f9c-3d1a-4c55-9a43-0f6f7b0d2a11", "{5b1e6f9c3d1a4c559a430f6f7b0d2a11}",
    "5-b1e6f9c3d1a4c559a430f6f7b0d2a11",
])
def test_a_payment_id_is_canonicalised(text):
    # uuid.UUID reads spellings PostgreSQL's uuid does not (urn:uuid:, a
    # hyphen anywhere): only the canonical form is passed on.
    assert payments.check_payment_id(text) == "5b1e6f9c-3d1a-4c55-9a43-0f6f7b0d2a11"
    assert payments.canonical_payment_id(text.strip()) == "5b1e6f9c-3d1a-4c55-9a43-0f6f7b0d2a11"
    assert payments.canonical_payment_id(text.strip()) is not None


@pytest.mark.parametrize("text", ["nope", "", None, "5b1e6f9c-3d1a-4c55-9a43"])
def test_what_is_not_a_payment_id(text):
    assert payments.canonical_payment_id(text) is None


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


def test_the_timeout_runs_from_the_authorisation():
    timeout = dt.timedelta(seconds=5)
    late = payment(authorized_at=NOW + dt.timedelta(seconds=10))
    assert payments.unanswered(late, NOW + dt.timedelta(seconds=12), timeout) is None
    assert payments.unanswered(late, NOW + dt.timedelta(seconds=15), timeout).status is PaymentStatus.UNKNOWN


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


def charged_after_failure(**changes) -> payments.Payment:
    return payment(PaymentStatus.FAILED, failure_reason=payments.NEVER_AUTHORIZED, provider_reference="ch",
                   refund_requested_reason=payments.CHARGED_AFTER_FAILURE, **changes)


def test_a_failed_payment_is_charged_after_failure_only_when_so_marked():
    assert payments.charged_after_failure(charged_after_failure())
    # A decline is FAILED with a reference, and may carry a cancellation's refund request: nothing was captured.
    declined = payment(PaymentStatus.FAILED, failure_reason="card_declined", provider_reference="ch",
                       refund_requested_reason="booking_cancelled")
    assert not payments.charged_after_failure(declined)
    assert not payments.charged_after_failure(
        payment(PaymentStatus.CAPTURED, refund_requested_reason=payments.CHARGED_AFTER_FAILURE))


def test_a_charge_given_back_after_failure_shows_on_the_still_failed_payment():
    late = payment(PaymentStatus.FAILED, failure_reason=payments.NEVER_AUTHORIZED, provider_reference="ch",
                   refund_requested_reason=payments.CHARGED_AFTER_FAILURE)
    back = payments.charge_given_back(late, 5000, NOW)
    assert (back.status, back.refunded_fen, back.refunded_after_failure_fen, back.refunded_after_failure_at,
            back.refund_requested_reason) == (PaymentStatus.FAILED, 0, 5000, NOW, None)
    with pytest.raises(NotRefundable):
        payments.charge_given_back(payment(PaymentStatus.CAPTURED), 5000, NOW)


@pytest.mark.parametrize("record,action", [
    (None, payments.ReturnAction.WAIT),
    (answer(ChargeState.PENDING), payments.ReturnAction.WAIT),
    (answer(ChargeState.CAPTURED, settled_at=NOW), payments.ReturnAction.REFUND),
    (answer(ChargeState.DECLINED, decline_reason="card_declined", settled_at=NOW),
     payments.ReturnAction.NOTHING_MOVED),
])
def test_a_charge_made_after_failure_goes_back_once_the_provider_captured_it(record, action):
    assert payments.return_action(charged_after_failure(), record) is action


def test_only_a_charge_made_after_failure_is_given_back_that_way():
    with pytest.raises(NotRefundable):
        payments.return_action(payment(PaymentStatus.CAPTURED), answer(ChargeState.CAPTURED, settled_at=NOW))


def test_a_payment_ticket_states_the_booking_while_its_hold_runs():
    stated = Booking(booking_id="b1", patient_id="p1", status="HELD", fee_fen=5000,
                     hold_expires_at=NOW + dt.timedelta(minutes=10))
    assert payments.ticket_booking(stated, "b1", NOW) == stated
    assert payments.ticket_booking(stated, "b1", NOW + dt.timedelta(minutes=10)) is None, "over: ask registration"
    assert payments.ticket_booking(replace(stated, hold_expires_at=None), "b1", NOW) is None
    with pytest.raises(errors.BadInput) as wrong:
        payments.ticket_booking(stated, "b2", NOW)
    assert wrong.value.field == "payment_ticket"


@pytest.mark.parametrize("failed,may_land", [
    (dict(failure_reason="never_authorized"), True),
    (dict(failure_reason="not_found_at_provider", provider_reference="sbx_ch_1"), True),
    # Its charge is asked back already: the refund timer has it.
    (dict(failure_reason="never_authorized", refund_requested_reason="charged_after_failure"), False),
    # The provider's own word: declined, or the token refused before any charge.
    (dict(failure_reason="card_declined", provider_reference="sbx_ch_1"), False),
    (dict(failure_reason="unknown_payment_method"), False),
])
def test_a_charge_may_land_on_a_payment_failed_without_the_providers_word(failed, may_land):
    assert payments.charge_may_land(payment(PaymentStatus.FAILED, **failed)) is may_land
    assert payments.charge_may_land(payment(PaymentStatus.PENDING)) is False


@pytest.mark.parametrize("state,moved", [
    (None, False), (ChargeState.DECLINED, False), (ChargeState.PENDING, True), (ChargeState.CAPTURED, True)])
def test_a_charge_found_after_the_failure_goes_back_unless_declined(state, moved):
    record = None if state is None else ChargeStatus("sbx_ch_1", "p1", 5000, state)
    assert payments.charged_after_all(record) is moved


@pytest.mark.parametrize("fail", [
    lambda p: payments.abandon(p, NOW),
    lambda p: payments.not_found_at_provider(replace(p, status=PaymentStatus.UNKNOWN), NOW),
    lambda p: payments.settle(p, ChargeStatus("sbx_ch_1", "p1", 5000, ChargeState.DECLINED, "card_declined", NOW)),
])
def test_a_refund_asked_for_before_the_capture_is_dropped_when_the_payment_fails(fail):
    # Nothing was captured to refund; kept, the request took the payment out
    # of the late-charge sweep, so a charge landing after all never went back.
    failed = fail(payment(refund_requested_reason="booking_cancelled"))
    assert failed.status is PaymentStatus.FAILED and failed.refund_requested_reason is None
    assert payments.charge_may_land(failed) is (failed.failure_reason in payments.FAILED_UNHEARD)
