"""The registration slip: what a patient shows at the registration desk.

A PDF (reportlab, the built-in CID font STSong-Light for Chinese) with a QR
code of the booking number. The patient's name is masked, because slips are
printed, photographed and left lying around.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import functools
import io
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import qrcode
from qrcode.constants import ERROR_CORRECT_M
from reportlab.lib.pagesizes import A6
from reportlab.lib.units import mm
from reportlab.lib.utils import ImageReader
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfgen import canvas
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from tuoguan.identity.v1 import identity_pb2
from tuoguan.registration.v1 import registration_pb2

from .errors import ApiError

SHANGHAI = ZoneInfo("Asia/Shanghai")
FONT = "STSong-Light"
PRINTABLE = frozenset({registration_pb2.BOOKING_STATUS_CONFIRMED, registration_pb2.BOOKING_STATUS_CHECKED_IN})
WEEKDAYS = "一二三四五六日"


def mask_name(name: str) -> str:
    """Keeps the first and the last character: 张晓明 -> 张*明, 李秀 -> 李*, 欧阳娜娜 -> 欧**娜."""
    name = name.strip()
    if len(name) <= 1:
        return "*" * len(name)
    if len(name) == 2:
        return name[0] + "*"
    return name[0] + "*" * (len(name) - 2) + name[-1]


def yuan(fen: int) -> str:
    """Integer fen as yuan for people: 1200 -> 12.00 元 (the CID font's ¥ is full-width)."""
    return f"{Decimal(fen).scaleb(-2):.2f} 元"


def clock_time(rfc3339: str) -> str:
    """An RFC 3339 instant as the hospital's wall-clock time, HH:MM."""
    if not rfc3339:
        return "—"
    return dt.datetime.fromisoformat(rfc3339).astimezone(SHANGHAI).strftime("%H:%M")


def service_day(iso_date: str) -> str:
    """2026-12-01 -> 2026-12-01（星期二）."""
    if not iso_date:
        return "—"
    return f"{iso_date}（星期{WEEKDAYS[dt.date.fromisoformat(iso_date).weekday()]}）"


@dataclass(frozen=True)
class Slip:
    booking_number: str
    department: str
    doctor: str
    service_day: str
    time: str
    queue_number: str
    fee: str
    patient: str


def slip_for(booking: registration_pb2.Booking, account: identity_pb2.Account) -> Slip:
    """What the slip shows; only a paid booking, and only for its own patient, gets one."""
    if booking.status not in PRINTABLE:
        raise ApiError(409, "booking_not_confirmed", "a slip is printed once the fee is paid and the booking confirmed")
    # The name on the slip is the caller's own: staff fetching a patient's
    # booking would otherwise print their own name on it.
    if booking.patient_id != account.account_id:
        raise ApiError(403, "not_booking_patient", "only the booking's patient can print its slip")
    return Slip(
        booking_number=booking.booking_number,
        department=booking.department_name,
        doctor=booking.doctor_name,
        service_day=service_day(booking.service_date),
        time=f"{clock_time(booking.starts_at)}-{clock_time(booking.ends_at)}",
        queue_number=str(booking.queue_number) if booking.queue_number else "—",
        fee=yuan(booking.fee_fen),
        patient=mask_name(account.display_name),
    )


def qr_image(data: str):
    """The QR code of ``data`` as a PIL image (medium error correction survives a crease)."""
    code = qrcode.QRCode(error_correction=ERROR_CORRECT_M, box_size=8, border=2)
    code.add_data(data)
    code.make(fit=True)
    return code.make_image(fill_color="black", back_color="white").get_image()


@functools.cache
def _font() -> str:
    pdfmetrics.registerFont(UnicodeCIDFont(FONT))
    return FONT


def render(slip: Slip) -> bytes:
    """The slip as an A6 PDF."""
    font = _font()
    out = io.BytesIO()
    width, height = A6
    pdf = canvas.Canvas(out, pagesize=A6)
    # Document metadata travels with the file: the booking number only, no name.
    pdf.setTitle(f"挂号凭条 {slip.booking_number}")
    pdf.setFont(font, 16)
    pdf.drawCentredString(width / 2, height - 16 * mm, "挂号凭条")
    pdf.setFont(font, 9)
    pdf.drawCentredString(width / 2, height - 21 * mm, "Registration slip")
    rows = [
        ("预约号 No.", slip.booking_number),
        ("患者 Patient", slip.patient),
        ("科室 Dept.", slip.department),
        ("医生 Doctor", slip.doctor),
        ("日期 Date", slip.service_day),
        ("时间 Time", slip.time),
        ("序号 Queue", slip.queue_number),
        ("挂号费 Fee", slip.fee),
    ]
    y = height - 32 * mm
    for label, value in rows:
        pdf.setFont(font, 8)
        pdf.drawString(10 * mm, y, label)
        pdf.setFont(font, 10)
        pdf.drawString(36 * mm, y, value)
        y -= 6.5 * mm
    side = 38 * mm
    pdf.drawImage(ImageReader(qr_image(slip.booking_number)), (width - side) / 2, 14 * mm, side, side)
    pdf.setFont(font, 7)
    pdf.drawCentredString(width / 2, 9 * mm, "就诊当日请凭此凭条或二维码到挂号处签到")
    pdf.drawCentredString(width / 2, 5.5 * mm, "Show this slip or its QR code at the registration desk")
    pdf.showPage()
    pdf.save()
    return out.getvalue()


async def slip_pdf(services: Any, booking_id: str) -> tuple[str, bytes]:
    """The caller's slip for a booking: its file name and the PDF."""
    booking_reply, account_reply = await asyncio.gather(
        services.registration.GetBooking(registration_pb2.GetBookingRequest(booking_id=booking_id)),
        services.identity.GetMyAccount(identity_pb2.GetMyAccountRequest()),
    )
    content = slip_for(booking_reply.booking, account_reply.account)
    pdf = await run_in_threadpool(render, content)  # reportlab is CPU work: off the event loop
    return f"slip-{content.booking_number}.pdf", pdf


def pdf_response(filename: str, pdf: bytes) -> Response:
    return Response(pdf, media_type="application/pdf", headers={
        "Content-Disposition": f'inline; filename="{filename}"',
        # It names the patient (masked) and the visit: no shared caches.
        "Cache-Control": "no-store",
    })
