"""The JSON API's holds through the surge's waiting room, on the real platform: a second gateway
admitting one patient at a time queues an API client behind another (429 in_waiting_room), refuses it
the other's ticket, and lets it hold once the other's booking is paid and read confirmed."""
from __future__ import annotations

import time

import httpx
import pytest

from tests.e2e.journey import available_slots, department, key, new_patient, start_narrow_gateway

pytestmark = pytest.mark.integration

TICKET = "X-Waiting-Room-Ticket"


@pytest.fixture
def narrow_gateway(platform):
    """A second gateway on the same services, admitting one patient at a time."""
    with httpx.Client(base_url=start_narrow_gateway(platform, "gateway-waiting-room-api"), timeout=15) as client:
        yield client


def test_api_holds_queue_behind_each_other_and_a_ticket_is_its_accounts_alone(http, narrow_gateway):
    first, second = new_patient(http, name="王小明"), new_patient(http, name="李秀英")
    slots = available_slots(http, department(http, 7))
    assert len(slots) >= 2

    held = narrow_gateway.post("/api/v1/bookings", json={"slot_id": slots[-1]["slot_id"]}, headers={**first, **key()})
    assert held.status_code == 201, held.text
    ticket = held.headers[TICKET]

    queued = narrow_gateway.post("/api/v1/bookings", json={"slot_id": slots[-2]["slot_id"]},
                                 headers={**second, **key()})
    assert queued.status_code == 429, queued.text
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
