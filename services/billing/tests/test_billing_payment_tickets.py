"""Paying with the hold's payment ticket, against the real PostgreSQL and the
sandbox provider: billing takes the booking from registration's signed word
and does not ask registration; a ticket it cannot use (another key, changed,
its hold over) makes it ask as before; a ticket of another booking or another
patient is refused and writes nothing."""
from __future__ import annotations

import datetime as dt
import uuid

import grpc
import pytest
from tuoguan.billing.v1 import billing_pb2 as pb
from tuoguan.registration.v1 import registration_pb2
from tuoguan_common import metrics
from tuoguan_common.outbox import utcnow
from tuoguan_common.payment_tickets import HeldBooking, PaymentTickets

pytestmark = pytest.mark.integration

TICKETS = PaymentTickets(b"registration-and-billing-share-this-key")
with_tickets = pytest.mark.parametrize("billing", [TICKETS], indirect=True)


def ticket(booking_id: str, patient_id: str, *, fee_fen: int = 5000, hold: dt.timedelta = dt.timedelta(minutes=10),
           tickets: PaymentTickets = TICKETS) -> str:
    return tickets.issue(HeldBooking(booking_id=booking_id, patient_id=patient_id, fee_fen=fee_fen,
                                     hold_expires_at=utcnow() + hold))


def learned(source: str) -> float:
    return metrics.BILLING_BOOKINGS_LEARNED.labels(source)._value.get()


def written(billing) -> dict:
    return {table: billing.rows(f"SELECT count(*) AS n FROM {table}")[0]["n"]
            for table in ("payments", "idempotency_keys", "sandbox_provider.charges")}


@with_tickets
def test_with_the_holds_ticket_billing_pays_without_asking_registration(billing):
    patient_id, booking_id = str(uuid.uuid4()), str(uuid.uuid4())  # a booking registration's double never heard of
    before = learned("ticket")
    payment = billing.pay(patient_id, booking_id, ticket=ticket(booking_id, patient_id, fee_fen=1250)).payment
    assert billing.registration.asked == []
    assert learned("ticket") == before + 1
    assert (payment.status, payment.amount_fen, payment.booking_id, payment.patient_id) == (
        pb.PAYMENT_STATUS_PENDING, 1250, booking_id, patient_id)

    settled = billing.cashier(after=billing.SETTLED).settle_pending()
    assert [p.payment_id for p in settled.captured] == [payment.payment_id]
    assert [(e["booking_id"], int(e["amount_fen"])) for e in billing.events("PaymentCaptured")] == [(booking_id, 1250)]


@with_tickets
def test_a_retry_with_or_without_the_ticket_is_the_same_request(billing):
    patient_id, booking_id = billing.held_booking()
    key = str(uuid.uuid4())
    first = billing.pay(patient_id, booking_id, key=key, ticket=ticket(booking_id, patient_id))
    assert billing.pay(patient_id, booking_id, key=key) == first
    assert billing.pay(patient_id, booking_id, key=key, ticket=ticket(booking_id, patient_id)) == first
    assert len(billing.rows("SELECT 1 FROM sandbox_provider.charges")) == 1


@with_tickets
@pytest.mark.parametrize("unusable", [
    lambda booking_id, patient_id: ticket(booking_id, patient_id, tickets=PaymentTickets(b"o" * 32)),  # another key
    lambda booking_id, patient_id: ticket(booking_id, patient_id, fee_fen=1)[:-3] + "AAA",  # altered
    lambda booking_id, patient_id: "not-a-ticket",
])
def test_a_ticket_billing_cannot_verify_makes_it_ask_registration(billing, unusable):
    patient_id, booking_id = billing.held_booking(fee_fen=5000)
    payment = billing.pay(patient_id, booking_id, ticket=unusable(booking_id, patient_id)).payment
    assert billing.registration.asked == [booking_id]
    assert payment.amount_fen == 5000, "the fee registration states, not one a changed ticket claims"


@with_tickets
def test_a_ticket_whose_hold_is_over_makes_billing_ask_registration_which_knows(billing):
    patient_id, booking_id = billing.held_booking()
    billing.registration.set_status(booking_id, registration_pb2.BOOKING_STATUS_EXPIRED)
    stale = ticket(booking_id, patient_id, hold=-dt.timedelta(seconds=1))
    with pytest.raises(grpc.RpcError) as refused:
        billing.pay(patient_id, booking_id, ticket=stale)
    assert billing.registration.asked == [booking_id]
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert billing.reason_of(refused.value) == "booking_not_held"


@with_tickets
def test_a_ticket_of_another_booking_or_patient_is_refused_and_writes_nothing(billing):
    patient_id, booking_id = billing.held_booking()
    _, other_booking = billing.held_booking()
    before = written(billing)
    with pytest.raises(grpc.RpcError) as wrong_booking:
        billing.pay(patient_id, booking_id, ticket=ticket(other_booking, patient_id))
    assert wrong_booking.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "payment_ticket" in wrong_booking.value.details() and "another booking" in wrong_booking.value.details()

    someone_else = str(uuid.uuid4())
    with pytest.raises(grpc.RpcError) as not_theirs:
        billing.pay(someone_else, booking_id, ticket=ticket(booking_id, patient_id))
    assert not_theirs.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert written(billing) == before
    assert billing.registration.asked == []


@pytest.fixture
def no_key_in_the_environment(monkeypatch):
    monkeypatch.delenv("TUOGUAN_PAYMENT_TICKET_KEY", raising=False)


def test_without_the_key_billing_asks_registration_whatever_the_ticket(no_key_in_the_environment, billing):
    patient_id, booking_id = billing.held_booking()
    billing.pay(patient_id, booking_id, ticket=ticket(booking_id, patient_id))
    assert billing.registration.asked == [booking_id]


@with_tickets
def test_a_retry_with_the_ticket_carries_on_a_payment_whose_first_attempt_died(billing):
    patient_id, booking_id = str(uuid.uuid4()), str(uuid.uuid4())
    key, held = str(uuid.uuid4()), ticket(booking_id, patient_id)

    def dies(_payment_id):
        raise RuntimeError("the api died here")

    billing.provider.after_authorize = dies  # charged at the provider, reference never stored
    try:
        with pytest.raises(grpc.RpcError):
            billing.pay(patient_id, booking_id, key=key, ticket=held)
    finally:
        billing.provider.after_authorize = None
    resumed = billing.pay(patient_id, booking_id, key=key, ticket=held).payment
    assert resumed.provider_reference.startswith("sbx_ch_")
    assert billing.pay(patient_id, booking_id, key=key, ticket=held).payment == resumed
    assert len(billing.rows("SELECT 1 FROM sandbox_provider.charges")) == 1
    assert billing.registration.asked == []


@with_tickets
def test_a_repeat_with_another_bookings_ticket_still_gets_its_first_answer(billing):
    patient_id, booking_id = billing.held_booking()
    _, other_booking = billing.held_booking()
    key = str(uuid.uuid4())
    first = billing.pay(patient_id, booking_id, key=key, ticket=ticket(booking_id, patient_id))
    assert billing.pay(patient_id, booking_id, key=key, ticket=ticket(other_booking, patient_id)) == first


@with_tickets
def test_a_booking_cancelled_after_its_ticket_was_issued_is_charged_then_refunded(billing):
    """The ticket cannot know of a cancellation: the saga settles it, as for any late capture."""
    from tuoguan.registration.v1 import events_pb2 as registration_events
    from tuoguan_common import outbox

    patient_id, booking_id = billing.held_booking()
    billing.registration.set_status(booking_id, registration_pb2.BOOKING_STATUS_CANCELLED)
    payment = billing.pay(patient_id, booking_id, ticket=ticket(booking_id, patient_id)).payment
    assert billing.registration.asked == []
    billing.cashier(after=billing.SETTLED).settle_pending()
    # Registration's worker rejects the capture of a booking it no longer holds.
    rejected = outbox.event_payload(registration_events.PaymentRejected(
        booking_id=booking_id, payment_id=payment.payment_id, reason="booking_not_held"),
        str(uuid.uuid4()), outbox.utcnow())
    assert billing.worker(after=billing.SETTLED).refund_rejected_payment(rejected) == "ok"
    [refunded] = billing.rows("SELECT status, refunded_fen FROM payments WHERE payment_id = %s", payment.payment_id)
    assert (refunded["status"], refunded["refunded_fen"]) == ("REFUNDED", 5000)
    assert [e["payment_id"] for e in billing.events("RefundIssued")] == [payment.payment_id]
