"""The booking rules: who may hold which slot, and which changes a booking
may still undergo. Each returns a Refusal (reason code and message) or a
decision; none raises or reads a clock."""
from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from .model import ACTIVE, STANDING, BookingStatus, PatientBooking, Refusal, SlotState
from .policy import BookingPolicy

SLOT_FULL = "slot_full"
SLOT_NOT_RELEASED = "slot_not_released"
SESSION_SUSPENDED = "session_suspended"
SLOT_IN_PAST = "slot_in_past"
ONE_PER_DEPARTMENT_PER_DAY = "one_per_department_per_day"
ACTIVE_BOOKING_CAP = "active_booking_cap"
OVERLAPPING_BOOKING = "overlapping_booking"
CANCEL_CUTOFF_PASSED = "cancel_cutoff_passed"
BOOKING_NOT_CANCELLABLE = "booking_not_cancellable"
VISIT_STARTED = "visit_started"
NOT_CONFIRMED = "booking_not_confirmed"
HOLD_ENDED = "booking_expired"  # the same code as a booking the timer has already expired
NOT_SERVICE_DAY = "not_service_day"
VISIT_NOT_STARTED = "visit_not_started"
SESSION_ALREADY_SUSPENDED = "session_already_suspended"
SESSION_OVER = "session_over"
BOOKED_AGAIN = "booked_again"
BOOKED_OVER = "booked_over"

# A decision that is not a refusal: do the change, or it was already done.
APPLY: Literal["apply"] = "apply"
UNCHANGED: Literal["unchanged"] = "unchanged"
Decision = Refusal | Literal["apply", "unchanged"]


def slot_refusal(slot: SlotState, now: dt.datetime) -> Refusal | None:
    """Whether the slot itself can take one more hold now."""
    if slot.released_at > now:
        return Refusal(SLOT_NOT_RELEASED, "this slot is not released yet")
    if slot.suspended:
        return Refusal(SESSION_SUSPENDED, "the doctor's session is suspended")
    if slot.starts_at <= now:
        return Refusal(SLOT_IN_PAST, "this slot has already started")
    if slot.remaining <= 0:
        return Refusal(SLOT_FULL, "this slot is fully booked")
    return None


def patient_refusal(
    slot: SlotState, bookings: Iterable[PatientBooking], policy: BookingPolicy, now: dt.datetime
) -> Refusal | None:
    """Whether this patient may hold this slot, given their own bookings."""
    standing = [b for b in bookings if b.status in STANDING]
    if any(b.department_id == slot.department_id and b.service_date == slot.service_date for b in standing):
        return Refusal(ONE_PER_DEPARTMENT_PER_DAY, "you already have a booking in this department on this day")
    active = [b for b in standing if b.status in ACTIVE and b.starts_at > now]
    if len(active) >= policy.active_booking_cap:
        return Refusal(ACTIVE_BOOKING_CAP, f"you already have {len(active)} open bookings, the most allowed")
    if any(b.starts_at < slot.ends_at and slot.starts_at < b.ends_at for b in standing):
        return Refusal(OVERLAPPING_BOOKING, "you have another booking at this time")
    return None


def hold_refusal(
    slot: SlotState, bookings: Iterable[PatientBooking], policy: BookingPolicy, now: dt.datetime
) -> Refusal | None:
    return slot_refusal(slot, now) or patient_refusal(slot, bookings, policy, now)


def cancel_refusal(status: BookingStatus, starts_at: dt.datetime, policy: BookingPolicy,
                   now: dt.datetime, *, by_office: bool = False) -> Refusal | None:
    """Whether the booking may be cancelled now. The cut-off keeps patients
    from dropping a place too late for anyone else to take it; it does not
    bind the registration office, which patients past it are sent to: the
    office cancels a held or confirmed booking until the visit starts. From
    then on it is checked in or marked as a no-show: a cancellation refunds,
    and a visit missed is no reason to (nor, days later, a way to refund one).
    An unpaid hold is not bound by the cut-off either: released, its place
    comes back sooner than its expiry would bring it, and nobody is refunded;
    the patient releases it until the visit starts (a hold made within the
    cut-off could not be let go of, and kept them from the department that
    day until it expired)."""
    if status not in ACTIVE:
        return Refusal(BOOKING_NOT_CANCELLABLE, f"a {status.lower()} booking cannot be cancelled")
    if (by_office or status == BookingStatus.HELD) and now >= starts_at:
        return Refusal(VISIT_STARTED, "the visit has started: check the patient in or mark a no-show" if by_office
                       else "the visit has started: the hold ends by itself")
    if not by_office and status != BookingStatus.HELD and now > policy.cancel_cutoff(starts_at):
        return Refusal(CANCEL_CUTOFF_PASSED,
                       f"bookings can be cancelled until {policy.cancel_cutoff_minutes} minutes before the visit")
    return None


def session_free(capacity: int, booked: int, held: int, suspended: bool) -> int:
    """The places of a session left to book. A suspended session takes no
    holds (its slots are closed): none of its capacity is free, or the office
    would quote places that do not exist."""
    if suspended:
        return 0
    return capacity - booked - held


def check_in_decision(status: BookingStatus, service_date: dt.date, today: dt.date, *,
                      booked_again: bool = False, booked_over: bool = False, suspended: bool = False) -> Decision:
    """Check-in is open on the visit's day to a confirmed booking, and to one
    marked as a no-show: a patient who comes late is seen, and the clerk who
    marked them must be able to say so. Unless the patient has since booked
    the department again that day: that booking is the one to check in (one
    booking per department per day); nor over a visit they have since booked
    elsewhere at the same time (``booked_over``): a no-show frees their time
    as much as their day, and checking it in would give them two bookings at
    once, which no hold may. Nor in a suspended session: its doctor
    is not there (a suspension leaves a no-show as it is, and cancels and
    refunds the confirmed bookings)."""
    if status == BookingStatus.CHECKED_IN:
        return UNCHANGED
    if status not in (BookingStatus.CONFIRMED, BookingStatus.NO_SHOW):
        return Refusal(NOT_CONFIRMED, f"a {status.lower()} booking cannot be checked in")
    if service_date != today:
        return Refusal(NOT_SERVICE_DAY, "check-in is open on the day of the visit only")
    if suspended:
        return Refusal(SESSION_SUSPENDED, "the doctor's session is suspended")
    if status == BookingStatus.NO_SHOW and booked_again:
        return Refusal(BOOKED_AGAIN, "the patient has booked this department again today: check that booking in")
    if status == BookingStatus.NO_SHOW and booked_over:
        return Refusal(BOOKED_OVER,
                       "the patient has since booked another visit at this time: check that one in, or cancel it first")
    return APPLY


def no_show_decision(status: BookingStatus, starts_at: dt.datetime, now: dt.datetime) -> Decision:
    if status == BookingStatus.NO_SHOW:
        return UNCHANGED
    if status != BookingStatus.CONFIRMED:
        return Refusal(NOT_CONFIRMED, f"a {status.lower()} booking cannot be marked as a no-show")
    if now < starts_at:
        return Refusal(VISIT_NOT_STARTED, "the visit has not started yet")
    return APPLY


def confirmed_when_held(fee_fen: int) -> bool:
    """A booking with no fee due (a free clinic) is confirmed as it is held:
    there is nothing to pay, so no payment would ever confirm it."""
    return fee_fen == 0


@dataclass(frozen=True)
class CapturedPayment:
    payment_id: str
    patient_id: str
    amount_fen: int


@dataclass(frozen=True)
class PaidBooking:
    """The booking a captured payment is for, as registration knows it."""

    status: BookingStatus
    patient_id: str
    fee_fen: int
    payment_id: str | None
    hold_expires_at: dt.datetime | None = None


# What a captured payment does to a booking: confirm it, nothing (the same
# payment again), or reject it so billing gives the money back.
CONFIRM: Literal["confirm"] = "confirm"
CaptureDecision = Refusal | Literal["confirm", "unchanged"]


def capture_decision(booking: PaidBooking | None, payment: CapturedPayment, now: dt.datetime) -> CaptureDecision:
    if booking is None:
        return Refusal("booking_not_found", "no such booking")
    if booking.payment_id == payment.payment_id:
        return UNCHANGED
    if booking.status != BookingStatus.HELD:
        if booking.payment_id:
            return Refusal("already_paid", "the booking was paid by another payment")
        return Refusal(f"booking_{booking.status.lower()}", f"the booking is {booking.status.lower()}")
    # Whether the expiry timer has run yet or not: the answer must not race it.
    # ``now`` is when the capture is applied, the timer's clock, not when the
    # provider captured: a hold that has ended may already have given its
    # place to another patient, so a capture the worker reaches late is
    # refunded, as billing refuses to start a payment after the hold's end.
    if booking.hold_expires_at is not None and booking.hold_expires_at <= now:
        return Refusal(HOLD_ENDED, "the hold ended before the payment was captured")
    if payment.patient_id and payment.patient_id != booking.patient_id:
        return Refusal("patient_mismatch", "the payment is not from the booking's patient")
    if payment.amount_fen != booking.fee_fen:
        return Refusal("amount_mismatch", "the amount paid is not the booking's fee")
    return CONFIRM


def ended_by_suspension(status: BookingStatus, starts_at: dt.datetime, now: dt.datetime) -> bool:
    """Whether suspending the session cancels this booking. A patient may check
    in any time on the day, hours before the slot: that visit will not happen
    either, so it is cancelled (and refunded) like a confirmed one. One whose
    slot has started is being or has been seen: it stands, fee and all."""
    if status in ACTIVE:
        return True
    return status == BookingStatus.CHECKED_IN and starts_at > now


def suspend_refusal(session_ends_at: dt.datetime | None, now: dt.datetime) -> Refusal | None:
    """A session that is over is not suspended: its patients came or did not
    (check-in, no-show), and suspending it would refund them all."""
    if session_ends_at is not None and session_ends_at <= now:
        return Refusal(SESSION_OVER, "the session is over: mark its bookings checked in or no-show instead")
    return None
