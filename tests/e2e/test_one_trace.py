"""One booking's payment is one trace: from the HTTP request through the
gateway, gRPC (billing, and billing's call to registration), SQL, billing's
outbox, RabbitMQ and registration's worker that confirms the booking."""
from __future__ import annotations

import json
import secrets
import time
from pathlib import Path

import pytest

from tests.e2e.journey import available_slots, department, key, new_patient, wait_booking

pytestmark = pytest.mark.integration


def _spans(path: Path, trace_id: str) -> list[dict]:
    if not path.exists():
        return []
    spans = []
    for line in path.read_text().splitlines():
        try:
            span = json.loads(line)
        except json.JSONDecodeError:
            continue
        if span["trace_id"] == trace_id:
            spans.append(span)
    return spans


def test_a_paid_booking_is_one_trace_across_services_and_the_broker(http, platform):
    patient = new_patient(http, name="钱一")
    slot = available_slots(http, department(http, 6))[-1]
    held = http.post("/api/v1/bookings", json={"slot_id": slot["slot_id"]}, headers={**patient, **key()}).json()

    trace_id = secrets.token_hex(16)
    traceparent = f"00-{trace_id}-{secrets.token_hex(8)}-01"
    paid = http.post(f"/api/v1/bookings/{held['booking_id']}/payment", json={"payment_method_token": "tok_ok"},
                     headers={**patient, **key(), "traceparent": traceparent})
    assert paid.status_code == 201, paid.text
    wait_booking(http, patient, held["booking_id"], lambda b: b["status"] == "confirmed")

    spans_file = Path(platform.env()["TUOGUAN_TRACE_FILE"])
    wanted = {
        ("gateway", "SERVER"),
        ("billing-api", "SERVER"),
        ("registration-api", "SERVER"),
        ("registration-worker", "CONSUMER"),
    }
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        spans = _spans(spans_file, trace_id)
        seen = {(s["service"], s["kind"]) for s in spans}
        if wanted <= seen and any(s["name"] == "db.transaction" and s["service"] == "registration-worker"
                                  for s in spans):
            break
        time.sleep(0.2)
    spans = _spans(spans_file, trace_id)
    seen = {(s["service"], s["kind"]) for s in spans}
    assert wanted <= seen, f"missing from the trace: {wanted - seen}"
    names = {(s["service"], s["name"]) for s in spans}
    assert ("billing-api", "tuoguan.billing.v1.BillingService/PayRegistrationFee") in names
    assert ("registration-api", "tuoguan.registration.v1.RegistrationService/GetBooking") in names
    assert any(s["name"] == "db.transaction" and s["service"] == "billing-api" for s in spans)
    assert any(s["name"] == "db.transaction" and s["service"] == "registration-worker" for s in spans)
    consumer = next(s for s in spans if s["service"] == "registration-worker" and s["kind"] == "CONSUMER")
    assert consumer["attributes"].get("messaging.event_type") == "PaymentCaptured"
    # Every span but the caller's root has its parent inside the same trace.
    ids = {s["span_id"] for s in spans}
    orphans = [s for s in spans if s["parent_id"] not in ids and s["parent_id"] != traceparent.split("-")[2]]
    assert not orphans, f"spans whose parent is outside the trace: {[(s['service'], s['name']) for s in orphans]}"
    # No personal data in span attributes.
    blob = json.dumps([s["attributes"] for s in spans], ensure_ascii=False)
    assert "钱一" not in blob and "139" not in blob
