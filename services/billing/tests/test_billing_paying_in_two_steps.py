"""PayRegistrationFee commits its payment before the provider is asked, asks
registration and the provider with no transaction open, and a retry or the
worker finishes an authorisation the api did not. Real PostgreSQL, the api
in-process; the worker's step runs through its cashier, its clock moved on."""
from __future__ import annotations

import datetime as dt
import logging
import time
import uuid

import grpc
import pytest
from prometheus_client import REGISTRY

from billing import finance
from billing.domain.reconciliation import Outcome, business_date_of
from billing.exceptions import ProviderUnavailable
from tuoguan.billing.v1 import billing_pb2 as pb
from tuoguan_common import auth

pytestmark = pytest.mark.integration

# A worker's clock past the bookings' default hold (15 minutes) and the grace.
PAST_THE_HOLD = dt.timedelta(minutes=20)


class Died(Exception):
    """Stands for the api process dying at that point."""


def open_transactions(billing) -> list[dict]:
    """Other sessions of the test's database inside a transaction now."""
    return billing.rows(
        "SELECT pid, state, left(query, 120) AS query FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend' "
        "AND xact_start IS NOT NULL")


def payment_rows(billing) -> list[dict]:
    return billing.rows("SELECT payment_id::text, status, provider_reference, method_token, failure_reason "
                        "FROM payments ORDER BY created_at")


def charges(billing) -> list[dict]:
    return billing.rows("SELECT reference, merchant_payment_id, idempotency_key FROM sandbox_provider.charges")


def stored_answer(billing) -> list[dict]:
    return billing.rows("SELECT key, response IS NOT NULL AS answered FROM idempotency_keys")


def dies(where: str):
    def hook(_payment_id):
        raise Died(f"the api died {where}")
    return hook


@pytest.fixture
def short_grace(monkeypatch):
    """The api's authorise grace, short enough for a test to outlive it (ask
    for it before ``billing``, which reads it when it starts the api)."""
    monkeypatch.setenv("BILLING_AUTHORIZE_GRACE_SECONDS", "1")


def test_registration_and_the_provider_are_asked_with_no_transaction_open(billing):
    patient_id, booking_id = billing.held_booking()
    seen: dict[str, object] = {}

    def at_registration(_booking_id):
        seen["registration"] = open_transactions(billing)
        seen["rows at registration"] = payment_rows(billing)

    def at_provider(payment_id):
        seen["provider"] = open_transactions(billing)
        # Transaction 1 is committed: the payment is there, for anyone to see, before money moves.
        seen["rows at provider"] = payment_rows(billing)
        seen["key at provider"] = stored_answer(billing)
        seen["payment_id"] = payment_id

    billing.registration.on_get_booking = at_registration
    billing.provider.before_authorize = at_provider
    payment = billing.pay(patient_id, booking_id, key="k-1").payment

    assert seen["registration"] == [] and seen["provider"] == []
    assert seen["rows at registration"] == []
    assert seen["rows at provider"] == [{"payment_id": payment.payment_id, "status": "PENDING",
                                         "provider_reference": None, "method_token": "tok_ok",
                                         "failure_reason": None}]
    assert seen["key at provider"] == [{"key": "k-1", "answered": False}]
    # Transaction 2: the reference and the answer; the token is forgotten.
    assert payment.provider_reference.startswith("sbx_ch_")
    assert payment_rows(billing) == [{"payment_id": payment.payment_id, "status": "PENDING",
                                      "provider_reference": payment.provider_reference, "method_token": None,
                                      "failure_reason": None}]
    assert stored_answer(billing) == [{"key": "k-1", "answered": True}]
    assert [c["idempotency_key"] for c in charges(billing)] == [f"registration-fee:{payment.payment_id}"]


def test_a_repeat_is_answered_without_asking_registration(billing):
    patient_id, booking_id = billing.held_booking()
    first = billing.pay(patient_id, booking_id, key="k-1")
    billing.registration.bookings.pop(booking_id)  # registration forgot it, or is down
    assert billing.pay(patient_id, booking_id, key="k-1") == first
    assert billing.registration.asked == [booking_id]


def test_a_retry_after_the_api_died_before_the_provider_authorises_it_once(billing):
    patient_id, booking_id = billing.held_booking()
    billing.provider.before_authorize = dies("before asking the provider")
    error = pytest.raises(grpc.RpcError, billing.pay, patient_id, booking_id, key="k-1").value
    assert error.code() is grpc.StatusCode.INTERNAL
    [row] = payment_rows(billing)
    assert (row["status"], row["provider_reference"]) == ("PENDING", None)
    assert charges(billing) == [] and stored_answer(billing) == [{"key": "k-1", "answered": False}]

    billing.provider.before_authorize = None
    payment = billing.pay(patient_id, booking_id, key="k-1").payment
    assert payment.payment_id == row["payment_id"] and payment.status == pb.PAYMENT_STATUS_PENDING
    assert [c["reference"] for c in charges(billing)] == [payment.provider_reference]
    assert billing.pay(patient_id, booking_id, key="k-1").payment == payment


def test_a_retry_after_the_api_died_after_the_provider_charged_finds_the_same_charge(billing):
    patient_id, booking_id = billing.held_booking()
    billing.provider.after_authorize = dies("after the provider charged")
    pytest.raises(grpc.RpcError, billing.pay, patient_id, booking_id, key="k-1")
    [charge] = charges(billing)
    assert payment_rows(billing)[0]["provider_reference"] is None

    billing.provider.after_authorize = None
    payment = billing.pay(patient_id, booking_id, key="k-1").payment
    assert payment.provider_reference == charge["reference"]
    assert len(charges(billing)) == 1
    # And it settles as any other.
    assert [p.payment_id for p in billing.cashier(after=billing.SETTLED).settle_pending().captured] == [
        payment.payment_id]


def test_a_retry_after_the_hold_and_the_grace_fails_a_payment_the_provider_never_saw(short_grace, billing):
    # Registration's expiry has not caught up yet: the booking is HELD, its hold over.
    payment_id, booking_id = billing.unfinished_payment(hold=-dt.timedelta(seconds=1))
    patient_id = billing.registration.bookings[booking_id].patient_id
    [key] = [r["key"] for r in stored_answer(billing)]
    # Within the grace its first attempt may still be at the provider: not given up yet.
    error = pytest.raises(grpc.RpcError, billing.pay, patient_id, booking_id, key=key).value
    assert billing.reason_of(error) == "payment_in_progress"
    assert payment_rows(billing)[0]["status"] == "PENDING"
    time.sleep(1.1)
    payment = billing.pay(patient_id, booking_id, key=key).payment
    assert (payment.payment_id, payment.status, payment.failure_reason) == (
        payment_id, pb.PAYMENT_STATUS_FAILED, "never_authorized")
    assert charges(billing) == []
    assert [(e["payment_id"], e["reason"]) for e in billing.events("PaymentFailed")] == [
        (payment_id, "never_authorized")]
    assert billing.pay(patient_id, booking_id, key=key).payment == payment


def test_a_retry_after_the_hold_is_over_keeps_the_charge_the_provider_made(billing):
    payment_id, booking_id = billing.unfinished_payment(hold=-dt.timedelta(seconds=1), charged=True)
    patient_id = billing.registration.bookings[booking_id].patient_id
    [key] = [r["key"] for r in stored_answer(billing)]
    payment = billing.pay(patient_id, booking_id, key=key).payment
    # Settled as usual; registration rejects a capture after the hold and billing refunds it.
    assert (payment.status, payment.provider_reference) == (pb.PAYMENT_STATUS_PENDING, charges(billing)[0]["reference"])
    assert len(charges(billing)) == 1 and billing.events("PaymentFailed") == []


def test_a_provider_outage_leaves_the_payment_to_a_retry(billing):
    patient_id, booking_id = billing.held_booking()

    def down(_payment_id):
        raise ProviderUnavailable("the payment provider does not answer")

    billing.provider.before_authorize = down
    error = pytest.raises(grpc.RpcError, billing.pay, patient_id, booking_id, key="k-1").value
    assert error.code() is grpc.StatusCode.UNAVAILABLE
    assert billing.reason_of(error) == "payment_provider_unavailable"
    # Another key for the same booking is refused: the first payment is still under way.
    error = pytest.raises(grpc.RpcError, billing.pay, patient_id, booking_id, key="k-2").value
    assert billing.reason_of(error) == "payment_in_progress"

    billing.provider.before_authorize = None
    payment = billing.pay(patient_id, booking_id, key="k-1").payment
    assert payment.status == pb.PAYMENT_STATUS_PENDING and payment.provider_reference
    assert len(payment_rows(billing)) == 1 and len(charges(billing)) == 1


def test_concurrent_repeats_of_one_request_make_one_payment_and_one_answer(billing):
    patient_id, booking_id = billing.held_booking()
    answers = billing.pay_at_once(patient_id, booking_id, ["k-1"] * 6)
    assert [a for a in answers if isinstance(a, str)] == []
    assert all(a == answers[0] for a in answers) and answers[0].payment.provider_reference
    assert len(payment_rows(billing)) == 1 and len(charges(billing)) == 1


# The worker's step for payments the api did not finish.


def test_the_worker_leaves_a_young_unfinished_payment_to_its_request(billing):
    billing.unfinished_payment()
    assert billing.cashier().authorize_unfinished().failed == []
    assert charges(billing) == [] and payment_rows(billing)[0]["provider_reference"] is None
    # Nor do the other timers take a payment the provider has no reference for.
    later = billing.cashier(after=billing.LATE_CAPTURED)
    assert later.settle_pending().captured == [] and later.give_up_on_unanswered().unknown == []
    assert payment_rows(billing)[0]["status"] == "PENDING"


def test_the_worker_finishes_an_unfinished_payment_while_the_hold_runs(billing):
    authorised_id, _ = billing.unfinished_payment()
    charged_id, _ = billing.unfinished_payment(charged=True)
    charged_reference = charges(billing)[0]["reference"]
    worker = billing.cashier(after=billing.UNFINISHED)
    assert worker.authorize_unfinished().failed == []
    rows = {r["payment_id"]: r for r in payment_rows(billing)}
    assert rows[charged_id]["provider_reference"] == charged_reference  # recorded, not charged again
    assert rows[authorised_id]["provider_reference"].startswith("sbx_ch_")
    assert all(r["status"] == "PENDING" and r["method_token"] is None for r in rows.values())
    assert len(charges(billing)) == 2
    assert worker.authorize_unfinished().failed == []  # nothing left to do
    assert len(charges(billing)) == 2

    # Both settle as any other, the late one with the time an online answer is due.
    settled = billing.cashier(after=billing.UNFINISHED + billing.SETTLED).settle_pending()
    assert {p.payment_id for p in settled.captured} == {authorised_id, charged_id}
    assert len(billing.events("PaymentCaptured")) == 2


def test_the_worker_fails_an_unfinished_payment_the_provider_never_saw_once_the_hold_is_over(billing):
    payment_id, booking_id = billing.unfinished_payment(hold=dt.timedelta(seconds=1))
    charged_id, _ = billing.unfinished_payment(hold=dt.timedelta(seconds=1), charged=True)
    settled = billing.cashier(after=billing.UNFINISHED).authorize_unfinished()
    assert [p.payment_id for p in settled.failed] == [payment_id]
    rows = {r["payment_id"]: r for r in payment_rows(billing)}
    assert (rows[payment_id]["status"], rows[payment_id]["failure_reason"]) == ("FAILED", "never_authorized")
    assert rows[payment_id]["method_token"] is None
    # The one the provider did charge is kept and settles; registration decides about the late capture.
    assert rows[charged_id]["status"] == "PENDING" and rows[charged_id]["provider_reference"]
    assert [c["merchant_payment_id"] for c in charges(billing)] == [charged_id]
    assert [(e["payment_id"], e["booking_id"], e["reason"]) for e in billing.events("PaymentFailed")] == [
        (payment_id, booking_id, "never_authorized")]
    assert billing.rows("SELECT 1 FROM journal_entries") == []


def test_the_worker_fails_an_unfinished_payment_whose_method_the_provider_refuses(billing):
    patient_id, booking_id = billing.held_booking()
    payment_id = str(uuid.uuid4())
    with billing.db.transaction() as cur:  # as the api left it, with a token the provider does not know
        cur.execute("INSERT INTO payments (payment_id, booking_id, patient_id, amount_fen, status, provider, "
                    "created_at, method_token, hold_expires_at) VALUES (%s, %s, %s, 5000, 'PENDING', 'sandbox', "
                    "now(), 'tok_stolen', now() + interval '15 minutes')", (payment_id, booking_id, patient_id))
    settled = billing.cashier(after=billing.UNFINISHED).authorize_unfinished()
    assert [(p.payment_id, p.failure_reason) for p in settled.failed] == [(payment_id, "unknown_payment_method")]
    assert charges(billing) == []
    assert [e["reason"] for e in billing.events("PaymentFailed")] == ["unknown_payment_method"]


# A retry, or the worker, while the first attempt is still inside the provider's call.


def counted(outcome: str | None = None, name: str = "tuoguan_billing_payments_total") -> float:
    return REGISTRY.get_sample_value(name, {"outcome": outcome} if outcome else {}) or 0.0


def retry_while_at_the_provider(billing, patient_id: str, booking_id: str, key: str, *, wait: float) -> dict:
    """Makes the first attempt of ``key`` wait ``wait`` seconds inside the
    provider's call (its hold runs out meanwhile), then retry: the retry's
    answer, or its refusal's reason, under "retry"."""
    retry: dict = {}

    def slow_provider(_payment_id):
        if retry:
            return
        retry["asked"] = True
        time.sleep(wait)
        try:
            retry["answer"] = billing.pay(patient_id, booking_id, key=key).payment
        except grpc.RpcError as exc:
            retry["answer"] = billing.reason_of(exc)

    billing.provider.before_authorize = slow_provider
    return retry


def test_a_retry_after_the_hold_ended_within_the_grace_is_told_the_payment_is_in_progress(billing):
    # The grace is the api's default (5 s): the first attempt is inside it.
    patient_id, booking_id = billing.held_booking(hold=dt.timedelta(milliseconds=300))
    retry = retry_while_at_the_provider(billing, patient_id, booking_id, "k-1", wait=0.6)
    first = billing.pay(patient_id, booking_id, key="k-1").payment
    billing.provider.before_authorize = None

    # Not failed as never_authorized: the first attempt's charge was on its way.
    assert retry["answer"] == "payment_in_progress"
    assert (first.status, first.provider_reference) == (pb.PAYMENT_STATUS_PENDING, charges(billing)[0]["reference"])
    assert [(r["status"], r["provider_reference"]) for r in payment_rows(billing)] == [
        ("PENDING", first.provider_reference)]
    assert billing.events("PaymentFailed") == [] and len(charges(billing)) == 1
    assert billing.pay(patient_id, booking_id, key="k-1").payment == first  # the retry, again: the first answer
    # It settles as any late capture (registration rejects it and billing refunds it).
    assert [p.payment_id for p in billing.cashier(after=billing.SETTLED).settle_pending().captured] == [
        first.payment_id]


def the_charge_went_back(billing, payment_id: str, reason: str = "never_authorized") -> None:
    """The provider's charge for a FAILED payment was refunded once, and the
    ledger and the provider's statement agree about it."""
    [charge] = billing.rows("SELECT reference, amount_fen, settles_at FROM sandbox_provider.charges "
                            "WHERE merchant_payment_id = %s", payment_id)
    [refund] = billing.rows("SELECT idempotency_key, charge_reference, amount_fen, created_at "
                            "FROM sandbox_provider.refunds")
    assert (refund["idempotency_key"], refund["charge_reference"], refund["amount_fen"]) == (
        f"refund:{payment_id}", charge["reference"], charge["amount_fen"])
    # The payment stays FAILED: registration was told so and released the hold.
    # It shows what was charged after the failure and given back, and when.
    assert billing.rows("SELECT status, failure_reason, provider_reference, refund_requested_reason, refunded_fen, "
                        "refunded_after_failure_fen, refunded_after_failure_at "
                        "FROM payments WHERE payment_id = %s", payment_id) == [{
        "status": "FAILED", "failure_reason": reason, "provider_reference": charge["reference"],
        "refund_requested_reason": None, "refunded_fen": 0, "refunded_after_failure_fen": 5000,
        "refunded_after_failure_at": refund["created_at"]}]
    # So do GetPayment and ListPayments, for the cashier and the patient.
    shown = billing.stub.GetPayment(pb.GetPaymentRequest(payment_id=payment_id),
                                    metadata=billing.token(None, auth.FINANCE)).payment
    assert (shown.status, shown.refunded_fen, shown.refunded_after_failure_fen) == (
        pb.PAYMENT_STATUS_FAILED, 0, 5000)
    assert dt.datetime.fromisoformat(shown.refunded_after_failure_at) == refund["created_at"].replace(
        microsecond=refund["created_at"].microsecond // 1000 * 1000)
    [listed] = billing.stub.ListPayments(pb.ListPaymentsRequest(booking_id=shown.booking_id),
                                         metadata=billing.token(None, auth.FINANCE)).payments
    assert listed == shown
    assert billing.rows("SELECT payment_id::text, amount_fen, reason FROM refunds") == [
        {"payment_id": payment_id, "amount_fen": 5000, "reason": "charged_after_failure"}]
    assert [(e["payment_id"], int(e["amount_fen"])) for e in billing.events("RefundIssued")] == [(payment_id, 5000)]
    assert [e["reason"] for e in billing.events("PaymentFailed")] == [reason]
    assert billing.events("PaymentCaptured") == []
    # Journaled as the capture and the refund the provider's statement shows: the books net to nothing...
    assert sorted((r["kind"], r["effective_at"]) for r in billing.rows(
        "SELECT kind, effective_at FROM journal_entries WHERE payment_id = %s", payment_id)) == [
        ("registration_fee_capture", charge["settles_at"]), ("registration_fee_refund", refund["created_at"])]
    trial = finance.ledger_balances(billing.cashier().store)
    assert {b.account: b.balance_fen for b in trial.balances} == {
        "asset:provider_clearing:sandbox": 0, "revenue:registration_fees": 0}
    assert trial.total_debit_fen == trial.total_credit_fen == 10000
    # ... and the days' reconciliation matches both movements.
    cashier = billing.cashier(after=dt.timedelta(seconds=30))  # the provider's clock past both movements
    lines = [line for day in {business_date_of(charge["settles_at"]), business_date_of(refund["created_at"])}
             for line in finance.reconciliation_report(cashier.store, cashier.provider, day).lines]
    # Both marked as a charge made after the failure, not an ordinary fee and its cancellation.
    assert sorted((line.kind.value, line.payment_id, line.ledger_fen, line.provider_fen, line.outcome, line.reason)
                  for line in lines) == [
        ("capture", payment_id, 5000, 5000, Outcome.MATCHED, "charged_after_failure"),
        ("refund", payment_id, 5000, 5000, Outcome.MATCHED, "charged_after_failure")]


def test_a_charge_that_lands_after_a_retry_gave_the_payment_up_goes_back(short_grace, billing):
    # The reviewer's race: the provider is slow past the hold and the grace, the
    # client retries with the same key, the retry fails the payment as never
    # authorised (PaymentFailed), then the first attempt's charge goes through.
    patient_id, booking_id = billing.held_booking(hold=dt.timedelta(milliseconds=300))
    retry = retry_while_at_the_provider(billing, patient_id, booking_id, "k-1", wait=1.2)
    landed, refunds = counted("charged_after_failure"), counted(name="tuoguan_billing_refunds_total")
    first = billing.pay(patient_id, booking_id, key="k-1").payment
    billing.provider.before_authorize = None

    assert (retry["answer"].status, retry["answer"].failure_reason) == (pb.PAYMENT_STATUS_FAILED, "never_authorized")
    # One answer for the key, the retry's, which came first; the charge's reference is stored all the same.
    assert first == retry["answer"] == billing.pay(patient_id, booking_id, key="k-1").payment
    assert counted("charged_after_failure") == landed + 1
    # The provider has not captured it yet: the refund is asked for, the timer makes it once it has.
    assert billing.rows("SELECT provider_reference, refund_requested_reason FROM payments") == [
        {"provider_reference": charges(billing)[0]["reference"], "refund_requested_reason": "charged_after_failure"}]
    assert billing.rows("SELECT 1 FROM sandbox_provider.refunds") == []

    later = billing.cashier(after=billing.SETTLED)
    assert [(p.payment_id, fen) for p, fen in later.issue_requested_refunds().returned] == [(first.payment_id, 5000)]
    assert counted(name="tuoguan_billing_refunds_total") == refunds + 1
    the_charge_went_back(billing, first.payment_id)
    # Once: neither the timer again nor every other step moves any more money.
    for cashier in (later, billing.cashier(after=dt.timedelta(seconds=30))):
        assert cashier.issue_requested_refunds().returned == []
        cashier.settle_pending(), cashier.give_up_on_unanswered(), cashier.reconcile_unknown()
        cashier.authorize_unfinished()
    the_charge_went_back(billing, first.payment_id)


def test_a_charge_that_lands_after_the_worker_gave_the_payment_up_goes_back_on_the_refund_timer(billing):
    # The worker fails the payment (its clock past the hold and the grace)
    # while the api's request is at the provider; the charge is captured by
    # the time the api stores its reference. The api asks the provider
    # nothing more on the patient's call: it asks for the refund, and the
    # worker's refund timer gives the money back, once.
    patient_id, booking_id = billing.held_booking()
    billing.provider.before_authorize = lambda _: billing.cashier(after=PAST_THE_HOLD).authorize_unfinished()
    billing.provider.after_authorize = lambda _: time.sleep(0.4)  # past the sandbox's settle delay
    payment = billing.pay(patient_id, booking_id).payment
    billing.provider.before_authorize = billing.provider.after_authorize = None

    assert (payment.status, payment.failure_reason) == (pb.PAYMENT_STATUS_FAILED, "never_authorized")
    assert billing.rows("SELECT refund_requested_reason FROM payments") == [
        {"refund_requested_reason": "charged_after_failure"}]
    assert billing.rows("SELECT 1 FROM sandbox_provider.refunds") == []
    assert [p.payment_id for p, _ in billing.cashier(after=billing.SETTLED).issue_requested_refunds().returned] == \
        [payment.payment_id]
    the_charge_went_back(billing, payment.payment_id)
    assert billing.cashier(after=billing.SETTLED).issue_requested_refunds().returned == []
    assert len(billing.rows("SELECT 1 FROM sandbox_provider.refunds")) == 1


def test_a_charge_the_provider_declines_after_the_payment_failed_has_nothing_to_give_back(billing):
    patient_id, booking_id = billing.held_booking()
    billing.provider.before_authorize = lambda _: billing.cashier(after=PAST_THE_HOLD).authorize_unfinished()
    payment = billing.pay(patient_id, booking_id, token="tok_decline").payment
    billing.provider.before_authorize = None
    assert billing.rows("SELECT refund_requested_reason FROM payments") == [
        {"refund_requested_reason": "charged_after_failure"}]

    later = billing.cashier(after=billing.SETTLED)
    assert later.issue_requested_refunds().returned == []
    # Declined: no money moved. The request is dropped, nothing is refunded or journaled.
    assert billing.rows("SELECT status, refund_requested_reason FROM payments") == [
        {"status": "FAILED", "refund_requested_reason": None}]
    assert billing.rows("SELECT 1 FROM sandbox_provider.refunds") == []
    assert billing.rows("SELECT 1 FROM journal_entries WHERE payment_id = %s", payment.payment_id) == []


def test_the_workers_late_authorisation_of_a_payment_failed_meanwhile_goes_back(billing):
    # The worker authorises an unfinished payment while its hold runs; the
    # hold ends while the provider is asked, and a replica (or the api's
    # retry) fails the payment as never authorised meanwhile.
    payment_id, _ = billing.unfinished_payment()
    worker = billing.cashier(after=billing.UNFINISHED)
    authorize = worker.provider.authorize

    def slow_authorize(*args, **kwargs):
        billing.cashier(after=PAST_THE_HOLD).authorize_unfinished()
        return authorize(*args, **kwargs)

    worker.provider.authorize = slow_authorize
    landed = counted("charged_after_failure")
    assert worker.authorize_unfinished().failed == []
    assert counted("charged_after_failure") == landed + 1
    assert billing.rows("SELECT status, refund_requested_reason FROM payments") == [
        {"status": "FAILED", "refund_requested_reason": "charged_after_failure"}]

    assert [p.payment_id for p, _ in billing.cashier(after=billing.LATE_CAPTURED).issue_requested_refunds().returned
            ] == [payment_id]
    the_charge_went_back(billing, payment_id)


# A charge that lands after the payment failed, where nobody stores its reference.


def lost_the_provider(_payment_id):
    raise ProviderUnavailable("the client's deadline passed while the provider made the charge")


def charged_after_it_failed(billing, token: str = "tok_ok", *, ends=lost_the_provider) -> tuple[str, str, str]:
    """(payment id, patient id, booking id) of a payment the worker failed as
    never authorised (its clock past the hold and the grace) while the api's
    call was at the provider, which made the charge all the same; then the
    api's call ended with ``ends`` raised, so the api never stored the charge's
    reference. Its idempotency key is k-1."""
    patient_id, booking_id = billing.held_booking()
    billing.provider.before_authorize = lambda _: billing.cashier(after=PAST_THE_HOLD).authorize_unfinished()
    billing.provider.after_authorize = ends
    try:
        pytest.raises(grpc.RpcError, billing.pay, patient_id, booking_id, token=token, key="k-1")
    finally:
        billing.provider.before_authorize = billing.provider.after_authorize = None
    [row] = billing.rows("SELECT payment_id::text, status, failure_reason, provider_reference FROM payments "
                         "WHERE booking_id = %s", booking_id)
    assert (row["status"], row["failure_reason"], row["provider_reference"]) == ("FAILED", "never_authorized", None)
    assert row["payment_id"] in [c["merchant_payment_id"] for c in charges(billing)]
    return row["payment_id"], patient_id, booking_id


def every_timer(cashier) -> None:
    cashier.authorize_unfinished(), cashier.settle_pending(), cashier.give_up_on_unanswered()
    cashier.reconcile_unknown(), cashier.issue_requested_refunds(), cashier.find_charges_after_failure()


@pytest.mark.parametrize("ends", [lost_the_provider, dies("after the provider charged")])
def test_a_charge_that_lands_after_the_payment_failed_and_the_api_lost_it_goes_back(billing, ends):
    # The reviewer's case: nothing stores the charge's reference, no retry comes.
    payment_id, _, _ = charged_after_it_failed(billing, ends=ends)
    landed, refunds = counted("charged_after_failure"), counted(name="tuoguan_billing_refunds_total")
    # None of the other timers ever looks at a FAILED payment.
    every_other = billing.cashier(after=billing.SETTLED)
    every_other.authorize_unfinished(), every_other.settle_pending(), every_other.give_up_on_unanswered()
    every_other.reconcile_unknown()
    assert every_other.issue_requested_refunds().returned == []

    # The worker's sweep asks the provider about it, stores the charge and,
    # captured by now, gives it back at once.
    returned = billing.cashier(after=billing.SETTLED).find_charges_after_failure().returned
    assert [(p.payment_id, fen) for p, fen in returned] == [(payment_id, 5000)]
    assert counted("charged_after_failure") == landed + 1
    assert counted(name="tuoguan_billing_refunds_total") == refunds + 1
    the_charge_went_back(billing, payment_id)
    # Once: another run of the sweep, or of any timer, changes nothing.
    for after in (billing.SETTLED, dt.timedelta(hours=2)):
        every_timer(billing.cashier(after=after))
    assert counted("charged_after_failure") == landed + 1
    the_charge_went_back(billing, payment_id)


def test_a_retry_of_a_payment_failed_while_its_charge_was_on_the_way_finds_the_charge(billing):
    payment_id, patient_id, booking_id = charged_after_it_failed(billing)
    [charge] = charges(billing)
    landed = counted("charged_after_failure")
    retry = billing.pay(patient_id, booking_id, key="k-1").payment
    # Still failed (registration released the hold), with the charge, whose refund is asked for.
    assert (retry.payment_id, retry.status, retry.failure_reason, retry.provider_reference) == (
        payment_id, pb.PAYMENT_STATUS_FAILED, "never_authorized", charge["reference"])
    assert counted("charged_after_failure") == landed + 1
    assert billing.rows("SELECT refund_requested_reason FROM payments") == [
        {"refund_requested_reason": "charged_after_failure"}]
    assert billing.pay(patient_id, booking_id, key="k-1").payment == retry

    assert billing.cashier(after=billing.SETTLED).find_charges_after_failure().returned == []  # asked for already
    assert [p.payment_id for p, _ in billing.cashier(after=billing.SETTLED).issue_requested_refunds().returned] == [
        payment_id]
    every_timer(billing.cashier(after=billing.SETTLED))
    assert counted("charged_after_failure") == landed + 1
    the_charge_went_back(billing, payment_id)


def test_a_charge_the_providers_records_show_after_reconciliation_failed_the_payment_goes_back(billing):
    payment = billing.new_payment("tok_timeout")  # answered only in the provider's records, captured late
    billing.cashier(after=billing.TIMED_OUT).give_up_on_unanswered()
    # The provider's records do not show the charge yet: reconciliation fails the payment.
    reconciling = billing.cashier(after=billing.TIMED_OUT)
    reconciling.provider.lookup = lambda references: []
    assert [(p.payment_id, p.failure_reason) for p in reconciling.reconcile_unknown().failed] == [
        (payment.payment_id, "not_found_at_provider")]
    landed = counted("charged_after_failure")

    # The sweep finds the charge, not captured yet: its refund is asked for...
    assert billing.cashier(after=billing.TIMED_OUT).find_charges_after_failure().returned == []
    assert counted("charged_after_failure") == landed + 1
    assert billing.rows("SELECT status, refund_requested_reason FROM payments") == [
        {"status": "FAILED", "refund_requested_reason": "charged_after_failure"}]
    # ... and the refund timer makes it once the provider has captured it.
    later = billing.cashier(after=billing.LATE_CAPTURED)
    assert [p.payment_id for p, _ in later.issue_requested_refunds().returned] == [payment.payment_id]
    every_timer(later)
    assert counted("charged_after_failure") == landed + 1
    the_charge_went_back(billing, payment.payment_id, reason="not_found_at_provider")


def test_a_charge_that_lands_on_a_payment_failed_with_a_refund_asked_for_goes_back(billing):
    # A cancellation's refund asked for while the payment was UNKNOWN
    # (AWAIT_CAPTURE), then reconciliation failed it: the refund asked for
    # found nothing captured, and must not keep the payment out of the
    # sweep when the provider's records show its charge after all.
    payment = billing.new_payment("tok_timeout")
    billing.cashier(after=billing.TIMED_OUT).give_up_on_unanswered()
    with billing.db.transaction() as cur:
        billing.cashier(after=billing.TIMED_OUT).refund_for_booking(
            cur, payment_id=payment.payment_id, booking_id=payment.booking_id, reason="booking_cancelled")
    reconciling = billing.cashier(after=billing.TIMED_OUT)
    reconciling.provider.lookup = lambda references: []
    assert [p.failure_reason for p in reconciling.reconcile_unknown().failed] == ["not_found_at_provider"]

    later = billing.cashier(after=billing.LATE_CAPTURED)
    later.find_charges_after_failure()
    later.issue_requested_refunds()
    the_charge_went_back(billing, payment.payment_id, reason="not_found_at_provider")


def test_the_sweep_asks_nothing_back_for_a_declined_charge_nor_for_what_moved_no_money(billing, caplog):
    never_charged, _ = billing.unfinished_payment(hold=dt.timedelta(seconds=1))
    billing.cashier(after=billing.UNFINISHED).authorize_unfinished()  # failed: the provider never saw it
    declined, _, _ = charged_after_it_failed(billing, token="tok_decline")
    landed = counted("charged_after_failure")
    caplog.clear()
    sweep = billing.cashier(after=billing.SETTLED)
    assert sweep.find_charges_after_failure().returned == []
    # Declined: no money moved, so no charge after failure, nothing to alert on.
    assert counted("charged_after_failure") == landed
    assert billing.rows("SELECT 1 FROM payments WHERE refund_requested_reason IS NOT NULL") == []
    assert sweep.issue_requested_refunds().returned == []
    for _ in range(2):
        assert sweep.find_charges_after_failure().returned == []
    assert counted("charged_after_failure") == landed
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert {r["payment_id"]: (r["status"], r["provider_reference"] is None, r["refund_requested_reason"])
            for r in billing.rows("SELECT payment_id::text, status, provider_reference, refund_requested_reason "
                                  "FROM payments")} == {
        never_charged: ("FAILED", True, None), declined: ("FAILED", False, None)}
    assert billing.rows("SELECT 1 FROM sandbox_provider.refunds") == [] and billing.rows("SELECT 1 FROM refunds") == []


def test_the_sweep_takes_a_batch_at_a_time_and_only_failures_of_its_window(billing):
    first, _, _ = charged_after_it_failed(billing)
    second, _, _ = charged_after_it_failed(billing)
    # Failed longer ago than the window (a day by default): no longer asked about.
    assert billing.cashier(after=dt.timedelta(hours=25)).find_charges_after_failure().returned == []
    assert billing.rows("SELECT 1 FROM payments WHERE refund_requested_reason IS NOT NULL") == []

    sweep = billing.cashier(after=billing.SETTLED)
    sweep.batch_size = 1
    assert [p.payment_id for p, _ in sweep.find_charges_after_failure().returned] == [first]
    assert [p.payment_id for p, _ in sweep.find_charges_after_failure().returned] == [second]
    assert sweep.find_charges_after_failure().returned == []
    assert sorted(r["payment_id"] for r in billing.rows("SELECT payment_id::text FROM refunds")) == sorted(
        [first, second])


def test_the_sweep_reads_its_window_on_its_index(billing):
    class Explained:
        """A cursor that plans the store's query instead of running it."""

        def __init__(self, cur):
            self.cur, self.plan = cur, ""

        def execute(self, sql, params=None, **options):
            self.cur.execute("EXPLAIN " + sql, params)
            self.plan = " ".join(str(row) for row in self.cur.fetchall())

        def fetchall(self):
            return []

    store = billing.cashier().store
    with billing.db.transaction() as cur:
        cur.execute("SET LOCAL enable_seqscan = off")  # the test's table is too small to be worth an index
        for after in (None, (dt.datetime.now(dt.timezone.utc), str(uuid.uuid4()))):
            explained = Explained(cur)
            store.failed_unheard(explained, dt.datetime.now(dt.timezone.utc), after, 10)
            assert "payments_failed_unheard" in explained.plan, explained.plan
