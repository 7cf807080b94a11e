"""Payment tickets: registration's signed word on a hold, which the patient
hands to billing with the payment, so billing need not ask registration
about the booking again.

A ticket says: booking B of patient P is held for a fee of F fen until T.
Registration signs it when the hold is made (HMAC-SHA256 under
``TUOGUAN_PAYMENT_TICKET_KEY``, which the chart and the test launcher give
to registration's and billing's apis only; `make up` runs every process in
one environment, as it does with the token key); billing
checks it and, when it holds, takes the booking from it instead of calling
``GetBooking`` (one gRPC call and one read per payment in a surge).

A ticket is a hint, never the only authority: billing asks registration
whenever a ticket is absent, does not verify (another key, tampered with,
not one at all), or speaks of a hold already over. What can change after the
hold (the patient cancels, the office suspends the session) is settled as
before by the saga: a capture for a booking registration no longer holds is
rejected and refunded. A hold's retry answered after such a change gets no
ticket, so billing asks registration then. The amount charged is the
ticket's fee, which only registration can have written.
"""
from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import os
from dataclasses import dataclass

_VERSION = "1"
# Binds the signature to this use of the key.
_PURPOSE = b"tuoguan payment ticket v1\x1f"
_SEPARATOR = "\x1f"
MIN_KEY_BYTES = 32


@dataclass(frozen=True)
class HeldBooking:
    """What a ticket says of a booking."""

    booking_id: str
    patient_id: str
    fee_fen: int
    hold_expires_at: dt.datetime


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class PaymentTickets:
    def __init__(self, key: bytes):
        if len(key) < MIN_KEY_BYTES:
            raise ValueError(f"a payment ticket key needs at least {MIN_KEY_BYTES} bytes")
        self._key = key

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> PaymentTickets | None:
        """The key in ``TUOGUAN_PAYMENT_TICKET_KEY``; None when it is not set
        (registration then issues no tickets and billing asks about every booking)."""
        value = (os.environ if env is None else env).get("TUOGUAN_PAYMENT_TICKET_KEY", "")
        if not value:
            return None
        if len(value.encode()) < MIN_KEY_BYTES:
            raise SystemExit(f"TUOGUAN_PAYMENT_TICKET_KEY must be at least {MIN_KEY_BYTES} bytes "
                             "(e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))')")
        return cls(value.encode())

    def _mac(self, body: bytes) -> bytes:
        return hmac.new(self._key, _PURPOSE + body, hashlib.sha256).digest()

    def issue(self, booking: HeldBooking) -> str:
        expires = int(booking.hold_expires_at.timestamp())
        body = _SEPARATOR.join((booking.booking_id, booking.patient_id, str(booking.fee_fen), str(expires))).encode()
        return f"{_VERSION}.{_b64(body)}.{_b64(self._mac(body))}"

    def read(self, ticket: str) -> HeldBooking | None:
        """What a ticket says, or None when it is not one this key signed."""
        version, _, rest = ticket.partition(".")
        body_text, _, mac_text = rest.partition(".")
        if version != _VERSION or not body_text or not mac_text:
            return None
        try:
            body, mac = _unb64(body_text), _unb64(mac_text)
        except (binascii.Error, ValueError):
            return None
        if not hmac.compare_digest(mac, self._mac(body)):
            return None
        # Signed by us, so well formed.
        booking_id, patient_id, fee, expires = body.decode().split(_SEPARATOR)
        return HeldBooking(booking_id=booking_id, patient_id=patient_id, fee_fen=int(fee),
                           hold_expires_at=dt.datetime.fromtimestamp(int(expires), dt.timezone.utc))
