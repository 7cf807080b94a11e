"""A patient's whole journey through the gateway, against the real platform:
sign up, find a slot, hold, pay, confirmed, slip, cancel, refunded."""
from __future__ import annotations

import io

import pytest
from pypdf import PdfReader

from tests.e2e.journey import (available_slots, department, key, new_patient, new_phone, sign_in, texted_notices,
                               wait_booking)
from tuoguan_common.testing import wait_for

pytestmark = pytest.mark.integration


def _book_and_pay(http, auth, slot, token="tok_ok"):
    held = http.post("/api/v1/bookings", json={"slot_id": slot["slot_id"]}, headers={**auth, **key()})
    assert held.status_code == 201, held.text
    booking = held.json()
    assert booking["status"] == "held" and booking["fee_fen"] == slot["fee_fen"]
    assert booking["payment_ticket"], "the platform signs each hold's payment ticket"
    paid = http.post(f"/api/v1/bookings/{booking['booking_id']}/payment",
                     json={"payment_method_token": token, "payment_ticket": booking["payment_ticket"]},
                     headers={**auth, **key()})
    assert paid.status_code == 201, paid.text
    return booking, paid.json()


def test_find_hold_pay_confirm_print_cancel_refund(http):
    patient = new_patient(http, name="王小明")
    departments = http.get("/api/v1/departments").json()["departments"]
    assert len(departments) >= 5
    department = departments[0]
    doctors = http.get(f"/api/v1/departments/{department['department_id']}/doctors").json()["doctors"]
    assert doctors and all(d["fee_fen"] > 0 for d in doctors)
    slots = available_slots(http, department["department_id"])
    slot = max(slots, key=lambda s: s["starts_at"])  # far from the cancellation cut-off
    before = slot["remaining"]

    booking, payment = _book_and_pay(http, patient, slot)
    assert payment["status"] in ("pending", "captured")
    after_hold = {s["slot_id"]: s for s in available_slots(http, department["department_id"])}
    assert after_hold.get(slot["slot_id"], {"remaining": 0})["remaining"] == before - 1

    confirmed = wait_booking(http, patient, booking["booking_id"], lambda b: b["status"] == "confirmed")
    assert confirmed["queue_number"] >= 1
    assert confirmed["booking_number"]

    slip = http.get(f"/api/v1/bookings/{booking['booking_id']}/slip.pdf", headers=patient)
    assert slip.status_code == 200 and slip.headers["content-type"] == "application/pdf"
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(slip.content)).pages)
    assert confirmed["booking_number"] in text
    assert "王*明" in text and "王小明" not in text

    finance = sign_in(http, "finance", "Finance1234")
    ledger = http.get("/api/v1/finance/ledger", headers=finance).json()
    assert ledger["total_debit_fen"] == ledger["total_credit_fen"] > 0

    cancel_key = key()
    cancelled = http.post(f"/api/v1/bookings/{booking['booking_id']}/cancel", headers={**patient, **cancel_key})
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    again = http.post(f"/api/v1/bookings/{booking['booking_id']}/cancel", headers={**patient, **cancel_key})
    assert again.status_code == 200 and again.json()["status"] == "cancelled"

    refunded = wait_booking(http, patient, booking["booking_id"], lambda b: not b["refund_due"] and b["status"] == "cancelled")
    assert refunded["status"] == "cancelled"
    payments = http.get(f"/api/v1/bookings/{booking['booking_id']}/payments", headers=patient).json()["payments"]
    assert [p["status"] for p in payments] == ["refunded"]
    assert payments[0]["refunded_fen"] == slot["fee_fen"]
    # The patient's own lists, a page at a time: all of it on the first page, so no next one.
    mine = http.get("/api/v1/payments", headers=patient).json()
    assert [p["payment_id"] for p in mine["payments"]] == [payments[0]["payment_id"]] and mine["next_page_token"] == ""
    listed = http.get("/api/v1/bookings", params={"page_size": 1}, headers=patient).json()
    assert [b["booking_id"] for b in listed["bookings"]] == [booking["booking_id"]] and listed["next_page_token"] == ""
    for params, field in (({"page_token": "not-a-token"}, "page_token"), ({"page_size": -1}, "page_size")):
        refused = http.get("/api/v1/payments", params=params, headers=patient)
        assert refused.status_code == 422 and refused.json()["error"]["field"] == field, refused.text
    restored = {s["slot_id"]: s for s in available_slots(http, department["department_id"])}
    assert restored[slot["slot_id"]]["remaining"] == before


def test_declined_payment_releases_the_hold(http):
    patient = new_patient(http, name="李四")
    slot = available_slots(http, department(http, 1))[-1]
    booking, _payment = _book_and_pay(http, patient, slot, token="tok_decline")
    released = wait_booking(http, patient, booking["booking_id"], lambda b: b["status"] != "held")
    # Released by the decline itself, not by the hold running out.
    assert released["status"] == "expired"
    assert released["cancel_reason"] == "payment_failed"
    payments = http.get(f"/api/v1/bookings/{booking['booking_id']}/payments", headers=patient).json()["payments"]
    assert [p["status"] for p in payments] == ["failed"]


def test_unpaid_hold_expires_and_returns_to_stock(http):
    patient = new_patient(http, name="赵六")
    slot = available_slots(http, department(http, 2))[-1]
    held = http.post("/api/v1/bookings", json={"slot_id": slot["slot_id"]}, headers={**patient, **key()}).json()
    expired = wait_booking(http, patient, held["booking_id"], lambda b: b["status"] == "expired", timeout=40)
    assert expired["cancel_reason"] == "expired"
    restored = {s["slot_id"]: s for s in available_slots(http, slot["department_id"])}
    assert restored[slot["slot_id"]]["remaining"] == slot["remaining"]


def test_office_suspends_a_session_and_the_patient_is_refunded_and_texted_once(http):
    phone = new_phone()
    patient = new_patient(http, name="孙七", phone=phone)
    office = sign_in(http, "office", "Office1234")
    slot = available_slots(http, department(http, 3))[-1]
    booking, _ = _book_and_pay(http, patient, slot)
    wait_booking(http, patient, booking["booking_id"], lambda b: b["status"] == "confirmed")

    suspended = http.post(f"/api/v1/office/sessions/{slot['session_id']}/suspend",
                          json={"reason": "doctor called to surgery"}, headers={**office, **key()})
    assert suspended.status_code == 200, suspended.text
    assert booking["booking_id"] in [b["booking_id"] for b in suspended.json()["cancelled_bookings"]]
    cancelled = wait_booking(http, patient, booking["booking_id"],
                             lambda b: b["status"] == "cancelled" and not b["refund_due"])
    assert cancelled["cancel_reason"] == "session_suspended"
    payments = http.get(f"/api/v1/bookings/{booking['booking_id']}/payments", headers=patient).json()["payments"]
    assert [p["status"] for p in payments] == ["refunded"]
    # The suspended session's slots are no longer offered.
    assert slot["slot_id"] not in {s["slot_id"] for s in available_slots(http, slot["department_id"])}

    # Identity's worker texted the patient (make up's development notifier: its log, the phone masked).
    [text] = wait_for(lambda: texted_notices(phone), timeout=20, message="the patient's text")
    departments = {d["department_id"]: d for d in http.get("/api/v1/departments").json()["departments"]}
    day = f"{int(slot['service_date'][5:7])}月{int(slot['service_date'][8:10])}日"
    assert text.startswith(f"【医院】您预约的{day}"), text
    assert departments[slot["department_id"]]["name"] in text, text
    assert text.endswith("门诊已停诊，挂号费将原路退回。如需就诊请重新预约。"), text
    assert "孙七" not in text


def test_patients_see_only_their_own_bookings_and_only_office_suspends(http):
    alice = new_patient(http, name="周八")
    bob = new_patient(http, name="吴九")
    slot = available_slots(http, department(http, 4))[-1]
    held = http.post("/api/v1/bookings", json={"slot_id": slot["slot_id"]}, headers={**alice, **key()}).json()
    assert http.get(f"/api/v1/bookings/{held['booking_id']}", headers=bob).status_code in (403, 404)
    assert http.post(f"/api/v1/bookings/{held['booking_id']}/cancel", headers={**bob, **key()}).status_code in (403, 404)
    denied = http.post(f"/api/v1/office/sessions/{slot['session_id']}/suspend", json={"reason": "x"},
                       headers={**alice, **key()})
    assert denied.status_code == 403
    assert http.get("/api/v1/bookings").status_code == 401


def test_rules_give_specific_errors(http):
    patient = new_patient(http, name="郑十")
    slots = available_slots(http, department(http, 5))
    first = slots[-1]
    ok = http.post("/api/v1/bookings", json={"slot_id": first["slot_id"]}, headers={**patient, **key()})
    assert ok.status_code == 201, ok.text
    same_day_same_department = [
        s for s in slots
        if s["department_id"] == first["department_id"] and s["service_date"] == first["service_date"]
        and s["slot_id"] != first["slot_id"]
    ]
    assert same_day_same_department, "the seed publishes several slots per department per day"
    second = http.post("/api/v1/bookings", json={"slot_id": same_day_same_department[0]["slot_id"]},
                       headers={**patient, **key()})
    assert second.status_code == 409
    assert second.json()["error"]["reason"] == "one_per_department_per_day"

    bad = http.post("/api/v1/bookings", json={"slot_id": ""}, headers={**patient, **key()})
    assert bad.status_code == 422
    assert "slot_id" in str(bad.json())
    missing_key = http.post("/api/v1/bookings", json={"slot_id": first["slot_id"]}, headers=patient)
    assert missing_key.status_code == 422
