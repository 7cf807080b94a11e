"""The one question billing asks registration synchronously: which booking
is this, whose, in what status and for what fee.

Built once at start-up and handed to the cashier, so tests can point it at a
registration-like gRPC server (or give the cashier a fake in pure-logic tests).
"""
from __future__ import annotations

import datetime as dt
from typing import Protocol

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
    def get_booking(self, booking_id: str, bearer: str | None) -> Booking: ...


class RegistrationClient:
    """registration.v1.RegistrationService over gRPC, as the caller."""

    def __init__(self, target: str, *, timeout: float = 3.0):
        self._channel = grpc_client.channel(target)
        self._stub = registration_pb2_grpc.RegistrationServiceStub(self._channel)
        self.timeout = timeout

    def get_booking(self, booking_id: str, bearer: str | None) -> Booking:
        # The caller's own token goes along: registration then applies its
        # ownership rule to the patient, not to billing. Its errors (not
        # found, not yours, unavailable) reach the patient as they are.
        metadata = auth.bearer_metadata(bearer) if bearer else ()
        reply = self._stub.GetBooking(registration_pb2.GetBookingRequest(booking_id=booking_id),
                                      metadata=metadata, timeout=self.timeout)
        booking = reply.booking
        return Booking(
            booking_id=booking.booking_id or booking_id,
            patient_id=booking.patient_id,
            status=registration_pb2.BookingStatus.Name(booking.status).removeprefix("BOOKING_STATUS_"),
            fee_fen=booking.fee_fen,
            hold_expires_at=_instant(booking.hold_expires_at),
        )

    def close(self) -> None:
        self._channel.close()
