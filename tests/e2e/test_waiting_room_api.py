"""The JSON API's holds through the surge's waiting room, on the real platform: a second gateway
admitting one patient at a time queues an API client behind another (429 in_waiting_room), refuses it
the other's ticket, and lets it hold once the other's booking is paid and read confirmed."""
from __future__ import annotations

import base64
import datetime as dt
import json
import time
import uuid

import httpx
import pytest

from tests.e2e.journey import available_slots, department, key, new_patient, start_narrow_gateway, wait_booking

pytestmark = pytest.mark.integration

TICKET = "X-Waiting-Room-Ticket"


@pytest.fixture
def narrow_gateway(platform):
    """A second gateway on the same services, admitting one patient at a time."""
    with httpx.Client(base_url=start_narrow_gateway(platform, "gateway-waiting-room-api"), timeout=15) as client:
        yield client


def first_holds_second_queues(gateway: httpx.Client, first: dict, second: dict, slots: list[dict]):
    """Through a one-place room: the first patient's hold takes the place (the last slot), the second's
    (the one before) is queued behind it. Returns the hold, its ticket and the queued reply."""
    held = gateway.post("/api/v1/bookings", json={"slot_id": slots[-1]["slot_id"]}, headers={**first, **key()})
    assert held.status_code == 201, held.text
    queued = gateway.post("/api/v1/bookings", json={"slot_id": slots[-2]["slot_id"]}, headers={**second, **key()})
    assert queued.status_code == 429, queued.text
    return held, held.headers[TICKET], queued


def test_api_holds_queue_behind_each_other_and_a_ticket_is_its_accounts_alone(http, narrow_gateway):
    first, second = new_patient(http, name="王小明"), new_patient(http, name="李秀英")
    slots = available_slots(http, department(http, 7))
    assert len(slots) >= 2

    held, ticket, queued = first_holds_second_queues(narrow_gateway, first, second, slots)
    assert queued.json()["error"]["reason"] == "in_waiting_room" and int(queued.headers["Retry-After"]) >= 1
    place = queued.json()["waiting_room"]
    assert place["position"] == 1 and queued.headers[TICKET] == str(place["ticket"])

    # The first's ticket, presented with the second's token: a new ticket at the back, no hold.
    stolen = narrow_gateway.post("/api/v1/bookings", json={"slot_id": slots[-2]["slot_id"]},
                                 headers={**second, **key(), TICKET: ticket})
    assert stolen.status_code == 429 and stolen.json()["waiting_room"]["ticket"] not in (int(ticket), place["ticket"])

    # The first pays, and reads its booking confirmed with its ticket: the place goes to the second.
    booking = held.json()
    paid = narrow_gateway.post(f"/api/v1/bookings/{booking['booking_id']}/payment",
                               json={"payment_method_token": "tok_ok", "payment_ticket": booking["payment_ticket"]},
                               headers={**first, **key(), TICKET: ticket})
    assert paid.status_code == 201, paid.text
    deadline = time.monotonic() + 20
    while narrow_gateway.get(f"/api/v1/bookings/{booking['booking_id']}",
                             headers={**first, TICKET: ticket}).json()["status"] != "confirmed":
        assert time.monotonic() < deadline, "the booking was never confirmed"
        time.sleep(0.2)
    made = narrow_gateway.post("/api/v1/bookings", json={"slot_id": slots[-2]["slot_id"]},
                               headers={**second, **key(), TICKET: str(place["ticket"])})
    assert made.status_code == 201, made.text
    assert made.json()["status"] == "held" and made.headers[TICKET] == str(place["ticket"])


def pay_and_see_confirmed(gateway: httpx.Client, auth: dict, booking: dict, ticket: str | None = None) -> None:
    """Pays a hold with the sandbox's approving card (with the waiting-room ticket, if given), and reads it
    until it is confirmed (with the ticket too)."""
    with_ticket = {TICKET: ticket} if ticket else {}
    paid = gateway.post(f"/api/v1/bookings/{booking['booking_id']}/payment",
                        json={"payment_method_token": "tok_ok", "payment_ticket": booking["payment_ticket"]},
                        headers={**auth, **key(), **with_ticket})
    assert paid.status_code == 201, paid.text
    wait_booking(gateway, {**auth, **with_ticket}, booking["booking_id"], lambda b: b["status"] == "confirmed")


def test_reading_an_earlier_confirmed_booking_with_the_ticket_keeps_the_place(http, narrow_gateway):
    """Before, the API freed a ticket's place on a read of any confirmed booking of the account's: a patient
    holding a new time who looked up last visit's booking lost the place to the next in the queue. Only the
    booking held (or paid for) through the admission, read confirmed, frees it."""
    first, second = new_patient(http, name="赵丽"), new_patient(http, name="钱伟")
    # An earlier booking of the first's, made past the narrow gateway's room.
    earlier_slot = available_slots(http, department(http, 8))[0]
    earlier = http.post("/api/v1/bookings", json={"slot_id": earlier_slot["slot_id"]}, headers={**first, **key()})
    assert earlier.status_code == 201, earlier.text
    pay_and_see_confirmed(http, first, earlier.json())

    # Times that do not overlap the earlier booking's: registration refuses a patient two at once.
    slots = [s for s in available_slots(http, department(http, 9))
             if not (dt.datetime.fromisoformat(s["starts_at"]) < dt.datetime.fromisoformat(earlier_slot["ends_at"])
                     and dt.datetime.fromisoformat(earlier_slot["starts_at"]) < dt.datetime.fromisoformat(s["ends_at"]))]
    held, ticket, queued = first_holds_second_queues(narrow_gateway, first, second, slots)
    place = queued.json()["waiting_room"]

    read = narrow_gateway.get(f"/api/v1/bookings/{earlier.json()['booking_id']}", headers={**first, TICKET: ticket})
    assert read.status_code == 200 and read.json()["status"] == "confirmed"
    still = narrow_gateway.post("/api/v1/bookings", json={"slot_id": slots[-2]["slot_id"]},
                                headers={**second, **key(), TICKET: str(place["ticket"])})
    assert still.status_code == 429 and still.json()["waiting_room"]["position"] == 1, still.text

    # The booking held through the room, paid and read confirmed: the place goes to the second.
    pay_and_see_confirmed(narrow_gateway, first, held.json(), ticket)
    made = narrow_gateway.post("/api/v1/bookings", json={"slot_id": slots[-2]["slot_id"]},
                               headers={**second, **key(), TICKET: str(place["ticket"])})
    assert made.status_code == 201, made.text


def test_an_address_taking_new_tickets_past_its_limit_is_refused_without_one(http, platform):
    """Before, each hold without a ticket, or with a forged token (the gateway reads its subject unverified),
    took a new ticket: one address's script pushed every patient queueing behind it back. Now an address
    takes at most WAITING_ROOM_NEW_TICKETS_PER_ADDRESS new tickets a minute: past that, 429
    too_many_tickets_from_address with Retry-After and no ticket; a patient elsewhere queues as before."""
    url = start_narrow_gateway(platform, "gateway-waiting-room-tickets", WAITING_ROOM_NEW_TICKETS_PER_ADDRESS="2")
    patient = new_patient(http, name="孙芳")
    slot_id = available_slots(http, department(http, 10))[-1]["slot_id"]
    # Tokens of the script's making: any subject, no valid signature.
    forged = [{"Authorization": "Bearer " + ".".join(
        base64.urlsafe_b64encode(json.dumps(part).encode()).decode().rstrip("=")
        for part in ({"alg": "EdDSA"}, {"sub": str(uuid.uuid4()), "exp": 4102444800}, "x"))} for _ in range(4)]
    script = {"X-Forwarded-For": "101.6.6.6"}
    with httpx.Client(base_url=url, timeout=15) as gateway:
        replies = [gateway.post("/api/v1/bookings", json={"slot_id": slot_id}, headers={**token, **script, **key()})
                   for token in forged]
        # The first two took tickets (the first's admission is refused by registration: its token is no token).
        assert [r.status_code for r in replies[:2]] == [401, 429], [r.text for r in replies]
        assert replies[1].json()["error"]["reason"] == "in_waiting_room"
        for refused in replies[2:]:
            assert refused.status_code == 429, refused.text
            assert refused.json()["error"]["reason"] == "too_many_tickets_from_address"
            assert 1 <= int(refused.headers["Retry-After"]) <= 60 and TICKET not in refused.headers

        queued = gateway.post("/api/v1/bookings", json={"slot_id": slot_id},
                              headers={**patient, **key(), "X-Forwarded-For": "101.7.7.7"})
        assert queued.status_code == 429 and queued.json()["error"]["reason"] == "in_waiting_room", queued.text
        assert queued.json()["waiting_room"]["ticket"] == 3
