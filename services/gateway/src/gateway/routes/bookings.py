"""A patient's bookings: hold a slot, pay, cancel, print the slip
(registration, billing, identity)."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from tuoguan.billing.v1 import billing_pb2
from tuoguan.registration.v1 import registration_pb2

from .. import booking_queue, slip
from ..booking_queue import TICKET_REPLY_HEADER, TicketHeader
from ..convert import to_dict
from . import API_PREFIX
from ..deps import CallerServices, CallerToken, IdempotencyKey
from ..models import Booking, BookingList, HeldBooking, Hold, Pay, Payment, PaymentList, WaitingRoomReply

router = APIRouter(prefix=API_PREFIX, tags=["bookings"])


@router.post(
    "/bookings", status_code=201, response_model=HeldBooking,
    summary="Hold a slot; pay within the hold time to confirm it",
    description="In the morning surge holds pass a waiting room, one queue with the patient portal's: without "
                "an admission the answer is 429 `in_waiting_room` with your ticket and place; send the same "
                "request again with the ticket in `X-Waiting-Room-Ticket` after `Retry-After` seconds (a turn not "
                "taken within a minute, by default, is lost: the request starts again at the back). Admitted, "
                "the hold is made; keep sending the ticket with your holds, the payment and your reads of the "
                "booking. Only the account that took a ticket can use it.",
    responses={
        201: {"headers": {booking_queue.TICKET_HEADER: TICKET_REPLY_HEADER}},
        429: {"model": WaitingRoomReply,
              "description": "In the waiting room (reason `in_waiting_room`, with `waiting_room`); too many "
                             "new waiting-room tickets from your network this minute (reason "
                             "`too_many_tickets_from_address`, no ticket given: ask again after Retry-After); or "
                             "the services are shedding load; Retry-After says how many seconds to wait",
              "headers": {"Retry-After": {"description": "Seconds to wait before asking again",
                                          "schema": {"type": "integer"}},
                          booking_queue.TICKET_HEADER: TICKET_REPLY_HEADER}},
    },
)
async def hold_slot(request: Request, response: Response, body: Hold, key: IdempotencyKey,
                    services: CallerServices, token: CallerToken, ticket: TicketHeader = None):
    admission = await booking_queue.admit(request, response, ticket, token)
    reply = await services.registration.HoldSlot(
        registration_pb2.HoldSlotRequest(slot_id=body.slot_id, idempotency_key=key))
    await booking_queue.held(request, admission, reply.booking)
    return {**to_dict(reply.booking), "payment_ticket": reply.payment_ticket}


# A page of a long list (AIP-158): the next page is asked for with the last one's next_page_token.
PageSize = Annotated[int, Query(ge=0, le=1000, description="At most this many; 0: the service's default (and "
                                                           "more than the most it gives: that most)")]
PageToken = Annotated[str, Query(max_length=512, description="The next_page_token of the page before; empty: "
                                                             "the first page")]


@router.get("/bookings", response_model=BookingList,
            summary="The caller's bookings, the latest visit first, a page at a time (next_page_token)")
async def my_bookings(services: CallerServices, page_size: PageSize = 0, page_token: PageToken = ""):
    return to_dict(await services.registration.ListMyBookings(registration_pb2.ListMyBookingsRequest(
        page_size=page_size, page_token=page_token)))


@router.get("/payments", response_model=PaymentList,
            summary="The caller's payments, the latest first, a page at a time (next_page_token)")
async def my_payments(services: CallerServices, page_size: PageSize = 0, page_token: PageToken = ""):
    return to_dict(await services.billing.ListPayments(billing_pb2.ListPaymentsRequest(
        page_size=page_size, page_token=page_token)))


@router.get("/bookings/{booking_id}", response_model=Booking,
            description="With `X-Waiting-Room-Ticket`: a booking you held or paid for with that ticket, read "
                        "confirmed, frees your place in the waiting room for the next patient (reading another "
                        "booking of yours does not).")
async def booking(request: Request, booking_id: str, services: CallerServices, token: CallerToken,
                  ticket: TicketHeader = None):
    reply = await services.registration.GetBooking(registration_pb2.GetBookingRequest(booking_id=booking_id))
    await booking_queue.booking_read(request, ticket, token, reply.booking)
    return to_dict(reply.booking)


@router.post("/bookings/{booking_id}/payment", status_code=201, response_model=Payment,
             summary="Pay the registration fee of a held booking",
             description="With `X-Waiting-Room-Ticket`: your place in the waiting room is kept 90 s more at most "
                         "(time to book again if the card is declined), then goes to the next patient.")
async def pay(request: Request, booking_id: str, body: Pay, key: IdempotencyKey, services: CallerServices,
              token: CallerToken, ticket: TicketHeader = None):
    reply = await services.billing.PayRegistrationFee(billing_pb2.PayRegistrationFeeRequest(
        booking_id=booking_id, payment_method_token=body.payment_method_token, idempotency_key=key,
        payment_ticket=body.payment_ticket))
    await booking_queue.paid(request, ticket, token, booking_id)
    return to_dict(reply.payment)


@router.get("/bookings/{booking_id}/payments", response_model=PaymentList)
async def payments(booking_id: str, services: CallerServices):
    return to_dict(await services.billing.ListPayments(billing_pb2.ListPaymentsRequest(booking_id=booking_id)))


@router.post("/bookings/{booking_id}/cancel", response_model=Booking,
             description="With `X-Waiting-Room-Ticket`: a confirmed booking cancelled keeps your place in the "
                         "waiting room 90 s more at most (time to book another time), then it goes to the next "
                         "patient; a hold released keeps it (you are choosing another time).")
async def cancel(request: Request, booking_id: str, key: IdempotencyKey, services: CallerServices,
                 token: CallerToken, ticket: TicketHeader = None):
    reply = await services.registration.CancelBooking(
        registration_pb2.CancelBookingRequest(booking_id=booking_id, idempotency_key=key))
    await booking_queue.cancelled(request, ticket, token, reply.booking)
    return to_dict(reply.booking)


@router.get(
    "/bookings/{booking_id}/slip.pdf", response_class=Response,
    responses={200: {"content": {"application/pdf": {}}, "description": "The registration slip"}},
    summary="The registration slip of a confirmed booking, as a PDF",
)
async def registration_slip(booking_id: str, services: CallerServices):
    return slip.pdf_response(*await slip.slip_pdf(services, booking_id))
