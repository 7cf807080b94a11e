"""A patient's bookings: hold a slot, pay, cancel, print the slip
(registration, billing, identity)."""
from __future__ import annotations

from fastapi import APIRouter, Response

from tuoguan.billing.v1 import billing_pb2
from tuoguan.registration.v1 import registration_pb2

from .. import slip
from ..convert import to_dict
from . import API_PREFIX
from ..deps import CallerServices, IdempotencyKey
from ..models import Booking, BookingList, HeldBooking, Hold, Pay, Payment, PaymentList

router = APIRouter(prefix=API_PREFIX, tags=["bookings"])


@router.post("/bookings", status_code=201, response_model=HeldBooking,
             summary="Hold a slot; pay within the hold time to confirm it")
async def hold_slot(body: Hold, key: IdempotencyKey, services: CallerServices):
    reply = await services.registration.HoldSlot(
        registration_pb2.HoldSlotRequest(slot_id=body.slot_id, idempotency_key=key))
    return {**to_dict(reply.booking), "payment_ticket": reply.payment_ticket}


@router.get("/bookings", response_model=BookingList, summary="The caller's bookings")
async def my_bookings(services: CallerServices):
    return to_dict(await services.registration.ListMyBookings(registration_pb2.ListMyBookingsRequest()))


@router.get("/bookings/{booking_id}", response_model=Booking)
async def booking(booking_id: str, services: CallerServices):
    reply = await services.registration.GetBooking(registration_pb2.GetBookingRequest(booking_id=booking_id))
    return to_dict(reply.booking)


@router.post("/bookings/{booking_id}/payment", status_code=201, response_model=Payment,
             summary="Pay the registration fee of a held booking")
async def pay(booking_id: str, body: Pay, key: IdempotencyKey, services: CallerServices):
    reply = await services.billing.PayRegistrationFee(billing_pb2.PayRegistrationFeeRequest(
        booking_id=booking_id, payment_method_token=body.payment_method_token, idempotency_key=key,
        payment_ticket=body.payment_ticket))
    return to_dict(reply.payment)


@router.get("/bookings/{booking_id}/payments", response_model=PaymentList)
async def payments(booking_id: str, services: CallerServices):
    return to_dict(await services.billing.ListPayments(billing_pb2.ListPaymentsRequest(booking_id=booking_id)))


@router.post("/bookings/{booking_id}/cancel", response_model=Booking)
async def cancel(booking_id: str, key: IdempotencyKey, services: CallerServices):
    reply = await services.registration.CancelBooking(
        registration_pb2.CancelBookingRequest(booking_id=booking_id, idempotency_key=key))
    return to_dict(reply.booking)


@router.get(
    "/bookings/{booking_id}/slip.pdf", response_class=Response,
    responses={200: {"content": {"application/pdf": {}}, "description": "The registration slip"}},
    summary="The registration slip of a confirmed booking, as a PDF",
)
async def registration_slip(booking_id: str, services: CallerServices):
    return slip.pdf_response(*await slip.slip_pdf(services, booking_id))
