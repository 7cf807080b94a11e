"""Catalogue, bookings and payments through HTTP: requests reach the services
with the caller's token, refusals come back mapped."""
from __future__ import annotations

import pytest
from gateway_testkit import error, new_key

from tuoguan.registration.v1 import registration_pb2 as reg

pytestmark = pytest.mark.integration


def test_departments_and_doctors_are_public(http):
    departments = http.get("/api/v1/departments")
    assert departments.status_code == 200
    assert [d["name"] for d in departments.json()["departments"]] == ["心内科", "儿科"]
    doctors = http.get("/api/v1/departments/dep-cardio/doctors").json()["doctors"]
    assert doctors[0]["title"] == "chief" and doctors[0]["fee_fen"] == 5000
    assert error(http.get("/api/v1/departments/dep-none/doctors")) == (404, "department_not_found", None)


def test_slot_filters_reach_registration(http, fakes):
    reply = http.get("/api/v1/slots", params={"department_id": "dep-cardio", "from_date": "2026-12-01",
                                              "to_date": "2026-12-07", "only_available": "true"})
    assert reply.status_code == 200 and reply.json()["slots"][0]["period"] == "morning"
    _, request, _ = fakes["registration"].last("ListSlots")
    assert (request.department_id, request.from_date, request.to_date, request.only_available) == \
        ("dep-cardio", "2026-12-01", "2026-12-07", True)
    assert error(http.get("/api/v1/slots", params={"from_date": "next tuesday"}))[::2] == (422, "from_date")


def test_a_patient_holds_a_slot_with_their_token_and_key(http, fakes, patient):
    key = new_key()
    reply = http.post("/api/v1/bookings", headers=patient.headers | key, json={"slot_id": "slot-1"})
    assert reply.status_code == 201
    assert reply.json()["status"] == "held" and reply.json()["patient_id"] == patient.account["account_id"]
    _, request, metadata = fakes["registration"].last("HoldSlot")
    assert request.idempotency_key == key["Idempotency-Key"]
    assert metadata["authorization"] == f"Bearer {patient.token}"


@pytest.mark.parametrize("slot_id,headers,expected", [
    ("slot-1", {}, (401, "unauthenticated", None)),
    ("slot-full", None, (409, "slot_full", None)),
    ("slot-down", None, (503, "unavailable", None)),
])
def test_hold_refusals_map_to_http(http, patient, slot_id, headers, expected):
    sent = patient.headers if headers is None else headers
    assert error(http.post("/api/v1/bookings", headers=sent | new_key(), json={"slot_id": slot_id})) == expected


def test_a_hold_without_idempotency_key_is_422(http, patient):
    reply = http.post("/api/v1/bookings", headers=patient.headers, json={"slot_id": "slot-1"})
    assert error(reply) == (422, "invalid_argument", "Idempotency-Key")
    assert error(http.post("/api/v1/bookings", headers=patient.headers | new_key(), json={}))[::2] == (422, "slot_id")


def test_a_patient_sees_only_their_own_bookings(http, patient, demo):
    demo_patient = demo("13800000001")
    mine = http.post("/api/v1/bookings", headers=patient.headers | new_key(), json={"slot_id": "slot-1"}).json()
    assert mine.pop("payment_ticket") == f"ticket-of-{mine['booking_id']}", "the hold's answer alone carries it"
    assert http.get(f"/api/v1/bookings/{mine['booking_id']}", headers=patient.headers).json() == mine
    assert [b["booking_id"] for b in http.get("/api/v1/bookings", headers=patient.headers).json()["bookings"]] == \
        [mine["booking_id"]]
    assert error(http.get(f"/api/v1/bookings/{mine['booking_id']}", headers=demo_patient.headers)) == \
        (403, "permission_denied", None)
    assert error(http.get("/api/v1/bookings/bk-none", headers=patient.headers)) == (404, "booking_not_found", None)


def test_paying_forwards_token_key_and_ticket_to_billing(http, fakes, patient):
    booking = http.post("/api/v1/bookings", headers=patient.headers | new_key(), json={"slot_id": "slot-1"}).json()
    key = new_key()
    paid = http.post(f"/api/v1/bookings/{booking['booking_id']}/payment", headers=patient.headers | key,
                     json={"payment_method_token": "tok_ok", "payment_ticket": booking["payment_ticket"]})
    assert paid.status_code == 201 and paid.json()["status"] == "pending" and paid.json()["amount_fen"] == 5000
    _, request, metadata = fakes["billing"].last("PayRegistrationFee")
    assert (request.booking_id, request.payment_method_token, request.idempotency_key, request.payment_ticket) == \
        (booking["booking_id"], "tok_ok", key["Idempotency-Key"], f"ticket-of-{booking['booking_id']}")
    assert metadata["authorization"] == f"Bearer {patient.token}"
    listed = http.get(f"/api/v1/bookings/{booking['booking_id']}/payments", headers=patient.headers)
    assert [p["payment_id"] for p in listed.json()["payments"]] == [paid.json()["payment_id"]]
    assert error(http.post(f"/api/v1/bookings/{booking['booking_id']}/payment", headers=patient.headers,
                           json={"payment_method_token": "tok_ok"}))[::2] == (422, "Idempotency-Key")


def test_a_patient_cancels_a_booking(http, fakes, patient):
    booking = http.post("/api/v1/bookings", headers=patient.headers | new_key(), json={"slot_id": "slot-1"}).json()
    cancelled = http.post(f"/api/v1/bookings/{booking['booking_id']}/cancel", headers=patient.headers | new_key())
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert fakes["registration"].bookings[booking["booking_id"]].status == reg.BOOKING_STATUS_CANCELLED
