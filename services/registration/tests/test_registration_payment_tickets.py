"""Each hold comes with its payment ticket: registration's signed word on the
booking, its patient, its fee and the end of its hold, which billing checks
instead of asking registration again."""
from __future__ import annotations

import datetime as dt

import pytest
from registration.config import RegistrationConfig
from registration_testkit import key, local, tomorrow
from tuoguan.registration.v1 import registration_pb2 as pb
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


@pytest.mark.parametrize("config", [None], indirect=True)
def test_without_a_key_holds_come_without_tickets(stub, clinic, people):
    slot_id = clinic.slot(clinic.chen, local(tomorrow(), 9), capacity=3)
    held = stub.HoldSlot(pb.HoldSlotRequest(slot_id=slot_id, idempotency_key=key()), metadata=people.patient()[1])
    assert held.booking.status == pb.BOOKING_STATUS_HELD and held.payment_ticket == ""
