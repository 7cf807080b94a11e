"""This service's rows as protobuf messages (the API's and the events' shapes)."""
from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from tuoguan.registration.v1 import registration_pb2 as pb
from tuoguan_common.payment_tickets import HeldBooking

from .domain import rules
from .domain.model import BookingStatus, Period, SessionStatus, Title

Row = Mapping[str, Any]

PERIOD_TO_PROTO = {
    Period.MORNING: pb.PERIOD_MORNING, Period.AFTERNOON: pb.PERIOD_AFTERNOON, Period.EVENING: pb.PERIOD_EVENING,
}
PERIOD_FROM_PROTO = {v: k for k, v in PERIOD_TO_PROTO.items()}
TITLE_TO_PROTO = {
    Title.RESIDENT: pb.DOCTOR_TITLE_RESIDENT, Title.ATTENDING: pb.DOCTOR_TITLE_ATTENDING,
    Title.ASSOCIATE_CHIEF: pb.DOCTOR_TITLE_ASSOCIATE_CHIEF, Title.CHIEF: pb.DOCTOR_TITLE_CHIEF,
}


def rfc3339(moment: dt.datetime | None) -> str:
    if moment is None:
        return ""
    return moment.astimezone(dt.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def text(value: Any) -> str:
    return "" if value is None else str(value)


def department(row: Row) -> pb.Department:
    return pb.Department(department_id=text(row["id"]), code=row["code"], name=row["name"], name_en=row["name_en"])


def doctor(row: Row) -> pb.Doctor:
    return pb.Doctor(
        doctor_id=text(row["id"]), department_id=text(row["department_id"]), name=row["name"],
        title=TITLE_TO_PROTO[Title(row["title"])], speciality=row["speciality"],
        speciality_en=row["speciality_en"], fee_fen=row["fee_fen"],
    )


def slot(row: Row) -> pb.Slot:
    return pb.Slot(
        slot_id=text(row["id"]), session_id=text(row["session_id"]), doctor_id=text(row["doctor_id"]),
        department_id=text(row["department_id"]), starts_at=rfc3339(row["starts_at"]),
        ends_at=rfc3339(row["ends_at"]), capacity=row["capacity"],
        remaining=row["capacity"] - row["booked"] - row["held"], fee_fen=row["fee_fen"],
        service_date=row["service_date"].isoformat(), period=PERIOD_TO_PROTO[Period(row["period"])],
    )


def booking(row: Row) -> pb.Booking:
    return pb.Booking(
        booking_id=text(row["id"]), booking_number=row["booking_number"], patient_id=row["patient_id"],
        slot_id=text(row["slot_id"]), doctor_id=text(row["doctor_id"]), department_id=text(row["department_id"]),
        starts_at=rfc3339(row["starts_at"]), ends_at=rfc3339(row["ends_at"]),
        status=pb.BookingStatus.Value(f"BOOKING_STATUS_{BookingStatus(row['status'])}"),
        fee_fen=row["fee_fen"], hold_expires_at=rfc3339(row["hold_expires_at"]),
        queue_number=row["queue_number"] or 0, cancel_reason=row["cancel_reason"],
        service_date=row["service_date"].isoformat(), doctor_name=row["doctor_name"],
        department_name=row["department_name"], refund_due=row["refund_due"], payment_id=text(row["payment_id"]),
        session_id=text(row["session_id"]), period=PERIOD_TO_PROTO[Period(row["period"])],
        created_at=rfc3339(row["created_at"]), refunded_at=rfc3339(row["refunded_at"]),
        session_suspend_reason=row.get("session_suspend_reason") or "",
    )


def held_booking(booking: pb.Booking) -> HeldBooking:
    """What a hold's payment ticket says of its booking."""
    return HeldBooking(booking_id=booking.booking_id, patient_id=booking.patient_id, fee_fen=booking.fee_fen,
                       hold_expires_at=dt.datetime.fromisoformat(booking.hold_expires_at))


def session(row: Row) -> pb.Session:
    return pb.Session(
        session_id=text(row["id"]), doctor_id=text(row["doctor_id"]), service_date=row["service_date"].isoformat(),
        period=PERIOD_TO_PROTO[Period(row["period"])],
        status=pb.SessionStatus.Value(f"SESSION_STATUS_{SessionStatus(row['status'])}"),
        capacity=row["capacity"], booked=row["booked"], held=row["held"],
        free=rules.session_free(row["capacity"], row["booked"], row["held"],
                                SessionStatus(row["status"]) == SessionStatus.SUSPENDED),
        doctor_name=row["doctor_name"],
        department_id=text(row["department_id"]), starts_at=rfc3339(row["starts_at"]),
        ends_at=rfc3339(row["ends_at"]), suspend_reason=row["suspend_reason"],
    )


def template(row: Row) -> pb.SessionTemplate:
    return pb.SessionTemplate(
        template_id=text(row["id"]), doctor_id=text(row["doctor_id"]), weekday=row["weekday"],
        period=PERIOD_TO_PROTO[Period(row["period"])], start_time=row["start_time"].strftime("%H:%M"),
        end_time=row["end_time"].strftime("%H:%M"), slot_minutes=row["slot_minutes"],
        capacity_per_slot=row["capacity_per_slot"], active=row["active"],
    )
