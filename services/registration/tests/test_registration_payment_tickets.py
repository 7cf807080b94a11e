"""Each hold comes with its payment ticket: registration's signed word on the
booking, its patient, its fee and the end of its hold, which billing checks
instead of asking registration again."""
from __future__ import annotations

import datetime as dt

import pytest
from registration.config import RegistrationConfig
from registration.domain.policy import BookingPolicy
from registration.store import HoldRequest, Idempotent
from registration_testkit import key, local, outbox_events, slot_counters, tomorrow
from tuoguan.registration.v1 import registration_pb2 as pb
from tuoguan_common.outbox import utcnow
from tuoguan_common.payment_tickets import PaymentTickets

pytestmark = pytest.mark.integration

TICKETS = PaymentTickets(b"registration-and-billing-share-this-key")


@pytest.fixture
def config(request) -> RegistrationConfig:
    return RegistrationConfig(payment_tickets=getattr(request, "param", TICKETS))


def test_a_hold_comes_with_a_ticket_that_says_what_billing_needs(stub, clinic, people):
    slot_id = clinic.slot(clinic.chen, local(tomorrow(), 9), capacity=3)
    patient_id, md = people.patient()
    request = pb.HoldSlotRequest(slot_id=slot_id, idempotency_key=key())
    held = stub.HoldSlot(request, metadata=md)
    said = TICKETS.read(held.payment_ticket)
    assert said is not None
    assert (said.booking_id, said.patient_id, said.fee_fen) == (held.booking.booking_id, patient_id, 5000)
    assert said.hold_expires_at == dt.datetime.fromisoformat(held.booking.hold_expires_at)
    assert said.hold_expires_at > dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=9)

    again = stub.HoldSlot(request, metadata=md)
    assert again == held, "a retry gets the first answer, ticket included"


def test_a_hold_replayed_once_its_booking_is_cancelled_comes_without_a_ticket(stub, clinic, people):
    """The replay gives the first answer, HELD; with a ticket billing would
    take the payment and the saga give it back. Without one, billing asks
    registration, which says the booking is cancelled."""
    slot_id = clinic.slot(clinic.chen, local(tomorrow(), 10), capacity=3)
    _, md = people.patient()
    request = pb.HoldSlotRequest(slot_id=slot_id, idempotency_key=key())
    held = stub.HoldSlot(request, metadata=md)
    assert TICKETS.read(held.payment_ticket) is not None
    stub.CancelBooking(pb.CancelBookingRequest(booking_id=held.booking.booking_id, idempotency_key=key()),
                       metadata=md)

    again = stub.HoldSlot(request, metadata=md)
    assert again.booking == held.booking, "the first answer, as kept under the key"
    assert again.payment_ticket == ""
    stored = stub.GetBooking(pb.GetBookingRequest(booking_id=held.booking.booking_id), metadata=md).booking
    assert stored.status == pb.BOOKING_STATUS_CANCELLED


@pytest.mark.parametrize("config", [None], indirect=True)
def test_without_a_key_holds_come_without_tickets(stub, clinic, people):
    slot_id = clinic.slot(clinic.chen, local(tomorrow(), 9), capacity=3)
    held = stub.HoldSlot(pb.HoldSlotRequest(slot_id=slot_id, idempotency_key=key()), metadata=people.patient()[1])
    assert held.booking.status == pb.BOOKING_STATUS_HELD and held.payment_ticket == ""


def test_a_free_clinic_booking_is_confirmed_as_it_is_held(stub, clinic, people, store):
    """Nothing to pay, so no payment would ever confirm it: confirmed in the
    hold's transaction, queue numbers in order, no ticket, no refund on cancel."""
    slot_id = clinic.slot(clinic.zhang, local(tomorrow(), 15), capacity=3, fee_fen=0)
    _, first_md = people.patient()
    _, second_md = people.patient()
    request = pb.HoldSlotRequest(slot_id=slot_id, idempotency_key=key())
    first = stub.HoldSlot(request, metadata=first_md)
    second = stub.HoldSlot(pb.HoldSlotRequest(slot_id=slot_id, idempotency_key=key()), metadata=second_md)
    assert [(h.booking.status, h.booking.queue_number, h.booking.fee_fen, h.payment_ticket) for h in (first, second)] \
        == [(pb.BOOKING_STATUS_CONFIRMED, 1, 0, ""), (pb.BOOKING_STATUS_CONFIRMED, 2, 0, "")]
    assert stub.HoldSlot(request, metadata=first_md) == first, "a retry gets the confirmed answer"
    stored = stub.GetBooking(pb.GetBookingRequest(booking_id=first.booking.booking_id), metadata=first_md).booking
    assert (stored.status, stored.queue_number, stored.payment_id) == (pb.BOOKING_STATUS_CONFIRMED, 1, "")
    counters = slot_counters(store, slot_id)
    assert (counters["booked"], counters["held"], counters["booked_bookings"]) == (2, 0, 2)
    confirmed = outbox_events(store, "BookingConfirmed")
    assert [(e["booking_id"], e["queue_number"], e.get("payment_id", "")) for e in confirmed] == [
        (first.booking.booking_id, 1, ""), (second.booking.booking_id, 2, "")]

    cancelled = stub.CancelBooking(pb.CancelBookingRequest(booking_id=first.booking.booking_id, idempotency_key=key()),
                                   metadata=first_md).booking
    assert cancelled.status == pb.BOOKING_STATUS_CANCELLED and not cancelled.refund_due
    (event,) = outbox_events(store, "BookingCancelled")
    assert event["refund_due"] is False
    assert slot_counters(store, slot_id)["booked"] == 1


def test_a_free_booking_among_paid_ones_in_one_batch(store, clinic, people):
    """One hold batch with a free slot and a paid one: only the free one is confirmed."""
    day = tomorrow()
    free_slot = clinic.slot(clinic.zhang, local(day, 15), capacity=2, fee_fen=0)
    paid_slot = clinic.slot(clinic.chen, local(day, 9), capacity=2)
    requests = [HoldRequest(Idempotent("hold", patient, key(), "fingerprint", pb.HoldSlotResponse), patient, slot_id)
                for patient, slot_id in ((people.patient()[0], free_slot), (people.patient()[0], paid_slot))]
    free, paid = store.hold_slots(requests, BookingPolicy(), utcnow())
    assert (free.booking.status, free.booking.queue_number) == (pb.BOOKING_STATUS_CONFIRMED, 1)
    assert (paid.booking.status, paid.booking.queue_number) == (pb.BOOKING_STATUS_HELD, 0)
    assert [e["booking_id"] for e in outbox_events(store, "SlotHeld")] == [free.booking.booking_id,
                                                                           paid.booking.booking_id]
    assert [e["booking_id"] for e in outbox_events(store, "BookingConfirmed")] == [free.booking.booking_id]
