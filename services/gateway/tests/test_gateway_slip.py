"""The registration slip: masking and formatting rules (pure), and the PDF
through HTTP with the patient's name from the real identity api."""
from __future__ import annotations

import io

import pypdf
import pytest
from gateway_testkit import error

from gateway import slip
from tuoguan.registration.v1 import registration_pb2 as reg


@pytest.mark.parametrize("name,masked", [
    ("张晓明", "张*明"), ("李秀", "李*"), ("欧阳娜娜", "欧**娜"), ("王", "*"), ("", ""), (" 刘芳 ", "刘*"),
    ("John Smith", "J********h"),
])
def test_names_keep_only_their_first_and_last_character(name, masked):
    assert slip.mask_name(name) == masked


def test_fees_print_in_yuan_and_times_in_shanghai():
    assert [slip.yuan(f) for f in (0, 5, 1200, 5050)] == ["0.00 元", "0.05 元", "12.00 元", "50.50 元"]
    assert slip.clock_time("2026-12-01T00:30:00Z") == "08:30"
    assert slip.clock_time("") == "—"
    assert slip.service_day("2026-12-06") == "2026-12-06（星期日）"


def _confirmed(fakes, booking_id, patient_id, status=reg.BOOKING_STATUS_CONFIRMED):
    fakes["registration"].bookings[booking_id] = reg.Booking(
        booking_id=booking_id, booking_number=f"R2026{booking_id[-4:]}", patient_id=patient_id, status=status,
        department_name="心内科", doctor_name="王建华", service_date="2026-12-01",
        starts_at="2026-12-01T00:30:00Z", ends_at="2026-12-01T00:45:00Z", queue_number=7, fee_fen=5000,
    )
    return fakes["registration"].bookings[booking_id]


@pytest.mark.integration
def test_the_slip_shows_the_booking_and_a_masked_name_with_a_qr_code(http, fakes, demo):
    demo_patient = demo("13800000001")
    booking = _confirmed(fakes, "bk-slip-0001", demo_patient.account["account_id"])
    reply = http.get("/api/v1/bookings/bk-slip-0001/slip.pdf", headers=demo_patient.headers)
    assert reply.status_code == 200 and reply.headers["content-type"] == "application/pdf"
    assert reply.headers["cache-control"] == "no-store"
    pdf = pypdf.PdfReader(io.BytesIO(reply.content))
    page = pdf.pages[0]
    text = page.extract_text()
    for shown in ("张*明", booking.booking_number, "心内科", "王建华", "2026-12-01", "08:30-08:45", "7", "50.00 元"):
        assert shown in text
    assert "张晓明" not in text and "张晓明" not in str(pdf.metadata)
    [image] = page.images
    # The embedded picture is the QR code of the booking number, pixel for pixel.
    expected = slip.qr_image(booking.booking_number).convert("L")
    assert image.image.convert("L").tobytes() == expected.tobytes()
    assert image.image.convert("L").tobytes() != slip.qr_image("R20269999").convert("L").tobytes()


@pytest.mark.integration
def test_a_checked_in_booking_still_prints(http, fakes, demo):
    demo_patient = demo("13800000001")
    _confirmed(fakes, "bk-slip-0002", demo_patient.account["account_id"], reg.BOOKING_STATUS_CHECKED_IN)
    assert http.get("/api/v1/bookings/bk-slip-0002/slip.pdf", headers=demo_patient.headers).status_code == 200


@pytest.mark.integration
def test_no_slip_before_the_fee_is_paid(http, fakes, demo):
    demo_patient = demo("13800000001")
    _confirmed(fakes, "bk-slip-0003", demo_patient.account["account_id"], reg.BOOKING_STATUS_HELD)
    assert error(http.get("/api/v1/bookings/bk-slip-0003/slip.pdf", headers=demo_patient.headers)) == \
        (409, "booking_not_confirmed", None)


@pytest.mark.integration
def test_only_the_bookings_patient_prints_its_slip(http, fakes, demo):
    demo_patient = demo("13800000001")
    office = demo("office")
    _confirmed(fakes, "bk-slip-0004", demo_patient.account["account_id"])
    # The office may read the booking, but the name on a slip is the caller's own.
    assert error(http.get("/api/v1/bookings/bk-slip-0004/slip.pdf", headers=office.headers)) == \
        (403, "not_booking_patient", None)
    assert error(http.get("/api/v1/bookings/bk-slip-0004/slip.pdf"))[0] == 401
