"""Payments in batches: the api's steps take many requests at once (the
checkout's group commits), and each request gets its own answer, as if it
had been alone. The cashier's steps are called here with batches made by
hand, on the real PostgreSQL and the sandbox; the api is asked concurrently
at the end."""
from __future__ import annotations

import datetime as dt
import threading
import uuid

import psycopg
import pytest
from prometheus_client import REGISTRY

from billing.cashier import PAY_LATER, FeeRequest
from billing.domain import payments
from billing.domain.errors import BookingNotHeld, KeyReused, NotTheirs, PaymentInProgress
from billing.domain.payments import Booking, Payment
from billing.exceptions import UnknownPaymentMethod
from tuoguan.billing.v1 import billing_pb2 as pb
from tuoguan_common import outbox
from tuoguan_common.outbox import utcnow

pytestmark = pytest.mark.integration


def fee_request(patient_id: str, booking_id: str, key: str, token: str = "tok_ok") -> FeeRequest:
    parsed = pb.PayRegistrationFeeRequest(booking_id=booking_id, payment_method_token=token, idempotency_key=key)
    return FeeRequest(patient_id=patient_id, booking_id=booking_id, method_token=token, idempotency_key=key,
                      fingerprint=outbox.request_fingerprint(parsed), bearer=None, trace_carrier={"traceparent": key})


def held(patient_id: str, status: str = "HELD") -> Booking:
    return Booking(str(uuid.uuid4()), patient_id, status, 5000, utcnow() + dt.timedelta(minutes=15))


def test_one_transaction_opens_each_request_or_refuses_it_alone(billing):
    cashier = billing.cashier()
    alice, bob = str(uuid.uuid4()), str(uuid.uuid4())
    a_booking, b_booking = held(alice), held(bob)
    confirmed, bobs = held(alice, "CONFIRMED"), held(bob)
    batch = [
        (fee_request(alice, a_booking.booking_id, "a-1"), a_booking),
        (fee_request(bob, b_booking.booking_id, "b-1"), b_booking),
        (fee_request(alice, a_booking.booking_id, "a-1"), a_booking),  # the same request again
        (fee_request(bob, b_booking.booking_id, "b-2"), b_booking),  # another request for the same booking
        (fee_request(alice, confirmed.booking_id, "a-2"), confirmed),
        (fee_request(alice, bobs.booking_id, "a-3"), bobs),
    ]
    outcomes = cashier.open_payments(batch)

    assert isinstance(outcomes[0], Payment) and isinstance(outcomes[1], Payment)
    assert outcomes[0].trace_carrier == {"traceparent": "a-1"}
    assert outcomes[2] is PAY_LATER and outcomes[3] is PAY_LATER
    assert isinstance(outcomes[4], BookingNotHeld) and isinstance(outcomes[5], NotTheirs)
    assert billing.rows("SELECT booking_id, status, method_token FROM payments ORDER BY booking_id") == sorted(
        [{"booking_id": a_booking.booking_id, "status": "PENDING", "method_token": "tok_ok"},
         {"booking_id": b_booking.booking_id, "status": "PENDING", "method_token": "tok_ok"}],
        key=lambda r: r["booking_id"])
    # Refused requests keep no key: asking again decides again.
    assert {r["key"] for r in billing.rows("SELECT key FROM idempotency_keys")} == {"a-1", "b-1"}

    # Sent again once the first committed, they see what it left.
    again = cashier.open_payments([batch[2], batch[3]])
    assert again[0] == b""  # the same request, not answered yet: carried on by resume_payment
    assert isinstance(again[1], PaymentInProgress)


def test_a_key_purged_and_used_again_for_another_booking_is_refused_alone(billing):
    cashier = billing.cashier()
    alice, bob = str(uuid.uuid4()), str(uuid.uuid4())
    first = held(alice)
    [opened] = cashier.open_payments([(fee_request(alice, first.booking_id, "a-1"), first)])
    billing.rows("DELETE FROM idempotency_keys RETURNING 1")  # the retention purge, a week later
    again, bobs = held(alice), held(bob)
    outcomes = cashier.open_payments([(fee_request(alice, again.booking_id, "a-1"), again),
                                      (fee_request(bob, bobs.booking_id, "b-1"), bobs)])
    assert isinstance(outcomes[0], KeyReused) and isinstance(outcomes[1], Payment)
    assert {r["booking_id"] for r in billing.rows("SELECT booking_id FROM payments")} == {
        first.booking_id, bobs.booking_id}
    assert {r["key"] for r in billing.rows("SELECT key FROM idempotency_keys")} == {"b-1"}
    # The store never takes a clash of ids for another attempt at the booking.
    with pytest.raises(psycopg.errors.UniqueViolation), billing.db.transaction() as cur:
        cashier.store.insert_payments(cur, [payments.open_payment(opened.payment_id, again, "sandbox", utcnow())])

def test_the_provider_and_the_answers_for_a_batch(billing):
    cashier = billing.cashier()
    patients = [str(uuid.uuid4()) for _ in range(3)]
    bookings = [held(p) for p in patients]
    requests = [fee_request(p, b.booking_id, "k", token) for p, b, token in
                zip(patients, bookings, ["tok_ok", "tok_no_such_card", "tok_decline"])]
    opened = cashier.open_payments(list(zip(requests, bookings)))
    answers = cashier.authorize_and_answer(list(zip(requests, opened)))

    assert isinstance(answers[0], pb.PayRegistrationFeeResponse)
    assert isinstance(answers[1], UnknownPaymentMethod)
    assert isinstance(answers[2], pb.PayRegistrationFeeResponse)
    for answer, request in zip((answers[0], answers[2]), (requests[0], requests[2])):
        assert answer.payment.payment_id == request.payment_id
        assert answer.payment.provider_reference.startswith("sbx_ch_")
    # The unknown card made no charge and left nothing; the others one charge each, their answers kept.
    charged = billing.rows("SELECT merchant_payment_id FROM sandbox_provider.charges ORDER BY merchant_payment_id")
    assert [r["merchant_payment_id"] for r in charged] == sorted([requests[0].payment_id, requests[2].payment_id])
    assert {r["owner"] for r in billing.rows("SELECT owner FROM idempotency_keys WHERE response IS NOT NULL")} == \
        {patients[0], patients[2]}
    assert billing.rows("SELECT * FROM payments WHERE patient_id = %s", patients[1]) == []
    # Asked again, every step answers the same: the first answers are kept.
    assert cashier.first_answers(requests) == [answers[0].SerializeToString(), None, answers[2].SerializeToString()]


def test_patients_paying_at_once_share_transactions(billing):
    """Many patients pay at the same moment through the api: each gets their
    own payment and one charge, and the api opened them in fewer transactions than payments."""
    count = 24
    payers = [billing.held_booking() for _ in range(count)]
    before = REGISTRY.get_sample_value("tuoguan_billing_payments_per_transaction_count") or 0.0
    # Registration's double answers eight GetBookings at a time (its thread
    # pool): they return together, so their payments queue together.
    gate = threading.Barrier(8, timeout=10)
    billing.registration.on_get_booking = lambda _booking_id: gate.wait()
    answers: dict[str, pb.PayRegistrationFeeResponse] = {}

    def pay(patient_id: str, booking_id: str) -> None:
        answers[booking_id] = billing.pay(patient_id, booking_id)

    threads = [threading.Thread(target=pay, args=payer) for payer in payers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert sorted(answers) == sorted(b for _, b in payers)
    assert all(a.payment.status == pb.PAYMENT_STATUS_PENDING and a.payment.provider_reference
               for a in answers.values())
    assert len(billing.rows("SELECT reference FROM sandbox_provider.charges")) == count
    transactions = REGISTRY.get_sample_value("tuoguan_billing_payments_per_transaction_count") - before
    assert 1 <= transactions < count


def test_billing_s_api_keeps_payments_past_the_platform_s_cap_on_calls_in_flight(monkeypatch):
    """A payment waiting on its group commit holds no thread, and its patient
    already holds a place: at the platform's 128, billing turned away
    payments of holds already made in the surge. Its api starts with a cap of
    its own, which TUOGUAN_GRPC_MAX_CONCURRENT_RPCS still overrides."""
    from billing import api
    from tuoguan_common import api_main, config

    started = {}
    monkeypatch.setattr(api_main, "run", lambda service, register, **options: started.update(options, service=service))
    api.main()
    assert started["service"] == "billing"
    assert started["max_in_flight"] == api.MAX_IN_FLIGHT == 512 > config.DEFAULT_MAX_IN_FLIGHT
