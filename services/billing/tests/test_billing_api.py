"""Billing's API on the real PostgreSQL, in-process, with a registration-like
gRPC server answering GetBooking. The worker's steps run here through the
same cashier the worker uses, with its clock moved forward instead of sleeping."""
from __future__ import annotations

import datetime as dt
import uuid

import grpc
import psycopg
import pytest
from prometheus_client import REGISTRY

from billing.domain import ledger
from billing.exceptions import ProviderRequestConflict
from tuoguan.billing.v1 import billing_pb2 as pb
from tuoguan.registration.v1 import events_pb2 as registration_events
from tuoguan.registration.v1 import registration_pb2
from tuoguan_common import auth, outbox

pytestmark = pytest.mark.integration

def fails(call, code: grpc.StatusCode) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    assert caught.value.code() == code, caught.value.details()
    return caught.value


def captured_payment(billing) -> pb.Payment:
    payment = billing.new_payment()
    billing.cashier(after=billing.SETTLED).settle_pending()
    return payment


def balances(billing) -> pb.GetLedgerBalancesResponse:
    return billing.stub.GetLedgerBalances(pb.GetLedgerBalancesRequest(), metadata=billing.token(None, auth.FINANCE))


def status_of(billing, payment_id) -> str:
    return billing.rows("SELECT status FROM payments WHERE payment_id = %s", payment_id)[0]["status"]


def cancellation(payment: pb.Payment, event_id: str | None = None) -> dict:
    event = registration_events.BookingCancelled(
        booking_id=payment.booking_id, patient_id=payment.patient_id, slot_id="slot-1", reason="patient",
        refund_due=True, payment_id=payment.payment_id, fee_fen=payment.amount_fen,
    )
    return outbox.event_payload(event, event_id or str(uuid.uuid4()), outbox.utcnow())


# Paying.


def test_paying_starts_a_pending_payment_for_the_bookings_fee(billing):
    patient_id, booking_id = billing.held_booking(fee_fen=1250)
    payment = billing.pay(patient_id, booking_id).payment
    assert payment.status == pb.PAYMENT_STATUS_PENDING
    assert payment.amount_fen == 1250 and payment.booking_id == booking_id and payment.patient_id == patient_id
    assert payment.provider_reference.startswith("sbx_ch_")
    assert payment.created_at.endswith("Z") and payment.settled_at == ""
    charge = billing.rows("SELECT merchant_payment_id, amount_fen FROM sandbox_provider.charges")
    assert charge == [{"merchant_payment_id": payment.payment_id, "amount_fen": 1250}]


def test_the_provider_settles_later_and_the_capture_is_booked_once(billing):
    patient_id, booking_id = billing.held_booking()
    payment = billing.pay(patient_id, booking_id).payment
    assert billing.cashier().settle_pending().captured == []  # the provider has not answered yet
    settled = billing.cashier(after=billing.SETTLED).settle_pending()
    assert [p.payment_id for p in settled.captured] == [payment.payment_id]
    assert billing.cashier(after=billing.SETTLED).settle_pending().captured == []

    got = billing.stub.GetPayment(pb.GetPaymentRequest(payment_id=payment.payment_id),
                                  metadata=billing.token(patient_id)).payment
    assert got.status == pb.PAYMENT_STATUS_CAPTURED and got.settled_at
    captured_events = billing.events("PaymentCaptured")
    assert [(e["payment_id"], e["booking_id"], int(e["amount_fen"])) for e in captured_events] == [
        (payment.payment_id, booking_id, 5000)]
    assert captured_events[0]["event_id"] and captured_events[0]["occurred_at"]
    entries = billing.rows("SELECT kind FROM journal_entries WHERE payment_id = %s", payment.payment_id)
    assert entries == [{"kind": "registration_fee_capture"}]

    books = balances(billing)
    by_account = {b.account: b for b in books.balances}
    assert by_account["asset:provider_clearing:sandbox"].balance_fen == 5000
    assert by_account["revenue:registration_fees"].balance_fen == 5000
    assert books.total_debit_fen == books.total_credit_fen == 5000



def test_payments_the_provider_leaves_unanswered_do_not_starve_newer_ones(billing):
    # An acquirer may keep a batch's worth of payments PENDING for minutes:
    # the rounds carry on past them instead of asking about them again.
    stuck = [billing.new_payment(token="tok_timeout") for _ in range(2)]
    newer = billing.new_payment()
    cashier = billing.cashier(after=billing.SETTLED, batch_size=2)
    assert cashier.settle_pending().captured == []
    assert [p.payment_id for p in cashier.settle_pending().captured] == [newer.payment_id]
    # Past the end it starts again from the oldest, still unanswered.
    assert cashier.settle_pending().captured == []
    assert [status_of(billing, p.payment_id) for p in stuck] == ["PENDING", "PENDING"]

def test_the_same_idempotency_key_returns_the_first_answer_and_charges_once(billing):
    patient_id, booking_id = billing.held_booking()
    first = billing.pay(patient_id, booking_id, key="k-1")
    again = billing.pay(patient_id, booking_id, key="k-1")
    assert again == first
    billing.cashier(after=billing.SETTLED).settle_pending()
    # Even after the capture, the repeat answers as the first time and changes nothing.
    assert billing.pay(patient_id, booking_id, key="k-1") == first
    assert len(billing.rows("SELECT 1 FROM payments")) == 1
    assert len(billing.rows("SELECT 1 FROM sandbox_provider.charges")) == 1
    assert len(billing.rows("SELECT 1 FROM journal_entries")) == 1
    assert len(billing.events("PaymentCaptured")) == 1


def test_a_key_reused_for_another_request_is_refused(billing):
    patient_id, booking_id = billing.held_booking()
    billing.pay(patient_id, booking_id, key="k-1")
    error = fails(lambda: billing.pay(patient_id, booking_id, token="tok_decline", key="k-1"),
                  grpc.StatusCode.INVALID_ARGUMENT)
    assert "idempotency_key" in error.details()
    assert billing.reason_of(error) == "idempotency_key_reused"


def test_a_key_used_again_after_retention_purged_it_is_refused_as_reused_for_a_new_booking(billing):
    patient_id, booking_id = billing.held_booking()
    paid = billing.pay(patient_id, booking_id, key="k-1").payment
    billing.cashier(after=billing.SETTLED).settle_pending()
    billing.rows("DELETE FROM idempotency_keys RETURNING 1")  # a week later, as the retention purge does
    another = billing.registration.add(patient_id)
    for _ in range(2):  # the key's payment id is another booking's: told so every time, not "in progress"
        error = fails(lambda: billing.pay(patient_id, another, key="k-1"), grpc.StatusCode.INVALID_ARGUMENT)
        assert billing.reason_of(error) == "idempotency_key_reused"
        assert dict(error.trailing_metadata())["tuoguan-field"] == "idempotency_key"
    # Nothing left behind: neither the key nor a payment nor a charge.
    assert billing.rows("SELECT 1 FROM idempotency_keys") == []
    assert [r["payment_id"] for r in billing.rows("SELECT payment_id::text FROM payments")] == [paid.payment_id]
    assert len(billing.rows("SELECT 1 FROM sandbox_provider.charges")) == 1
    # A new key pays it.
    assert billing.pay(patient_id, another, key="k-2").payment.booking_id == another


def test_one_payment_per_booking_while_pending_or_captured(billing):
    patient_id, booking_id = billing.held_booking()
    billing.pay(patient_id, booking_id)
    error = fails(lambda: billing.pay(patient_id, booking_id), grpc.StatusCode.FAILED_PRECONDITION)
    assert billing.reason_of(error) == "payment_in_progress"
    billing.cashier(after=billing.SETTLED).settle_pending()
    error = fails(lambda: billing.pay(patient_id, booking_id), grpc.StatusCode.FAILED_PRECONDITION)
    assert billing.reason_of(error) == "already_paid"


def test_concurrent_attempts_on_one_booking_make_one_payment(billing):
    patient_id, booking_id = billing.held_booking()
    outcomes = billing.pay_at_once(patient_id, booking_id, [None] * 6)
    assert sorted(o if isinstance(o, str) else "paid" for o in outcomes) == ["paid"] + ["payment_in_progress"] * 5
    assert len(billing.rows("SELECT 1 FROM sandbox_provider.charges")) == 1


@pytest.mark.parametrize("token,reason", [("tok_decline", "card_declined"),
                                          ("tok_insufficient_funds", "insufficient_funds")])
def test_a_declined_payment_fails_and_its_booking_is_not_paid_again(billing, token, reason):
    patient_id, booking_id = billing.held_booking()
    declined = billing.pay(patient_id, booking_id, token=token).payment
    settled = billing.cashier(after=billing.SETTLED).settle_pending()
    assert [p.payment_id for p in settled.failed] == [declined.payment_id]
    got = billing.stub.GetPayment(pb.GetPaymentRequest(payment_id=declined.payment_id),
                                  metadata=billing.token(patient_id)).payment
    assert got.status == pb.PAYMENT_STATUS_FAILED and got.failure_reason == reason
    failed_events = billing.events("PaymentFailed")
    assert [(e["payment_id"], e["booking_id"], e["reason"]) for e in failed_events] == [
        (declined.payment_id, booking_id, reason)]
    assert billing.rows("SELECT 1 FROM journal_entries") == []

    # Registration releases the hold on PaymentFailed: one payment per hold,
    # even while registration still shows the booking HELD.
    error = fails(lambda: billing.pay(patient_id, booking_id), grpc.StatusCode.FAILED_PRECONDITION)
    assert billing.reason_of(error) == "payment_failed_hold_released"
    assert "hold the slot again" in error.details()
    billing.registration.set_status(booking_id, registration_pb2.BOOKING_STATUS_EXPIRED)
    error = fails(lambda: billing.pay(patient_id, booking_id), grpc.StatusCode.FAILED_PRECONDITION)
    assert billing.reason_of(error) == "payment_failed_hold_released"
    listed = billing.stub.ListPayments(pb.ListPaymentsRequest(booking_id=booking_id),
                                       metadata=billing.token(patient_id)).payments
    assert [p.status for p in listed] == [pb.PAYMENT_STATUS_FAILED]
    assert len(billing.rows("SELECT 1 FROM sandbox_provider.charges")) == 1
    assert len(billing.rows("SELECT 1 FROM idempotency_keys")) == 1


def test_an_unanswered_payment_becomes_unknown_and_reconciliation_captures_it(billing):
    patient_id, booking_id = billing.held_booking()
    payment = billing.pay(patient_id, booking_id, token="tok_timeout").payment
    assert billing.cashier(after=billing.SETTLED).settle_pending().captured == []
    assert [p.payment_id for p in billing.cashier(after=billing.TIMED_OUT).give_up_on_unanswered().unknown] == [
        payment.payment_id]
    assert status_of(billing, payment.payment_id) == "UNKNOWN"
    error = fails(lambda: billing.pay(patient_id, booking_id), grpc.StatusCode.FAILED_PRECONDITION)
    assert billing.reason_of(error) == "payment_in_progress"

    # The provider has not captured it yet either: it stays UNKNOWN.
    assert billing.cashier(after=billing.TIMED_OUT).reconcile_unknown().captured == []
    assert status_of(billing, payment.payment_id) == "UNKNOWN"

    # Its records show it captured later, as a bank's would; the online API still says nothing.
    assert billing.cashier(after=billing.LATE_CAPTURED).settle_pending().captured == []
    settled = billing.cashier(after=billing.LATE_CAPTURED).reconcile_unknown()
    assert [p.payment_id for p in settled.captured] == [payment.payment_id]
    assert status_of(billing, payment.payment_id) == "CAPTURED"
    assert [e["payment_id"] for e in billing.events("PaymentCaptured")] == [payment.payment_id]
    assert billing.cashier(after=billing.LATE_CAPTURED).reconcile_unknown().captured == []
    assert len(billing.rows("SELECT 1 FROM journal_entries")) == 1


def test_unknown_payments_the_providers_records_leave_pending_do_not_starve_newer_ones(billing):
    # An acquirer's back office may keep a batch's worth of charges pending
    # for hours after an outage: reconciliation carries on past them, as the
    # settling rounds do, instead of asking about the same oldest batch again
    # while newer payments' captures (or declines) wait unbooked.
    stuck = [billing.new_payment(token="tok_timeout") for _ in range(2)]
    newer = billing.new_payment(token="tok_timeout")
    billing.cashier(after=billing.TIMED_OUT).give_up_on_unanswered()
    billing.rows("UPDATE sandbox_provider.charges SET settles_at = now() + interval '1 day' "
                 "WHERE merchant_payment_id = ANY(%s) RETURNING 1", [p.payment_id for p in stuck])
    cashier = billing.cashier(after=billing.LATE_CAPTURED, batch_size=2)
    captured = [p.payment_id for _ in range(3) for p in cashier.reconcile_unknown().captured]
    assert captured == [newer.payment_id]
    assert [status_of(billing, p.payment_id) for p in stuck] == ["UNKNOWN", "UNKNOWN"]


def test_a_timed_out_payment_answered_at_the_last_moment_is_captured_not_unknown(billing):
    patient_id, booking_id = billing.held_booking()
    payment = billing.pay(patient_id, booking_id).payment
    settled = billing.cashier(after=billing.TIMED_OUT).give_up_on_unanswered()
    assert [p.payment_id for p in settled.captured] == [payment.payment_id] and settled.unknown == []


# Refunds.


def test_a_cancelled_booking_is_refunded_exactly_once_whatever_the_redeliveries(billing):
    payment = captured_payment(billing)
    worker = billing.worker(after=billing.SETTLED)
    event = cancellation(payment)
    assert worker.refund_cancelled_booking(event) == "ok"
    assert worker.refund_cancelled_booking(event) == "duplicate"  # the same event again
    assert worker.refund_cancelled_booking(cancellation(payment)) == "ok"  # another event for the same booking

    refunds = billing.events("RefundIssued")
    assert len(refunds) == 1
    assert (refunds[0]["payment_id"], refunds[0]["booking_id"], int(refunds[0]["amount_fen"])) == (
        payment.payment_id, payment.booking_id, 5000)
    assert len(billing.rows("SELECT 1 FROM refunds")) == 1
    assert len(billing.rows("SELECT 1 FROM sandbox_provider.refunds")) == 1
    assert status_of(billing, payment.payment_id) == "REFUNDED"
    got = billing.stub.GetPayment(pb.GetPaymentRequest(payment_id=payment.payment_id),
                                  metadata=billing.token(None, auth.FINANCE)).payment
    assert got.status == pb.PAYMENT_STATUS_REFUNDED and got.refunded_fen == 5000

    books = balances(billing)
    assert {b.account: b.balance_fen for b in books.balances} == {
        "asset:provider_clearing:sandbox": 0, "revenue:registration_fees": 0}
    assert books.total_debit_fen == books.total_credit_fen == 10000


def test_a_cancellation_without_refund_due_refunds_nothing(billing):
    payment = captured_payment(billing)
    event = cancellation(payment)
    event["refund_due"] = False
    assert billing.worker(after=billing.SETTLED).refund_cancelled_booking(event) == "ok"
    assert billing.events("RefundIssued") == [] and status_of(billing, payment.payment_id) == "CAPTURED"


def test_a_capture_rejected_by_registration_is_refunded(billing):
    payment = captured_payment(billing)
    event = outbox.event_payload(registration_events.PaymentRejected(
        booking_id=payment.booking_id, payment_id=payment.payment_id, reason="hold_expired",
    ), str(uuid.uuid4()), outbox.utcnow())
    worker = billing.worker(after=billing.SETTLED)
    assert worker.refund_rejected_payment(event) == "ok"
    assert worker.refund_rejected_payment(event) == "duplicate"
    assert [e["payment_id"] for e in billing.events("RefundIssued")] == [payment.payment_id]
    assert billing.rows("SELECT reason FROM refunds") == [{"reason": "payment_rejected"}]


@pytest.mark.parametrize("payment_id", ["", "not-a-uuid"])
def test_a_refund_event_naming_no_payment_refunds_nothing(billing, payment_id):
    """Audit: a PaymentRejected (or a cancellation) whose payment id was blank or no id refunded whatever live
    payment the booking had: a rejection naming no payment, sent for a booking that stays confirmed, gave its
    good fee back. A rejection must name its payment, a cancellation may name none (its capture still on its
    way) but never a wrong one: dead-lettered as malformed, nothing refunded."""
    payment = captured_payment(billing)
    worker = billing.worker(after=billing.SETTLED)
    rejected = outbox.event_payload(registration_events.PaymentRejected(
        booking_id=payment.booking_id, payment_id=payment_id, reason="already_paid",
    ), str(uuid.uuid4()), outbox.utcnow())
    assert worker.refund_rejected_payment(rejected) == "malformed"
    cancelled = cancellation(payment)
    cancelled["payment_id"] = payment_id
    assert worker.refund_cancelled_booking(cancelled) == ("ok" if not payment_id else "malformed")
    if payment_id:
        assert billing.events("RefundIssued") == [] and status_of(billing, payment.payment_id) == "CAPTURED"
        assert len(billing.rows("SELECT 1 FROM dead_letters")) == 2
    else:  # a cancellation before registration knew the payment: the booking's payment is its fee
        assert [e["payment_id"] for e in billing.events("RefundIssued")] == [payment.payment_id]
        assert billing.rows("SELECT reason FROM refunds") == [{"reason": "booking_cancelled"}]

@pytest.mark.parametrize("names_payment", [True, False])
def test_a_refund_event_spelling_the_booking_id_otherwise_still_refunds(billing, names_payment):
    # The event passes its check with any spelling uuid reads (require_ids);
    # the booking's payment is stored under the canonical one. Compared as
    # sent, the refund was dropped as "another booking's payment" and the
    # event recorded as handled: the patient's fee never went back.
    payment = captured_payment(billing)
    event = cancellation(payment)
    event["booking_id"] = payment.booking_id.upper()
    if not names_payment:
        event["payment_id"] = ""
    assert billing.worker(after=billing.SETTLED).refund_cancelled_booking(event) == "ok"
    assert [e["payment_id"] for e in billing.events("RefundIssued")] == [payment.payment_id]
    assert status_of(billing, payment.payment_id) == "REFUNDED"


def test_a_refund_asked_before_the_capture_is_known_is_issued_once_captured(billing):
    patient_id, booking_id = billing.held_booking()
    payment = billing.pay(patient_id, booking_id, token="tok_timeout").payment
    billing.cashier(after=billing.TIMED_OUT).give_up_on_unanswered()
    assert billing.worker(after=billing.TIMED_OUT).refund_cancelled_booking(cancellation(payment)) == "ok"
    assert billing.events("RefundIssued") == [] and status_of(billing, payment.payment_id) == "UNKNOWN"

    late = billing.cashier(after=billing.LATE_CAPTURED)
    late.reconcile_unknown()
    assert [p.payment_id for p in late.issue_requested_refunds().refunded] == [payment.payment_id]
    assert late.issue_requested_refunds().refunded == []
    assert status_of(billing, payment.payment_id) == "REFUNDED"
    assert len(billing.events("RefundIssued")) == 1


def refunds_counted() -> tuple[float, float]:
    return (REGISTRY.get_sample_value("tuoguan_billing_refunds_total") or 0.0,
            REGISTRY.get_sample_value("tuoguan_billing_refunded_fen_total") or 0.0)


def test_a_refund_rolled_back_at_its_commit_is_not_counted(billing):
    payment = captured_payment(billing)
    worker = billing.worker(after=billing.SETTLED)
    refund = worker.cashier.refund_for_booking

    def then_a_stray_line(cur, **event):
        done = refund(cur, **event)
        # A line slipped into the refund's entry: the ledger's balance check
        # refuses the transaction at its commit, after the handler returned.
        cur.execute("INSERT INTO journal_lines SELECT entry_id, 9, 'revenue:registration_fees', 'credit', 1 "
                    "FROM journal_entries WHERE payment_id = %s AND kind = 'registration_fee_refund'",
                    (payment.payment_id,))
        return done

    worker.cashier.refund_for_booking = then_a_stray_line
    before = refunds_counted()
    assert worker.refund_cancelled_booking(cancellation(payment)) == "dead_lettered"
    assert status_of(billing, payment.payment_id) == "CAPTURED" and billing.rows("SELECT 1 FROM refunds") == []
    assert refunds_counted() == before

    worker.cashier.refund_for_booking = refund
    assert worker.refund_cancelled_booking(cancellation(payment)) == "ok"
    assert refunds_counted() == (before[0] + 1, before[1] + 5000)


def test_a_refund_that_keeps_failing_does_not_hold_back_the_others(billing, caplog):
    stuck, other = captured_payment(billing), captured_payment(billing)
    with billing.db.transaction() as cur:
        cur.execute("UPDATE payments SET refund_requested_reason = 'booking_cancelled'")
        # The provider saw the first one's refund key with another refund: it refuses it every time.
        cur.execute("INSERT INTO sandbox_provider.refunds (reference, charge_reference, idempotency_key, amount_fen, "
                    "created_at) VALUES ('sbx_re_other', %s, %s, 1, now())",
                    (stuck.provider_reference, f"refund:{stuck.payment_id}"))
    failed = REGISTRY.get_sample_value("tuoguan_billing_payments_total", {"outcome": "refund_failed"}) or 0.0
    later = billing.cashier(after=billing.SETTLED)
    assert [p.payment_id for p in later.issue_requested_refunds().refunded] == [other.payment_id]
    # On every run: the stuck one is tried first, fails alone, and is counted each time.
    assert later.issue_requested_refunds().refunded == []
    assert REGISTRY.get_sample_value("tuoguan_billing_payments_total", {"outcome": "refund_failed"}) == failed + 2
    assert {r["payment_id"]: (r["status"], r["refund_requested_reason"]) for r in billing.rows(
        "SELECT payment_id::text, status, refund_requested_reason FROM payments")} == {
        stuck.payment_id: ("CAPTURED", "booking_cancelled"), other.payment_id: ("REFUNDED", None)}
    [logged, _] = [r for r in caplog.records if r.getMessage() == "provider did not refund; will retry"]
    assert (logged.payment_id, logged.error) == (stuck.payment_id, ProviderRequestConflict.__name__)
    assert stuck.patient_id not in caplog.text


# Who may do what, and bad input.


def test_only_the_callers_held_booking_can_be_paid(billing):
    patient_id, booking_id = billing.held_booking()
    fails(lambda: billing.pay(str(uuid.uuid4()), booking_id), grpc.StatusCode.PERMISSION_DENIED)
    fails(lambda: billing.pay(patient_id, str(uuid.uuid4())), grpc.StatusCode.NOT_FOUND)
    billing.registration.set_status(booking_id, registration_pb2.BOOKING_STATUS_EXPIRED)
    error = fails(lambda: billing.pay(patient_id, booking_id), grpc.StatusCode.FAILED_PRECONDITION)
    assert billing.reason_of(error) == "booking_not_held"
    assert billing.rows("SELECT 1 FROM payments") == [] and billing.rows("SELECT 1 FROM idempotency_keys") == []


def test_a_booking_whose_hold_is_over_is_not_charged_though_registration_still_says_held(billing):
    # Registration's expiry timer has not got to the booking yet: GetBooking says HELD, its hold ended.
    patient_id, booking_id = billing.held_booking(hold=-dt.timedelta(seconds=1))
    error = fails(lambda: billing.pay(patient_id, booking_id), grpc.StatusCode.FAILED_PRECONDITION)
    assert billing.reason_of(error) == "booking_not_held" and "hold is over" in error.details()
    assert billing.rows("SELECT 1 FROM payments") == [] and billing.rows("SELECT 1 FROM idempotency_keys") == []
    assert billing.rows("SELECT 1 FROM sandbox_provider.charges") == []


A_BOOKING = "5b1e6f9c-3d1a-4c55-9a43-0f6f7b0d2a11"


@pytest.mark.parametrize("booking_id,token,key,field,problem", [
    ("", "tok_ok", "k", "booking_id", "is required"),
    ("b", "tok_ok", "k", "booking_id", "is not a valid id"),
    ("5b1e6f9c-3d1a-4c55-9a43", "tok_ok", "k", "booking_id", "is not a valid id"),
    (A_BOOKING, "", "k", "payment_method_token", "is required"),
    (A_BOOKING, "4111 1111 1111 1111", "k", "payment_method_token", "is not a payment method token"),
    (A_BOOKING, "tok_ok", "", "idempotency_key", "is required"),
])
def test_bad_input_names_the_field(billing, booking_id, token, key, field, problem):
    error = fails(lambda: billing.stub.PayRegistrationFee(
        pb.PayRegistrationFeeRequest(booking_id=booking_id, payment_method_token=token, idempotency_key=key),
        metadata=billing.token()), grpc.StatusCode.INVALID_ARGUMENT)
    assert dict(error.trailing_metadata())["tuoguan-field"] == field
    assert billing.reason_of(error) == "invalid_argument" and problem in error.details()
    assert billing.registration.asked == []


def test_a_booking_id_is_used_in_its_canonical_form(billing):
    patient_id, booking_id = billing.held_booking()
    spelled = "{" + booking_id.upper() + "}"
    payment = billing.pay(patient_id, spelled, key="k-1").payment
    assert payment.booking_id == booking_id
    assert billing.registration.asked == [booking_id]
    assert billing.rows("SELECT booking_id FROM payments") == [{"booking_id": booking_id}]
    # Another spelling of the same request is the same request.
    assert billing.pay(patient_id, booking_id.replace("-", ""), key="k-1").payment == payment
    error = fails(lambda: billing.pay(patient_id, booking_id.upper()), grpc.StatusCode.FAILED_PRECONDITION)
    assert billing.reason_of(error) == "payment_in_progress"
    listed = billing.stub.ListPayments(pb.ListPaymentsRequest(booking_id=booking_id.upper()),
                                       metadata=billing.token(patient_id)).payments
    assert [p.payment_id for p in listed] == [payment.payment_id]
    error = fails(lambda: billing.stub.ListPayments(pb.ListPaymentsRequest(booking_id="nope"),
                                                    metadata=billing.token(patient_id)),
                  grpc.StatusCode.INVALID_ARGUMENT)
    assert dict(error.trailing_metadata())["tuoguan-field"] == "booking_id"


def test_a_booking_without_a_fee_is_refused_as_no_fee_due(billing):
    # Registration confirms a free booking as it holds it: billing is asked
    # about a CONFIRMED booking of fee 0, and there is nothing to charge.
    patient_id, booking_id = billing.held_booking(fee_fen=0)
    assert billing.registration.bookings[booking_id].status == registration_pb2.BOOKING_STATUS_CONFIRMED
    error = fails(lambda: billing.pay(patient_id, booking_id), grpc.StatusCode.FAILED_PRECONDITION)
    assert billing.reason_of(error) == "no_fee_due"
    assert billing.rows("SELECT 1 FROM payments") == [] and billing.rows("SELECT 1 FROM idempotency_keys") == []
    assert billing.rows("SELECT 1 FROM sandbox_provider.charges") == []


def test_a_token_the_provider_does_not_know_is_refused_and_nothing_is_written(billing):
    patient_id, booking_id = billing.held_booking()
    error = fails(lambda: billing.pay(patient_id, booking_id, token="tok_stolen"), grpc.StatusCode.INVALID_ARGUMENT)
    assert billing.reason_of(error) == "unknown_payment_method"
    assert billing.rows("SELECT 1 FROM payments") == [] and billing.rows("SELECT 1 FROM idempotency_keys") == []
    assert billing.pay(patient_id, booking_id).payment.status == pb.PAYMENT_STATUS_PENDING


def test_paying_needs_a_patients_token(billing):
    request = pb.PayRegistrationFeeRequest(booking_id="b", payment_method_token="tok_ok", idempotency_key="k")
    fails(lambda: billing.stub.PayRegistrationFee(request), grpc.StatusCode.UNAUTHENTICATED)
    fails(lambda: billing.stub.PayRegistrationFee(request, metadata=billing.token(None, auth.FINANCE)),
          grpc.StatusCode.PERMISSION_DENIED)


def test_payments_are_read_by_their_patient_or_finance(billing):
    patient_id, booking_id = billing.held_booking()
    payment = billing.pay(patient_id, booking_id).payment
    get = pb.GetPaymentRequest(payment_id=payment.payment_id)
    for roles in ([auth.FINANCE], [auth.ADMIN], [auth.SERVICE]):
        assert billing.stub.GetPayment(get, metadata=billing.token(None, *roles)).payment.payment_id == \
            payment.payment_id
    fails(lambda: billing.stub.GetPayment(get, metadata=billing.token()), grpc.StatusCode.PERMISSION_DENIED)
    fails(lambda: billing.stub.ListPayments(pb.ListPaymentsRequest(booking_id=booking_id),
                                            metadata=billing.token()), grpc.StatusCode.PERMISSION_DENIED)
    fails(lambda: billing.stub.GetPayment(pb.GetPaymentRequest(payment_id=str(uuid.uuid4())),
                                          metadata=billing.token(patient_id)), grpc.StatusCode.NOT_FOUND)
    error = fails(lambda: billing.stub.GetPayment(pb.GetPaymentRequest(payment_id="not-an-id"),
                                                  metadata=billing.token(patient_id)), grpc.StatusCode.INVALID_ARGUMENT)
    assert dict(error.trailing_metadata())["tuoguan-field"] == "payment_id"
    mine = billing.stub.ListPayments(pb.ListPaymentsRequest(), metadata=billing.token(patient_id)).payments
    assert [p.payment_id for p in mine] == [payment.payment_id]


@pytest.mark.parametrize("spelling", [
    lambda id: f"urn:uuid:{id}", lambda id: id.upper(), lambda id: "{" + id.replace("-", "") + "}",
    lambda id: id.replace("-", "")[:1] + "-" + id.replace("-", "")[1:],
])
def test_a_payment_is_found_under_any_spelling_of_its_id(billing, spelling):
    payment = billing.new_payment()
    got = billing.stub.GetPayment(pb.GetPaymentRequest(payment_id=spelling(payment.payment_id)),
                                  metadata=billing.token(None, auth.FINANCE)).payment
    assert got.payment_id == payment.payment_id


@pytest.mark.parametrize("payment_id", [f"urn:uuid:{uuid.uuid4()}", "1-" + uuid.uuid4().hex[1:]])
def test_a_payment_id_postgresql_would_not_read_is_not_an_internal_error(billing, payment_id):
    fails(lambda: billing.stub.GetPayment(pb.GetPaymentRequest(payment_id=payment_id),
                                          metadata=billing.token(None, auth.FINANCE)), grpc.StatusCode.NOT_FOUND)


@pytest.mark.parametrize("business_date", ["9999-12-31", "0001-01-01", "2026-W48-4", "2026-330"])
def test_a_report_date_out_of_range_or_not_yyyy_mm_dd_is_an_invalid_argument(billing, business_date):
    error = fails(lambda: billing.stub.GetReconciliationReport(
        pb.GetReconciliationReportRequest(business_date=business_date), metadata=billing.token(None, auth.FINANCE)),
        grpc.StatusCode.INVALID_ARGUMENT)
    assert dict(error.trailing_metadata())["tuoguan-field"] == "business_date"


def test_the_ledger_and_reconciliation_are_for_finance(billing):
    for call in (lambda md: billing.stub.GetLedgerBalances(pb.GetLedgerBalancesRequest(), metadata=md),
                 lambda md: billing.stub.GetReconciliationReport(
                     pb.GetReconciliationReportRequest(business_date="2026-11-26"), metadata=md)):
        fails(lambda call=call: call(billing.token()), grpc.StatusCode.PERMISSION_DENIED)
        call(billing.token(None, auth.FINANCE))
        call(billing.token(None, auth.ADMIN))
    error = fails(lambda: billing.stub.GetReconciliationReport(
        pb.GetReconciliationReportRequest(business_date="26/11/2026"), metadata=billing.token(None, auth.FINANCE)),
        grpc.StatusCode.INVALID_ARGUMENT)
    assert dict(error.trailing_metadata())["tuoguan-field"] == "business_date"


# The database's own guards.


def test_the_database_refuses_an_unbalanced_entry(billing):
    payment = captured_payment(billing)
    with pytest.raises(psycopg.errors.CheckViolation):
        with billing.db.transaction() as cur:
            cur.execute("INSERT INTO payments (payment_id, booking_id, patient_id, amount_fen, status, provider, "
                        "created_at) VALUES (%s, 'b', 'p', 100, 'CAPTURED', 'sandbox', now())", (str(uuid.uuid4()),))
            entry_id = str(uuid.uuid4())
            cur.execute("INSERT INTO journal_entries (entry_id, kind, payment_id, effective_at) "
                        "VALUES (%s, 'registration_fee_capture', (SELECT payment_id FROM payments "
                        "WHERE booking_id = 'b'), now())", (entry_id,))
            cur.execute("INSERT INTO journal_lines VALUES (%s, 1, 'asset:provider_clearing:sandbox', 'debit', 100), "
                        "(%s, 2, 'revenue:registration_fees', 'credit', 99)", (entry_id, entry_id))
    with pytest.raises(psycopg.errors.CheckViolation):
        with billing.db.transaction() as cur:  # a line slipped into a posted entry
            cur.execute("INSERT INTO journal_lines SELECT entry_id, 9, 'revenue:registration_fees', 'credit', 1 "
                        "FROM journal_entries WHERE payment_id = %s", (payment.payment_id,))
    assert balances(billing).total_debit_fen == balances(billing).total_credit_fen == 5000


def test_the_database_refuses_a_second_capture_and_any_edit_of_the_ledger(billing):
    payment = captured_payment(billing)
    entry = ledger.capture_entry(payment.payment_id, payment.amount_fen, "sandbox", outbox.utcnow())
    with pytest.raises(psycopg.errors.UniqueViolation):
        with billing.db.transaction() as cur:
            billing.cashier().store.post_entries(cur, [entry], outbox.utcnow())
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        with billing.db.transaction() as cur:
            cur.execute("UPDATE journal_lines SET amount_fen = amount_fen + 1")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        with billing.db.transaction() as cur:
            cur.execute("DELETE FROM journal_entries")


def test_the_chart_of_accounts_in_the_database_is_the_domains(billing):
    assert [r["code"] for r in billing.rows("SELECT code FROM ledger_accounts ORDER BY code")] == sorted(ledger.CHART)


def test_a_refund_the_provider_cannot_make_now_is_kept_and_issued_later(billing):
    payment = billing.new_payment()
    billing.cashier(after=billing.SETTLED).settle_pending()
    # Seen from before the provider settled, it refuses the refund: the request stays on the payment.
    assert billing.worker().refund_cancelled_booking(cancellation(payment)) == "ok"
    assert billing.rows("SELECT status, refund_requested_reason FROM payments") == [
        {"status": "CAPTURED", "refund_requested_reason": "booking_cancelled"}]
    assert billing.events("RefundIssued") == []

    later = billing.cashier(after=billing.SETTLED)
    assert [p.payment_id for p in later.issue_requested_refunds().refunded] == [payment.payment_id]
    assert later.issue_requested_refunds().refunded == []
    assert billing.rows("SELECT status, refund_requested_reason FROM payments") == [
        {"status": "REFUNDED", "refund_requested_reason": None}]
    assert len(billing.events("RefundIssued")) == 1


class ProviderBroke(Exception):
    """An error of the provider's adapter billing has no name for."""


@pytest.mark.parametrize("provider_fails", ["conflict", "unexpected"])
def test_a_refund_event_the_provider_fails_is_kept_for_the_timer_not_dead_lettered(billing, caplog, provider_fails):
    payment = captured_payment(billing)
    worker = billing.worker(after=billing.SETTLED)
    refund = worker.cashier.provider.refund
    if provider_fails == "conflict":
        # The provider saw the payment's refund key with another refund: it refuses this one.
        billing.rows("INSERT INTO sandbox_provider.refunds (reference, charge_reference, idempotency_key, "
                     "amount_fen, created_at) VALUES ('sbx_re_other', %s, %s, 1, now()) RETURNING 1",
                     payment.provider_reference, f"refund:{payment.payment_id}")
        error = ProviderRequestConflict.__name__
    else:
        def broken(*args, **kwargs):
            raise ProviderBroke("the adapter fell over")

        worker.cashier.provider.refund = broken
        error = ProviderBroke.__name__
    failed = REGISTRY.get_sample_value("tuoguan_billing_payments_total", {"outcome": "refund_failed"}) or 0.0

    # Handled, not dead-lettered: the request stays on the payment for the refund timer.
    assert worker.refund_cancelled_booking(cancellation(payment)) == "ok"
    assert billing.rows("SELECT status, refund_requested_reason FROM payments") == [
        {"status": "CAPTURED", "refund_requested_reason": "booking_cancelled"}]
    assert billing.rows("SELECT 1 FROM dead_letters") == [] and billing.events("RefundIssued") == []
    assert REGISTRY.get_sample_value("tuoguan_billing_payments_total", {"outcome": "refund_failed"}) == failed + 1
    [logged] = [r for r in caplog.records if r.getMessage() == "provider did not refund; will retry"]
    assert (logged.payment_id, logged.error) == (payment.payment_id, error)
    assert payment.patient_id not in caplog.text

    # Once the provider is sorted out, the timer gives the fee back, once.
    billing.rows("DELETE FROM sandbox_provider.refunds RETURNING 1")
    worker.cashier.provider.refund = refund
    assert [p.payment_id for p in worker.cashier.issue_requested_refunds().refunded] == [payment.payment_id]
    assert worker.cashier.issue_requested_refunds().refunded == []
    assert billing.rows("SELECT status, refund_requested_reason FROM payments") == [
        {"status": "REFUNDED", "refund_requested_reason": None}]
    assert len(billing.events("RefundIssued")) == 1


def paid_in_a_trace(billing, token: str):
    """A held booking paid with ``token`` by a request in a trace of its own: (the payment, the trace id)."""
    patient_id, booking_id = billing.held_booking()
    trace_id = uuid.uuid4().hex
    metadata = billing.token(patient_id) + (("traceparent", f"00-{trace_id}-{uuid.uuid4().hex[:16]}-01"),)
    payment = billing.stub.PayRegistrationFee(pb.PayRegistrationFeeRequest(
        booking_id=booking_id, payment_method_token=token, idempotency_key="k"), metadata=metadata).payment
    return payment, trace_id


def test_the_settling_events_continue_the_paying_requests_trace(billing):
    declined, trace_id = paid_in_a_trace(billing, "tok_decline")
    billing.cashier(after=billing.SETTLED).settle_pending()  # a timer, outside any request
    headers = billing.rows("SELECT headers FROM outbox WHERE event_type = 'PaymentFailed'")[0]["headers"]
    assert headers["traceparent"].split("-")[1] == trace_id
    assert declined.status == pb.PAYMENT_STATUS_PENDING


def test_a_refund_the_timer_issues_continues_the_paying_requests_trace(billing):
    payment, trace_id = paid_in_a_trace(billing, "tok_ok")
    # Cancelled before the capture is known: the refund waits for the timer.
    assert billing.worker().refund_cancelled_booking(cancellation(payment)) == "ok"
    later = billing.cashier(after=billing.SETTLED)
    later.settle_pending()
    assert [p.payment_id for p in later.issue_requested_refunds().refunded] == [payment.payment_id]
    [headers] = [r["headers"] for r in billing.rows("SELECT headers FROM outbox WHERE event_type = 'RefundIssued'")]
    assert headers["traceparent"].split("-")[1] == trace_id


def test_an_unknown_payment_the_provider_never_heard_of_fails(billing):
    patient_id, booking_id = billing.held_booking()
    payment_id = str(uuid.uuid4())
    with billing.db.transaction() as cur:
        cur.execute("INSERT INTO payments (payment_id, booking_id, patient_id, amount_fen, status, provider, "
                    "provider_reference, created_at) VALUES (%s, %s, %s, 5000, 'UNKNOWN', 'sandbox', "
                    "'sbx_ch_lost', now())", (payment_id, booking_id, patient_id))
    settled = billing.cashier().reconcile_unknown()
    assert [(p.payment_id, p.failure_reason) for p in settled.failed] == [(payment_id, "not_found_at_provider")]
    assert [e["reason"] for e in billing.events("PaymentFailed")] == ["not_found_at_provider"]
    assert billing.rows("SELECT 1 FROM journal_entries") == []


def test_refunds_the_provider_refuses_for_good_do_not_hold_back_newer_ones(billing):
    # A batch's worth of refunds the provider refuses every time (finance
    # refunded them by hand at the acquirer's console): the timer carries on
    # past them, run after run, instead of trying the same oldest batch again.
    stuck = [captured_payment(billing) for _ in range(2)]
    newer = captured_payment(billing)
    with billing.db.transaction() as cur:
        cur.execute("UPDATE payments SET refund_requested_reason = 'booking_cancelled'")
        for payment in stuck:
            cur.execute("INSERT INTO sandbox_provider.refunds (reference, charge_reference, idempotency_key, "
                        "amount_fen, created_at) VALUES (%s, %s, %s, 1, now())",
                        (f"sbx_re_{payment.payment_id}", payment.provider_reference, f"refund:{payment.payment_id}"))
    cashier = billing.cashier(after=billing.SETTLED, batch_size=2)
    refunded = [p.payment_id for _ in range(3) for p in cashier.issue_requested_refunds().refunded]
    assert refunded == [newer.payment_id]
    assert [status_of(billing, p.payment_id) for p in stuck] == ["CAPTURED", "CAPTURED"]


def test_a_patients_payments_come_a_page_at_a_time_the_latest_first(billing):
    # A patient under treatment for years pays a fee a week: the list is paged, not cut off at 100 unsaid.
    patient_id = str(uuid.uuid4())
    paid = [billing.pay(patient_id, billing.registration.add(patient_id, fee_fen=5000)).payment
            for _ in range(5)]
    # Two opened in one batch share their instant: the id orders them, and neither is lost between pages.
    billing.rows("UPDATE payments SET created_at = (SELECT max(created_at) FROM payments) WHERE payment_id = ANY(%s) "
                 "RETURNING 1", [paid[1].payment_id, paid[2].payment_id])
    me = billing.token(patient_id)
    seen, token, pages = [], "", 0
    while True:
        reply = billing.stub.ListPayments(pb.ListPaymentsRequest(page_size=2, page_token=token), metadata=me)
        assert len(reply.payments) <= 2
        seen += [p.payment_id for p in reply.payments]
        pages, token = pages + 1, reply.next_page_token
        if not token:
            break
    assert pages == 3 and sorted(seen) == sorted(p.payment_id for p in paid) and len(set(seen)) == 5
    ordered = billing.rows("SELECT payment_id::text AS id FROM payments ORDER BY created_at DESC, payment_id DESC")
    assert seen == [r["id"] for r in ordered]
    # Without a number: the whole list fits the default page, and there is no next one.
    whole = billing.stub.ListPayments(pb.ListPaymentsRequest(), metadata=me)
    assert [p.payment_id for p in whole.payments] == seen and whole.next_page_token == ""
    # Another patient's list is their own, whatever token they send.
    first = billing.stub.ListPayments(pb.ListPaymentsRequest(page_size=2), metadata=me)
    other = billing.stub.ListPayments(pb.ListPaymentsRequest(page_token=first.next_page_token),
                                      metadata=billing.token(str(uuid.uuid4())))
    assert list(other.payments) == []
    for size, token, field in ((-1, "", "page_size"), (0, "garbage", "page_token"),
                               (0, first.next_page_token[:-3], "page_token")):
        error = fails(lambda: billing.stub.ListPayments(pb.ListPaymentsRequest(page_size=size, page_token=token),
                                                        metadata=me), grpc.StatusCode.INVALID_ARGUMENT)
        assert dict(error.trailing_metadata())["tuoguan-field"] == field
