"""Registration office and finance routes: the services decide the roles."""
from __future__ import annotations

import pytest
from gateway_testkit import JSON_CONTENT, error, escaped_json, new_key

from tuoguan.billing.v1 import billing_pb2 as bill
from tuoguan.registration.v1 import registration_pb2 as reg

pytestmark = pytest.mark.integration

TEMPLATE = {"doctor_id": "doc-wang", "weekday": 1, "period": "morning", "start_time": "08:00",
            "end_time": "11:30", "slot_minutes": 15, "capacity_per_slot": 2, "active": True}


def test_patients_are_refused_by_the_service_not_the_gateway(http, fakes, patient):
    assert error(http.get("/api/v1/office/sessions", headers=patient.headers)) == (403, "permission_denied", None)
    # The call did reach registration: the gateway decides no roles.
    assert fakes["registration"].last("ListSessions")[2]["authorization"] == f"Bearer {patient.token}"
    assert error(http.get("/api/v1/finance/ledger", headers=patient.headers))[0] == 403


def test_office_lists_a_days_sessions(http, fakes, demo):
    office = demo("office")
    reply = http.get("/api/v1/office/sessions", headers=office.headers,
                     params={"service_date": "2026-12-01", "department_id": "dep-cardio"})
    assert reply.status_code == 200
    session = reply.json()["sessions"][0]
    assert {k: session[k] for k in ("session_id", "service_date", "status", "booked", "held", "free")} == {
        "session_id": "ses-1", "service_date": "2026-12-01", "status": "open", "booked": 3, "held": 1, "free": 16}
    assert fakes["registration"].last("ListSessions")[1].department_id == "dep-cardio"


def test_office_puts_and_lists_session_templates(http, fakes, demo):
    office = demo("office")
    key = new_key()
    put = http.post("/api/v1/office/session-templates", headers=office.headers | key, json=TEMPLATE)
    assert put.status_code == 201 and put.json() == TEMPLATE | {"template_id": "tpl-1"}
    request = fakes["registration"].last("PutSessionTemplate")[1]
    assert request.template.period == reg.PERIOD_MORNING and request.idempotency_key == key["Idempotency-Key"]
    assert error(http.post("/api/v1/office/session-templates", headers=office.headers | new_key(),
                           json=TEMPLATE | {"period": "midnight"}))[::2] == (422, "period")
    listed = http.get("/api/v1/office/session-templates", headers=office.headers, params={"doctor_id": "doc-wang"})
    assert listed.json()["templates"][0]["period"] == "afternoon"


def test_proto_derived_requests_refuse_what_their_proto_cannot_hold(http, fakes, demo):
    office = demo("office")
    before = len(fakes["registration"].requests)
    for changes, field in (({"weekday": 2**40}, "weekday"), ({"capacity_per_slot": -(2**31) - 1}, "capacity_per_slot"),
                           ({"doctor_id": "doc-\ud800"}, "doctor_id")):
        reply = http.post("/api/v1/office/session-templates", headers=office.headers | new_key() | JSON_CONTENT,
                          content=escaped_json(TEMPLATE | changes))
        assert error(reply) == (422, "invalid_argument", field)
    for days_ahead in (2**40, 2**31):
        reply = http.post("/api/v1/office/schedule/publish", headers=office.headers,
                          json={"days_ahead": days_ahead, "release_now": False})
        assert error(reply) == (422, "invalid_argument", "days_ahead")
    assert len(fakes["registration"].requests) == before


@pytest.mark.parametrize("changes, field", [
    ({"release_now": "yes"}, "release_now"), ({"release_now": 1}, "release_now"),
    ({"days_ahead": "7"}, "days_ahead"), ({"days_ahead": True}, "days_ahead"),
])
def test_a_publication_takes_no_number_or_boolean_spelt_otherwise(http, fakes, demo, changes, field):
    """The OpenAPI says integer and boolean: "yes" or 1 is no answer to "release the slots to patients
    now?" (as StrictBool says of a major incident), nor true a number of days. Refused, nothing published."""
    before = len(fakes["registration"].requests)
    reply = http.post("/api/v1/office/schedule/publish", headers=demo("office").headers,
                      json={"days_ahead": 7, "release_now": False} | changes)
    assert error(reply) == (422, "invalid_argument", field)
    assert len(fakes["registration"].requests) == before


def test_office_publishes_and_suspends(http, fakes, demo):
    office = demo("office")
    published = http.post("/api/v1/office/schedule/publish", headers=office.headers,
                          json={"days_ahead": 7, "release_now": True})
    assert published.json() == {"sessions_created": 14, "slots_created": 140}
    assert fakes["registration"].last("PublishSchedule")[1].release_now is True
    key = new_key()
    suspended = http.post("/api/v1/office/sessions/ses-9/suspend", headers=office.headers | key,
                          json={"reason": "医生临时停诊"})
    assert suspended.status_code == 200 and suspended.json()["session"]["status"] == "suspended"
    request = fakes["registration"].last("SuspendSession")[1]
    assert (request.session_id, request.reason, request.idempotency_key) == \
        ("ses-9", "医生临时停诊", key["Idempotency-Key"])
    assert error(http.post("/api/v1/office/sessions/ses-9/suspend", headers=office.headers,
                           json={"reason": "x"}))[::2] == (422, "Idempotency-Key")


def test_office_checks_in_and_marks_no_shows(http, fakes, demo):
    office = demo("office")
    bookings = fakes["registration"].bookings
    bookings["bk-office-1"] = reg.Booking(booking_id="bk-office-1", patient_id="p", status=reg.BOOKING_STATUS_CONFIRMED)
    bookings["bk-office-2"] = reg.Booking(booking_id="bk-office-2", patient_id="p", status=reg.BOOKING_STATUS_HELD)
    checked_in = http.post("/api/v1/office/bookings/bk-office-1/check-in", headers=office.headers)
    assert checked_in.json()["status"] == "checked_in"
    assert error(http.post("/api/v1/office/bookings/bk-office-2/check-in", headers=office.headers)) == \
        (409, "booking_not_confirmed", None)
    bookings["bk-office-3"] = reg.Booking(booking_id="bk-office-3", patient_id="p", status=reg.BOOKING_STATUS_CONFIRMED)
    assert http.post("/api/v1/office/bookings/bk-office-3/no-show", headers=office.headers).json()["status"] == \
        "no_show"
    # The patient comes late that day: checked in all the same.
    assert http.post("/api/v1/office/bookings/bk-office-3/check-in", headers=office.headers).json()["status"] == \
        "checked_in"


def test_finance_reads_the_ledger_and_reconciliation(http, fakes, demo):
    finance = demo("finance")
    ledger = http.get("/api/v1/finance/ledger", headers=finance.headers).json()
    assert ledger["total_debit_fen"] == ledger["total_credit_fen"] == 5000
    assert [b["account"] for b in ledger["balances"]] == ["cash", "fees"]
    report = http.get("/api/v1/finance/reconciliation", headers=finance.headers, params={"business_date": "2026-12-01"})
    assert report.status_code == 200 and report.json()["business_date"] == "2026-12-01"
    assert fakes["billing"].last("GetReconciliationReport")[1].business_date == "2026-12-01"
    # A charge made after its payment failed reads as such, not as a fee and its cancellation.
    assert [(line["kind"], line["payment_id"], line["reason"]) for line in report.json()["lines"]] == [
        ("capture", "pay-1", ""), ("capture", "pay-late", "charged_after_failure"),
        ("refund", "pay-late", "charged_after_failure")]


def test_finance_sees_a_charge_given_back_after_its_payment_failed(http, fakes, demo):
    fakes["billing"].payments["bk-late"] = [bill.Payment(
        payment_id="pay-late", booking_id="bk-late", patient_id="pat-1", amount_fen=5000,
        status=bill.PAYMENT_STATUS_FAILED, failure_reason="never_authorized", provider_reference="sbx_ch_2",
        refunded_after_failure_fen=5000, refunded_after_failure_at="2026-12-01T02:00:00.000Z")]
    reply = http.get("/api/v1/bookings/bk-late/payments", headers=demo("finance").headers)
    assert reply.status_code == 200
    [payment] = reply.json()["payments"]
    assert {k: payment[k] for k in ("status", "refunded_fen", "refunded_after_failure_fen",
                                    "refunded_after_failure_at")} == {
        "status": "failed", "refunded_fen": 0, "refunded_after_failure_fen": 5000,
        "refunded_after_failure_at": "2026-12-01T02:00:00.000Z"}
    schema = http.get("/openapi.json").json()["components"]["schemas"]
    assert {"refunded_after_failure_fen", "refunded_after_failure_at"} <= set(schema["Payment"]["properties"])
    assert "reason" in schema["ReconciliationLine"]["properties"]


def test_office_lists_the_bookings_of_a_session(http, fakes, demo, patient):
    office = demo("office")
    reply = http.get("/api/v1/office/sessions/ses-1/bookings", headers=office.headers)
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert set(body) == {"session", "bookings"}
    assert {k: body["session"][k] for k in ("session_id", "status", "period", "capacity", "booked", "held",
                                            "free")} == {
        "session_id": "ses-1", "status": "open", "period": "morning", "capacity": 20, "booked": 2, "held": 1,
        "free": 17}
    assert [(b["booking_id"], b["status"], b["queue_number"]) for b in body["bookings"]] == [
        ("bk-s1", "checked_in", 1), ("bk-s2", "confirmed", 2), ("bk-s3", "held", 0), ("bk-s4", "expired", 0),
        ("bk-s5", "confirmed", 0), ("bk-s6", "no_show", 6)]
    assert body["bookings"][0]["patient_id"] == "p1" and body["bookings"][3]["cancel_reason"] == "expired"
    _, request, metadata = fakes["registration"].last("ListSessionBookings")
    assert request.session_id == "ses-1" and metadata["authorization"] == f"Bearer {office.token}"

    assert error(http.get("/api/v1/office/sessions/ses-1/bookings", headers=patient.headers)) == \
        (403, "permission_denied", None)
    assert error(http.get("/api/v1/office/sessions/ses-404/bookings", headers=office.headers)) == \
        (404, "session_not_found", None)
    assert error(http.get("/api/v1/office/sessions/not-an-id/bookings", headers=office.headers)) == \
        (422, "invalid_argument", "session_id")
    assert error(http.get("/api/v1/office/sessions/ses-1/bookings"))[0] == 401


def test_office_lists_one_doctors_sessions(http, fakes, demo):
    office = demo("office")
    reply = http.get("/api/v1/office/sessions", headers=office.headers,
                     params={"service_date": "2026-12-01", "doctor_id": "doc-wang"})
    assert reply.status_code == 200 and reply.json()["sessions"][0]["doctor_id"] == "doc-wang"
    request = fakes["registration"].last("ListSessions")[1]
    assert (request.service_date, request.doctor_id, request.department_id) == ("2026-12-01", "doc-wang", "")
