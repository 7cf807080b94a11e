"""The JSON API's holds through the surge's waiting room: the portal's queue
(portal/waiting_room.py), the same Redis keys and capacity, so a script or an
app does not book past the patients queueing in the portal; one queue, first
come first served, whichever way each patient arrived.

The API keeps no session: the client carries its ticket. Without an admission,
``POST /api/v1/bookings`` answers 429 ``in_waiting_room`` with the ticket, the
place and the queue's length, a ``Retry-After`` and the ticket in
``X-Waiting-Room-Ticket``; the client repeats the request with that header and
is admitted (the hold is made) when its turn comes. Every reply of a hold
through the room carries the header, a refusal too (slot_full: the client
tries another slot without queueing again). The portal's rules stand: a turn
not taken within the claim window is lost (a new ticket at the back,
``requeued``); an admission lasts the pass; it is cut to PAID_PLACE_SECONDS
when the client pays with the header, and ends when it reads confirmed, with
it, a booking it held or paid for through the room (the room notes their ids:
a read of another of the account's bookings frees nothing), or at once for a
free clinic's hold, confirmed as it is made. A confirmed booking cancelled with
the header cuts it to PAID_PLACE_SECONDS as a payment does (time to book another
time); a hold released keeps it (the client is choosing another time).
A ticket is the account's (the token's subject): another account's token
presenting it gets a ticket of its own at the back. New tickets are counted per
client address, as the portal's (WaitingRoom, ``new_tickets_per_address``):
past the limit the hold is refused 429 ``too_many_tickets_from_address``, with
no ticket and the window's seconds left as Retry-After. Without Redis the hold
goes through, as the portal's pages do: the services still shed what they
cannot take.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Header, Request, Response

from tuoguan.registration.v1 import registration_pb2 as reg
from tuoguan_common import metrics

from .address_guard import AddressLimited, client_address
from .deps import token_subject
from .errors import ApiError, keep_header
from .portal.waiting_room import PAID_PLACE_SECONDS, WaitingRoom, account_owner

TICKET_HEADER = "X-Waiting-Room-Ticket"
# Tickets count up from 1, and the queue's Lua reads them as doubles (exact to 2^53): 15 digits are plenty.
TICKET_PATTERN = r"^[1-9][0-9]{0,14}$"
TicketHeader = Annotated[str | None, Header(
    alias=TICKET_HEADER, pattern=TICKET_PATTERN,
    description="Your waiting-room ticket, as the last hold's reply (its 429 `in_waiting_room` or its 201) "
                "gave it in this header. Only the account that took a ticket can use it.",
)]
# Served at 0 from the start, like the portal's checks' outcomes once a patient comes.
for _outcome in ("admitted", "queued", "address_limited", "room_unavailable"):
    metrics.API_WAITING_ROOM.labels(_outcome)
# What the OpenAPI says of the header in replies.
TICKET_REPLY_HEADER = {"description": "Your waiting-room ticket (while the waiting room is on): send it back "
                                      "with your next hold, your payment and your reads of the booking",
                       "schema": {"type": "integer"}}


class TooManyTickets(AddressLimited):
    """429: the client's address took its limit of new tickets this minute: junk tickets (a script's
    page loads or forged tokens) would otherwise push the patients queueing behind them back."""

    def __init__(self, retry_after_seconds: int):
        super().__init__("too_many_tickets_from_address", "too many new waiting-room tickets", retry_after_seconds)


def retry_after(room: WaitingRoom) -> int:
    """How long a queued client waits before asking again: a quarter of the claim window, at most the
    10 s after which the portal's queue page reloads, so a client that waits as told takes its turn in time."""
    return max(1, min(10, room.claim_seconds // 4))


@dataclass(frozen=True)
class Admission:
    ticket: int  # 0: none (the room is off, or the request names no account)
    owner: str


def _room(request: Request) -> WaitingRoom:
    return request.app.state.portal.waiting_room


async def admit(request: Request, response: Response, ticket: str | None, token: str | None) -> Admission:
    """Lets a hold through, or raises the 429 that queues it."""
    room = _room(request)
    subject = token_subject(token)
    if not room.enabled or not subject:
        # No room; or nobody to queue: registration refuses a hold without a valid token anyway.
        return Admission(0, "")
    owner, address = account_owner(subject), client_address(request)
    standing = await room.check(int(ticket) if ticket else None, owner, surface="api", address=address)
    requeued = standing.outcome == "missed_turn"
    if requeued:
        # As in the portal: the turn (or the pass) ran out while the client was away. A new ticket at
        # the back, which may be let in at once.
        standing = await room.check(None, owner, surface="api", address=address)
    metrics.API_WAITING_ROOM.labels(standing.outcome).inc()
    if standing.outcome == "address_limited":
        raise TooManyTickets(standing.retry_after)
    if standing.ticket:
        keep_header(request, TICKET_HEADER, str(standing.ticket))
        response.headers[TICKET_HEADER] = str(standing.ticket)
    if not standing.admitted:
        raise ApiError(
            429, "in_waiting_room",
            f"many patients are booking now and you are in the queue: send the request again with header "
            f"{TICKET_HEADER}: {standing.ticket} after Retry-After seconds",
            retry_after=retry_after(room),
            extra={"waiting_room": {"ticket": standing.ticket, "position": standing.position,
                                    "waiting": standing.waiting, "requeued": requeued}})
    return Admission(standing.ticket, owner)


# The calls below come after a service accepted the caller's token: the subject read from it is the
# caller's own, so nobody frees or shortens another's place with a token of their making.

async def held(request: Request, admission: Admission, booking: reg.Booking) -> None:
    """The hold is made: its booking is noted with the admission, whose place its confirmation frees
    (``booking_read``). A free clinic's hold is confirmed as it is made: nothing to pay, the next
    patient may come in at once."""
    if booking.status == reg.BOOKING_STATUS_CONFIRMED:
        await _room(request).leave(admission.ticket, admission.owner)
    else:
        await _room(request).booked(admission.ticket, admission.owner, booking.booking_id)


async def booking_read(request: Request, ticket: str | None, token: str | None, booking: reg.Booking) -> None:
    """The caller read confirmed a booking its ticket held or paid for: done with booking, its place goes
    to the next in the queue (the portal: the booking page showing the booking its session paid for
    confirmed). Another confirmed booking of the account's (an earlier visit's) frees nothing: the
    patient may be booking still."""
    subject = token_subject(token)
    if ticket and subject and booking.patient_id == subject and booking.status == reg.BOOKING_STATUS_CONFIRMED:
        await _room(request).leave(int(ticket), account_owner(subject), booking_id=booking.booking_id)


async def paid(request: Request, ticket: str | None, token: str | None, booking_id: str) -> None:
    """Billing took the payment: the place is kept PAID_PLACE_SECONDS more at most, for a declined card's
    patient to book again without queueing, not the whole pass for one who paid and went; and the booking
    paid for is noted with the admission (one held before it, or in the portal, too), so that its
    confirmation read frees the place."""
    subject = token_subject(token)
    if ticket and subject:
        room, owner = _room(request), account_owner(subject)
        await room.booked(int(ticket), owner, booking_id)
        await room.shorten(int(ticket), PAID_PLACE_SECONDS, owner)


async def cancelled(request: Request, ticket: str | None, token: str | None, booking: reg.Booking) -> None:
    """The caller cancelled its booking with its ticket: the portal's rule (WaitingRoom.cancelled)."""
    subject = token_subject(token)
    if ticket and subject and booking.patient_id == subject:
        await _room(request).cancelled(int(ticket), account_owner(subject), booking)
