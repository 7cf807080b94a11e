"""The hospital's words for booking: departments, doctors, sessions, slots,
holds and bookings, as plain values."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum


class Period(StrEnum):
    MORNING = "morning"
    AFTERNOON = "afternoon"
    EVENING = "evening"


class Title(StrEnum):
    RESIDENT = "resident"
    ATTENDING = "attending"
    ASSOCIATE_CHIEF = "associate_chief"
    CHIEF = "chief"


class BookingStatus(StrEnum):
    HELD = "HELD"
    CONFIRMED = "CONFIRMED"
    CANCELLED = "CANCELLED"
    EXPIRED = "EXPIRED"
    CHECKED_IN = "CHECKED_IN"
    NO_SHOW = "NO_SHOW"


class SessionStatus(StrEnum):
    OPEN = "OPEN"
    SUSPENDED = "SUSPENDED"


# Bookings that take a place in a slot and can still be called off.
ACTIVE = frozenset({BookingStatus.HELD, BookingStatus.CONFIRMED})
# Bookings that still stand for the patient's day: a patient who has checked
# in at a clinic has been there that day as much as one who will go.
STANDING = ACTIVE | {BookingStatus.CHECKED_IN}


@dataclass(frozen=True)
class SlotState:
    """What a hold needs to know about a slot."""

    slot_id: str
    department_id: str
    service_date: dt.date
    starts_at: dt.datetime
    ends_at: dt.datetime
    capacity: int
    booked: int
    held: int
    released_at: dt.datetime
    suspended: bool

    @property
    def remaining(self) -> int:
        return self.capacity - self.booked - self.held


@dataclass(frozen=True)
class PatientBooking:
    """One of the patient's own bookings, as far as the hold rules care."""

    booking_id: str
    status: BookingStatus
    department_id: str
    service_date: dt.date
    starts_at: dt.datetime
    ends_at: dt.datetime


@dataclass(frozen=True)
class Refusal:
    """Why a request cannot be done now: ``reason`` is a stable machine code."""

    reason: str
    message: str
