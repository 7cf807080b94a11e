"""The waiting room at the gateway's HTTP surface, against the real Redis and identity (stand-ins for
registration and billing): the JSON API's holds queue in the portal's queue, and a ticket is good
only for the account that took it, in the portal and in the API."""
from __future__ import annotations

import base64
import contextlib
import json
import re
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
from gateway_testkit import SESSION_SECRET, Caller, error, new_key
from itsdangerous import TimestampSigner
from prometheus_client import REGISTRY

from gateway.portal.web import SESSION_COOKIE
from tuoguan.registration.v1 import registration_pb2 as reg

pytestmark = pytest.mark.integration

DOCTOR_PAGE = "/departments/dep-cardio/doctors/doc-wang"
TICKET = "X-Waiting-Room-Ticket"
FIRST, SECOND = ("13800000001", "Patient1234"), ("13800000002", "Patient1234")


def hold(client: httpx.Client, caller: Caller, ticket: int | str | None = None, slot_id: str = "slot-1"):
    headers = caller.headers | new_key() | ({TICKET: str(ticket)} if ticket is not None else {})
    return client.post("/api/v1/bookings", headers=headers, json={"slot_id": slot_id})


def queued(reply: httpx.Response) -> dict:
    """The waiting room's 429: its place, after checking the reply says how to come back."""
    assert reply.status_code == 429, reply.text
    assert error(reply) == (429, "in_waiting_room", None)
    place = reply.json()["waiting_room"]
    assert reply.headers[TICKET] == str(place["ticket"])
    assert 1 <= int(reply.headers["Retry-After"]) <= 10
    return place


def csrf(page: httpx.Response) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)


def sign_in(client: httpx.Client, login: str, password: str) -> None:
    signed_in = client.post("/signin", data={"login": login, "password": password, "next": "/",
                                             "csrf": csrf(client.get("/signin"))})
    assert "退出登录" in signed_in.text


@contextlib.contextmanager
def portal_session(url: str, login: str | None = None, password: str = "") -> Iterator[httpx.Client]:
    """A browser on the portal (cookies, redirects followed), signed in as ``login`` if given."""
    with httpx.Client(base_url=url, timeout=20, follow_redirects=True) as client:
        if login:
            sign_in(client, login, password)
        yield client


def session_of(client: httpx.Client) -> dict:
    """The portal's session as its signed cookie holds it (signed, not encrypted)."""
    value = client.cookies[SESSION_COOKIE]
    return json.loads(base64.b64decode(TimestampSigner(SESSION_SECRET).unsign(value)))


def set_session(client: httpx.Client, cookie: str) -> None:
    """Puts a session cookie in the browser, where the gateway's next one replaces it."""
    client.cookies.clear()
    client.cookies.set(SESSION_COOKIE, cookie, domain="127.0.0.1", path="/")


def signed_session(session: dict) -> str:
    return TimestampSigner(SESSION_SECRET).sign(base64.b64encode(json.dumps(session).encode())).decode()


def api_outcomes(outcome: str) -> float:
    return REGISTRY.get_sample_value("tuoguan_gateway_api_waiting_room_total", {"outcome": outcome}) or 0.0


def test_an_api_hold_past_the_rooms_capacity_queues_with_429_and_is_made_when_its_turn_comes(own_gateway, fakes):
    """Before, POST /api/v1/bookings went past the waiting room: a script held slots while the portal's
    patients queued. Now the API's holds queue with them, and a place freed goes to the next in line."""
    url = own_gateway(waiting_room_capacity=1)
    with httpx.Client(base_url=url, timeout=20) as http:
        first, second = Caller(http, *FIRST), Caller(http, *SECOND)
        admitted = hold(http, first)
        assert admitted.status_code == 201 and admitted.json()["status"] == "held"
        ticket = int(admitted.headers[TICKET])
        holds_before = len([r for r in fakes["registration"].requests if r[0] == "HoldSlot"])

        place = queued(hold(http, second))
        assert place == {"ticket": ticket + 1, "position": 1, "waiting": 1, "requeued": False}
        # Asking again with the ticket keeps the place; no hold is tried meanwhile.
        assert queued(hold(http, second, place["ticket"]))["ticket"] == place["ticket"]
        assert len([r for r in fakes["registration"].requests if r[0] == "HoldSlot"]) == holds_before

        # The first account, admitted, goes on holding with its ticket (a full slot's refusal carries it too).
        refused = hold(http, first, ticket, slot_id="slot-full")
        assert error(refused) == (409, "slot_full", None) and refused.headers[TICKET] == str(ticket)
        assert hold(http, first, ticket).status_code == 201

        # Its booking confirmed and read with the ticket: the place goes to the second.
        booking_id = admitted.json()["booking_id"]
        assert queued(hold(http, second, place["ticket"]))["position"] == 1
        fakes["registration"].bookings[booking_id].status = reg.BOOKING_STATUS_CONFIRMED
        assert http.get(f"/api/v1/bookings/{booking_id}", headers=first.headers | {TICKET: str(ticket)}
                        ).status_code == 200
        made = hold(http, second, place["ticket"])
        assert made.status_code == 201 and made.headers[TICKET] == str(place["ticket"])
        assert made.json()["patient_id"] == second.account["account_id"]


def test_another_accounts_ticket_is_no_ticket_in_the_api(own_gateway, fakes):
    """Before, the API knew no tickets; a ticket number is consecutive and easy to guess. Presented with another
    account's token, an admitted ticket gets that account a new ticket at the back, no hold."""
    url = own_gateway(waiting_room_capacity=1)
    with httpx.Client(base_url=url, timeout=20) as http:
        first, second = Caller(http, *FIRST), Caller(http, *SECOND)
        ticket = int(hold(http, first).headers[TICKET])
        holds_before = len([r for r in fakes["registration"].requests if r[0] == "HoldSlot"])
        place = queued(hold(http, second, ticket))
        assert place["ticket"] != ticket and place["position"] == 1
        assert len([r for r in fakes["registration"].requests if r[0] == "HoldSlot"]) == holds_before
        # Nor does reading the first's confirmed booking with its ticket (refused: not the second's) free the place.
        booking_id = hold(http, first, ticket).json()["booking_id"]
        fakes["registration"].bookings[booking_id].status = reg.BOOKING_STATUS_CONFIRMED
        assert error(http.get(f"/api/v1/bookings/{booking_id}", headers=second.headers | {TICKET: str(ticket)})) == \
            (403, "permission_denied", None)
        assert queued(hold(http, second, place["ticket"]))["position"] == 1
        assert hold(http, first, ticket).status_code == 201


def test_reading_another_confirmed_booking_with_the_ticket_keeps_the_place(own_gateway, fakes,
                                                                          earlier_confirmed_booking):
    """Before, a read of any confirmed booking of the account's with the ticket freed its place: a patient
    who looked at last week's booking while holding a new one lost the place mid-booking. Now only a
    booking held (or paid for) through the admission, read confirmed, frees it."""
    url = own_gateway(waiting_room_capacity=1)
    with httpx.Client(base_url=url, timeout=20) as http:
        first, second = Caller(http, *FIRST), Caller(http, *SECOND)
        earlier = earlier_confirmed_booking(first)
        admitted = hold(http, first)
        ticket, booking_id = admitted.headers[TICKET], admitted.json()["booking_id"]
        place = queued(hold(http, second))

        read = http.get(f"/api/v1/bookings/{earlier}", headers=first.headers | {TICKET: ticket})
        assert read.status_code == 200 and read.json()["status"] == "confirmed"
        assert queued(hold(http, second, place["ticket"]))["position"] == 1

        # The booking held through the admission, read confirmed: the place goes to the second.
        fakes["registration"].bookings[booking_id].status = reg.BOOKING_STATUS_CONFIRMED
        assert http.get(f"/api/v1/bookings/{booking_id}", headers=first.headers | {TICKET: ticket}).status_code == 200
        assert hold(http, second, place["ticket"]).status_code == 201


def test_a_booking_held_in_the_portal_read_confirmed_through_the_api_frees_the_place(own_gateway, fakes):
    """One account, one ticket in the portal and the API: a hold the portal made is noted with the
    admission, so its confirmation read through the API with the ticket frees the place."""
    url = own_gateway(waiting_room_capacity=1)
    with portal_session(url, *FIRST) as portal, httpx.Client(base_url=url, timeout=20) as http:
        first, second = Caller(http, *FIRST), Caller(http, *SECOND)
        page = portal.get(DOCTOR_PAGE)
        assert page.url.path == DOCTOR_PAGE
        held = portal.post("/holds", data={"csrf": csrf(page), "slot_id": "slot-1", "back": DOCTOR_PAGE,
                                           "key": new_key()["Idempotency-Key"]})
        booking_id, ticket = str(held.url).rsplit("/", 1)[-1], session_of(portal)["ticket"]
        place = queued(hold(http, second))
        fakes["registration"].bookings[booking_id].status = reg.BOOKING_STATUS_CONFIRMED
        assert http.get(f"/api/v1/bookings/{booking_id}", headers=first.headers | {TICKET: str(ticket)}
                        ).status_code == 200
        assert hold(http, second, place["ticket"]).status_code == 201


def test_paying_with_the_ticket_keeps_the_place_a_short_while_only(own_gateway, fakes, monkeypatch):
    """As in the portal: after paying, the place is kept PAID_PLACE_SECONDS, not the whole pass."""
    monkeypatch.setattr("gateway.booking_queue.PAID_PLACE_SECONDS", 0.5)
    url = own_gateway(waiting_room_capacity=1)
    with httpx.Client(base_url=url, timeout=20) as http:
        first, second = Caller(http, *FIRST), Caller(http, *SECOND)
        admitted = hold(http, first)
        ticket, booking = admitted.headers[TICKET], admitted.json()
        place = queued(hold(http, second))
        paid = http.post(f"/api/v1/bookings/{booking['booking_id']}/payment",
                         headers=first.headers | new_key() | {TICKET: ticket},
                         json={"payment_method_token": "tok_ok", "payment_ticket": booking["payment_ticket"]})
        assert paid.status_code == 201
        assert queued(hold(http, second, place["ticket"]))["position"] == 1
        time.sleep(0.8)
        assert hold(http, second, place["ticket"]).status_code == 201


@pytest.fixture
def earlier_confirmed_booking(fakes):
    """Puts in the stand-in a confirmed booking of a caller's from an earlier visit (its queue number given),
    ``earlier_confirmed_booking(caller)``, its id; removed afterwards: the demo patients' pages list it."""
    made = []

    def make(caller: Caller) -> str:
        booking_id = f"bk-earlier-{uuid.uuid4().hex[:8]}"
        fakes["registration"].bookings[booking_id] = reg.Booking(
            booking_id=booking_id, booking_number="R900001", patient_id=caller.account["account_id"],
            slot_id="slot-1", status=reg.BOOKING_STATUS_CONFIRMED, fee_fen=5000, queue_number=3,
            department_id="dep-cardio", department_name="心内科", doctor_id="doc-wang", doctor_name="王医生",
            service_date="2026-11-20", starts_at="2026-11-20T08:00:00+08:00", ends_at="2026-11-20T08:15:00+08:00")
        made.append(booking_id)
        return booking_id

    yield make
    for booking_id in made:
        fakes["registration"].bookings.pop(booking_id, None)


def cancel(client: httpx.Client, caller: Caller, booking_id: str, ticket: str):
    return client.post(f"/api/v1/bookings/{booking_id}/cancel", headers=caller.headers | new_key() | {TICKET: ticket})


def test_cancelling_a_confirmed_booking_with_the_ticket_keeps_the_place_a_short_while_only(
        own_gateway, fakes, monkeypatch, earlier_confirmed_booking):
    """Before, cancelling changed nothing: a patient who cancelled and went kept the place for the whole
    pass. Now a confirmed booking cancelled keeps it PAID_PLACE_SECONDS (time to book another time), as
    paying does; a hold released keeps it whole (the patient is choosing another time)."""
    monkeypatch.setattr("gateway.portal.waiting_room.PAID_PLACE_SECONDS", 0.5)
    url = own_gateway(waiting_room_capacity=1)
    with httpx.Client(base_url=url, timeout=20) as http:
        first, second = Caller(http, *FIRST), Caller(http, *SECOND)
        admitted = hold(http, first)
        ticket = admitted.headers[TICKET]
        place = queued(hold(http, second))

        released = cancel(http, first, admitted.json()["booking_id"], ticket)
        assert released.status_code == 200 and released.json()["status"] == "cancelled"
        time.sleep(0.8)
        assert queued(hold(http, second, place["ticket"]))["position"] == 1

        cancelled = cancel(http, first, earlier_confirmed_booking(first), ticket)
        assert cancelled.status_code == 200 and cancelled.json()["refund_due"]
        assert queued(hold(http, second, place["ticket"]))["position"] == 1  # kept a moment, to book again
        time.sleep(0.8)
        assert hold(http, second, place["ticket"]).status_code == 201


def test_cancelling_a_confirmed_booking_in_the_portal_keeps_the_place_a_short_while_only(
        own_gateway, fakes, monkeypatch, earlier_confirmed_booking):
    """The portal's cancel as the API's: releasing a hold keeps the place; cancelling a confirmed booking
    keeps it PAID_PLACE_SECONDS, then it goes to the next in the queue."""
    monkeypatch.setattr("gateway.portal.waiting_room.PAID_PLACE_SECONDS", 0.5)
    url = own_gateway(waiting_room_capacity=1)
    with portal_session(url, *FIRST) as portal, httpx.Client(base_url=url, timeout=20) as http:
        first, second = Caller(http, *FIRST), Caller(http, *SECOND)
        page = portal.get(DOCTOR_PAGE)
        assert page.url.path == DOCTOR_PAGE
        place = queued(hold(http, second))

        held = portal.post("/holds", data={"csrf": csrf(page), "slot_id": "slot-1", "back": DOCTOR_PAGE,
                                           "key": new_key()["Idempotency-Key"]})
        booking_id = str(held.url).rsplit("/", 1)[-1]
        released = portal.post(f"/bookings/{booking_id}/cancel", data={
            "csrf": csrf(held), "key": new_key()["Idempotency-Key"], "release": "1"})
        assert fakes["registration"].bookings[booking_id].status == reg.BOOKING_STATUS_CANCELLED
        time.sleep(0.8)
        assert queued(hold(http, second, place["ticket"]))["position"] == 1
        assert portal.get(DOCTOR_PAGE).url.path == DOCTOR_PAGE

        earlier = earlier_confirmed_booking(first)
        portal.post(f"/bookings/{earlier}/cancel", data={"csrf": csrf(released), "key": new_key()["Idempotency-Key"]})
        assert fakes["registration"].bookings[earlier].status == reg.BOOKING_STATUS_CANCELLED
        assert queued(hold(http, second, place["ticket"]))["position"] == 1
        time.sleep(0.8)
        assert hold(http, second, place["ticket"]).status_code == 201


def test_a_free_clinics_hold_confirmed_at_once_frees_the_place(own_gateway):
    """As in the portal: nothing to pay, the next patient may come in."""
    url = own_gateway(waiting_room_capacity=1)
    with httpx.Client(base_url=url, timeout=20) as http:
        first, second = Caller(http, *FIRST), Caller(http, *SECOND)
        ticket = hold(http, first).headers[TICKET]
        place = queued(hold(http, second))
        free = hold(http, first, ticket, slot_id="slot-free")
        assert free.status_code == 201 and free.json()["status"] == "confirmed"
        assert hold(http, second, place["ticket"]).status_code == 201


def test_a_turn_missed_through_the_api_starts_again_at_the_back(own_gateway, fakes, patient):
    """As in the portal: a turn not taken within the claim window goes to the next; the ticket that missed
    it gets a new one at the back (requeued)."""
    url = own_gateway(waiting_room_capacity=1, waiting_room_claim_seconds=1)
    with httpx.Client(base_url=url, timeout=20) as http:
        first, second = Caller(http, *FIRST), Caller(http, *SECOND)
        admitted = hold(http, first)
        place = queued(hold(http, second))
        fakes["registration"].bookings[admitted.json()["booking_id"]].status = reg.BOOKING_STATUS_CONFIRMED
        http.get(f"/api/v1/bookings/{admitted.json()['booking_id']}",
                 headers=first.headers | {TICKET: admitted.headers[TICKET]})
        # The second's turn comes with the next check (the third patient's, queued behind it)...
        third = queued(hold(http, patient))
        time.sleep(1.3)  # ... and the second is away for longer than the claim window.
        assert hold(http, patient, third["ticket"]).status_code == 201
        again = queued(hold(http, second, place["ticket"]))
        assert again["requeued"] and again["ticket"] > third["ticket"] and again["position"] == 1


def test_a_malformed_ticket_header_is_422_on_the_header(own_gateway, patient):
    url = own_gateway(waiting_room_capacity=1)
    with httpx.Client(base_url=url, timeout=20) as http:
        for bad in ("abc", "0", "-1", "1.5", "1e3", "12x", "9" * 16):
            reply = hold(http, patient, bad)
            assert error(reply) == (422, "invalid_argument", TICKET), bad
            assert "pattern" in reply.json()["error"]["message"]
        paid = http.post("/api/v1/bookings/bk-none/payment", headers=patient.headers | new_key() | {TICKET: "x"},
                         json={"payment_method_token": "tok_ok"})
        assert error(paid) == (422, "invalid_argument", TICKET)


def test_without_redis_the_apis_holds_go_through_as_the_portals_pages_do(own_gateway, patient):
    before = api_outcomes("room_unavailable")
    url = own_gateway(waiting_room_capacity=1, redis_url="redis://127.0.0.1:1/0")
    with httpx.Client(base_url=url, timeout=20) as http:
        assert hold(http, patient).status_code == 201
        assert hold(http, patient).status_code == 201
    assert api_outcomes("room_unavailable") == before + 2


def test_portal_and_api_patients_share_one_queue(own_gateway, fakes):
    """Before, the API's holds did not queue at all: an API client held while portal patients waited."""
    url = own_gateway(waiting_room_capacity=1)
    with portal_session(url, *FIRST) as portal, httpx.Client(base_url=url, timeout=20) as http:
        second = Caller(http, *SECOND)
        assert portal.get(DOCTOR_PAGE).url.path == DOCTOR_PAGE  # the portal's patient has the only place
        place = queued(hold(http, second))
        assert place["position"] == 1

        # The portal patient holds, pays, and sees the booking confirmed: the API's patient goes in.
        page = portal.get(DOCTOR_PAGE)
        token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
        held = portal.post("/holds", data={"csrf": token, "slot_id": "slot-1", "key": new_key()["Idempotency-Key"],
                                           "back": DOCTOR_PAGE})
        booking_id = str(held.url).rsplit("/", 1)[-1]
        pay_page = portal.get(f"/bookings/{booking_id}/pay")
        token = re.search(r'name="csrf" value="([^"]+)"', pay_page.text).group(1)
        portal.post(f"/bookings/{booking_id}/pay", data={"csrf": token, "key": f"k-{booking_id}", "method": "tok_ok"})
        assert queued(hold(http, second, place["ticket"]))["position"] == 1
        fakes["registration"].bookings[booking_id].status = reg.BOOKING_STATUS_CONFIRMED
        portal.get(f"/bookings/{booking_id}")
        api_ticket = hold(http, second, place["ticket"])
        assert api_ticket.status_code == 201

        # And the other way round: the API's patient has the place, the portal's queues behind it.
        assert portal.get(DOCTOR_PAGE).url.path == "/queue"


def test_another_accounts_ticket_is_no_ticket_in_the_portal(own_gateway):
    """Before, an admission was the ticket number in the session cookie: signing in as another account in
    the same browser, or a session carrying another's ticket number, was admitted on it."""
    url = own_gateway(waiting_room_capacity=1)
    with portal_session(url, *FIRST) as browser:
        assert browser.get(DOCTOR_PAGE).url.path == DOCTOR_PAGE
        ticket = session_of(browser)["ticket"]
        # The same browser signs in as the second patient: the first's ticket is not the second's.
        sign_in(browser, *SECOND)
        assert browser.get(DOCTOR_PAGE).url.path == "/queue"
        assert session_of(browser)["ticket"] != ticket

    with portal_session(url, *SECOND) as other, portal_session(url, *FIRST) as owner:
        # A session of the second's carrying the first's ticket number: queued.
        set_session(other, signed_session({**session_of(other), "ticket": ticket}))
        assert other.get(DOCTOR_PAGE).url.path == "/queue"
        assert session_of(other)["ticket"] != ticket
        # The ticket is the first account's, in any of its sessions.
        set_session(owner, signed_session({**session_of(owner), "ticket": ticket}))
        assert owner.get(DOCTOR_PAGE).url.path == DOCTOR_PAGE


def test_a_ticket_taken_before_signing_in_passes_to_the_account_that_signs_in_and_no_other(own_gateway):
    """A patient may look at a doctor's times, queueing, before signing in to hold one: the session's
    ticket becomes the account's. A copy of that session signed in as another account is not admitted."""
    url = own_gateway(waiting_room_capacity=1)
    with portal_session(url) as browser, portal_session(url) as copy, httpx.Client(base_url=url, timeout=20) as http:
        assert browser.get(DOCTOR_PAGE).url.path == DOCTOR_PAGE  # admitted before signing in
        ticket = session_of(browser)["ticket"]
        set_session(copy, browser.cookies[SESSION_COOKIE])

        sign_in(browser, *FIRST)
        assert browser.get(DOCTOR_PAGE).url.path == DOCTOR_PAGE
        assert session_of(browser)["ticket"] == ticket
        sign_in(copy, *SECOND)
        assert copy.get(DOCTOR_PAGE).url.path == "/queue"
        # The account's ticket is good in the API too: one queue, one place.
        assert hold(http, Caller(http, *FIRST), ticket).status_code == 201
        assert queued(hold(http, Caller(http, *SECOND), ticket))["ticket"] != ticket


# Public addresses, as the gateway sees a client behind its trusted proxy (127.0.0.1 in these tests).
SCRIPT_ADDRESS, PATIENT_ADDRESS = "101.6.6.6", "101.7.7.7"


def test_an_address_past_its_new_tickets_is_refused_429_in_the_api_and_takes_no_ticket(own_gateway):
    """Before, every hold without a ticket (or with a forged or another's one) took a new ticket: a script
    pushed the queueing patients back, one place per call. Now an address takes its limit of new tickets a
    minute; past it the hold is refused 429 too_many_tickets_from_address with Retry-After and no ticket,
    while its tickets already taken, and other addresses, queue as before."""
    url = own_gateway(waiting_room_capacity=1, waiting_room_new_tickets_per_address=2)
    with httpx.Client(base_url=url, timeout=20, headers={"X-Forwarded-For": SCRIPT_ADDRESS}) as http:
        first, second = Caller(http, *FIRST), Caller(http, *SECOND)
        assert hold(http, first).status_code == 201
        place = queued(hold(http, second))

        for _ in range(3):
            refused = hold(http, second)
            assert error(refused) == (429, "too_many_tickets_from_address", None), refused.text
            assert 1 <= int(refused.headers["Retry-After"]) <= 60
            assert TICKET not in refused.headers and "waiting_room" not in refused.json()
        # Its ticket taken before is answered as ever; another address queues behind it.
        assert queued(hold(http, second, place["ticket"]))["position"] == 1
        elsewhere = queued(http.post("/api/v1/bookings", json={"slot_id": "slot-1"},
                                     headers=second.headers | new_key() | {"X-Forwarded-For": PATIENT_ADDRESS}))
        assert elsewhere["position"] == 2


def test_a_portal_visitor_past_the_addresss_new_tickets_sees_the_waiting_page_saying_so(own_gateway):
    """Cookie-less page loads each took a ticket. Past the address's limit, the waiting page says the network
    has taken many places this minute and tries again by itself; another address still queues."""
    url = own_gateway(waiting_room_capacity=1, waiting_room_new_tickets_per_address=2)
    loads = []
    for _ in range(3):
        with httpx.Client(base_url=url, timeout=20, follow_redirects=True,
                          headers={"X-Forwarded-For": SCRIPT_ADDRESS}) as cookieless:
            loads.append(cookieless.get(DOCTOR_PAGE))
    assert [page.url.path for page in loads] == [DOCTOR_PAGE, "/queue", "/queue"]
    limited = loads[2]
    assert limited.status_code == 429 and 1 <= int(limited.headers["Retry-After"]) <= 60
    assert 'id="queue-address-limited"' in limited.text and "同一 Wi-Fi 或移动网络" in limited.text
    assert 'id="queue-position"' not in limited.text and "data-queue-status" not in limited.text
    assert f'content="{limited.headers["Retry-After"]}"' in limited.text
    with portal_session(url) as patient:
        patient.headers["X-Forwarded-For"] = PATIENT_ADDRESS
        page = patient.get(DOCTOR_PAGE)
        assert page.status_code == 200 and 'id="queue-position">2<' in page.text


def test_the_openapi_describes_the_waiting_room_of_the_hold():
    from gateway.app import create_app

    spec = create_app().openapi()
    hold_op = spec["paths"]["/api/v1/bookings"]["post"]
    assert {p["name"]: p["required"] for p in hold_op["parameters"] if p["in"] == "header"} == {
        "Idempotency-Key": True, TICKET: False}
    queued_reply = hold_op["responses"]["429"]
    assert "in_waiting_room" in queued_reply["description"]
    assert "too_many_tickets_from_address" in queued_reply["description"]
    assert set(queued_reply["headers"]) == {"Retry-After", TICKET}
    assert queued_reply["content"]["application/json"]["schema"]["$ref"].endswith("/WaitingRoomReply")
    assert TICKET in hold_op["responses"]["201"]["headers"]
    standing = spec["components"]["schemas"]["WaitingRoomStanding"]["properties"]
    assert set(standing) == {"ticket", "position", "waiting", "requeued"}
    for path, method in (("/api/v1/bookings/{booking_id}", "get"), ("/api/v1/bookings/{booking_id}/payment", "post"),
                         ("/api/v1/bookings/{booking_id}/cancel", "post")):
        assert TICKET in {p["name"] for p in spec["paths"][path][method]["parameters"]}, path
