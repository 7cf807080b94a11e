"""The one question billing asks registration synchronously: which booking
is this, whose, in what status and for what fee.

Built once at start-up and handed to the api's checkout, so tests can point
it at a registration-like gRPC server.
"""
from __future__ import annotations

import asyncio
import datetime as dt
from typing import Protocol

from grpc import aio

from tuoguan.registration.v1 import registration_pb2, registration_pb2_grpc
from tuoguan_common import auth, grpc_client

from .domain.payments import Booking


def _instant(text: str) -> dt.datetime | None:
    """An RFC 3339 time of registration's; None when absent or unreadable
    (billing then does not know when the hold ends)."""
    try:
        instant = dt.datetime.fromisoformat(text) if text else None
    except ValueError:
        return None
    if instant is not None and instant.tzinfo is None:
        instant = instant.replace(tzinfo=dt.timezone.utc)
    return instant


class BookingSource(Protocol):
    async def get_booking_async(self, booking_id: str, bearer: str | None) -> Booking: ...


def _booking(booking: registration_pb2.Booking, asked_for: str) -> Booking:
    return Booking(
        booking_id=booking.booking_id or asked_for,
        patient_id=booking.patient_id,
        status=registration_pb2.BookingStatus.Name(booking.status).removeprefix("BOOKING_STATUS_"),
        fee_fen=booking.fee_fen,
        hold_expires_at=_instant(booking.hold_expires_at),
    )


class RegistrationClient:
    """registration.v1.RegistrationService over gRPC, as the caller, from
    the api's event loop (its channel is made there, on first use)."""

    def __init__(self, target: str, *, timeout: float = 3.0):
        self.target = target
        self.timeout = timeout
        self._channel: aio.Channel | None = None
        self._stub: registration_pb2_grpc.RegistrationServiceStub | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def get_booking_async(self, booking_id: str, bearer: str | None) -> Booking:
        if self._stub is None:
            self._loop = asyncio.get_running_loop()
            self._channel = grpc_client.aio_channel(self.target)
            self._stub = registration_pb2_grpc.RegistrationServiceStub(self._channel)
        # The caller's own token goes along: registration then applies its
        # ownership rule to the patient, not to billing.
        metadata = auth.bearer_metadata(bearer) if bearer else ()
        reply = await self._stub.GetBooking(registration_pb2.GetBookingRequest(booking_id=booking_id),
                                            metadata=metadata, timeout=self.timeout)
        return _booking(reply.booking, booking_id)

    def close(self) -> None:
        """Closes the channel on its loop while that loop runs; a loop that is
        stopping is given a second, then the channel goes with the process."""
        channel, loop = self._channel, self._loop
        self._channel = self._stub = self._loop = None
        if channel is not None and loop is not None and loop.is_running():
            closing = asyncio.run_coroutine_threadsafe(channel.close(), loop)
            try:
                closing.result(timeout=1)
            except TimeoutError:
                closing.cancel()
