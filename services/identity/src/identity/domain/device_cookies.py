"""Device cookies: strangers' wrong passwords do not lock a login's owner out.

The sign-in throttle locks a login for everyone after a few wrong passwords
in its window. Anyone who knows a login (a phone number, a staff id) could
keep it locked for good with one guess a minute; staff have no password
reset to get back in. So a device that has signed in to a login (or reset
its password, which proves it holds the phone) gets a cookie bound to that
account, and its sign-ins are throttled on their own count: guesses sent
without the cookie lock out only the login's other strangers. A device
guessing with a stolen cookie is throttled as one stranger is, and only
until the password changes (a reset), which voids every cookie issued
before. A grade change does not: staff have no reset to get back in.

The cookie is ``v1.<payload>.<mac>``: a random device id and an expiry,
authenticated with HMAC-SHA256 under a key of its own (derived from
identity's secret), over the account and its password hash. It holds
nothing personal and signs nobody in by itself. Pure: no I/O, time and
randomness are parameters.
"""
from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import secrets
import struct

VERSION = "v1"
LIFETIME = dt.timedelta(days=180)
DEVICE_ID_BYTES = 16
MAC_BYTES = 16
# Every cookie issued is 58 characters; anything much longer is not one, and is not decoded.
MAX_LENGTH = 128
# A sign-in's login never holds a line break (accounts.sign_in_login), so the two throttle counts never meet.
_SEPARATOR = "\n"
_PAYLOAD = struct.Struct(f">{DEVICE_ID_BYTES}sQ")
_CONTEXT = b"tuoguan-identity-device-cookie\x00"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def derive_key(secret: bytes) -> bytes:
    """The cookies' own key: the secret also keys the reset codes' digests."""
    return hmac.new(secret, _CONTEXT, hashlib.sha256).digest()


def _mac(key: bytes, account_id: str, password_hash: str, payload: bytes) -> bytes:
    message = _CONTEXT + f"{account_id}\x00{password_hash}\x00".encode() + payload
    return hmac.new(key, message, hashlib.sha256).digest()[:MAC_BYTES]


def new_device_id(random_bytes=secrets.token_bytes) -> str:
    return random_bytes(DEVICE_ID_BYTES).hex()


def issue(key: bytes, account_id: str, password_hash: str, device_id: str, now: dt.datetime) -> str:
    """The cookie for ``device_id``'s sign-ins to the account while its
    password is the one hashed, until LIFETIME from now."""
    expires = int((now + LIFETIME).timestamp())
    payload = _PAYLOAD.pack(bytes.fromhex(device_id), expires)
    return f"{VERSION}.{_b64(payload)}.{_b64(_mac(key, account_id, password_hash, payload))}"


def device_of(key: bytes, account_id: str | None, password_hash: str, cookie: str,
              now: dt.datetime) -> str | None:
    """The device id a cookie names when it is this account's, issued under
    its current password, and not expired; None for anything else (no
    account, no cookie, a forged, altered, expired or another account's one)."""
    if account_id is None or not cookie or len(cookie) > MAX_LENGTH or not cookie.isascii():
        return None
    version, _, rest = cookie.partition(".")
    encoded_payload, _, encoded_mac = rest.partition(".")
    if version != VERSION:
        return None
    try:
        payload, mac = _unb64(encoded_payload), _unb64(encoded_mac)
    except (binascii.Error, ValueError):
        return None
    if len(payload) != _PAYLOAD.size or not hmac.compare_digest(mac, _mac(key, account_id, password_hash, payload)):
        return None
    device, expires = _PAYLOAD.unpack(payload)
    if now.timestamp() >= expires:
        return None
    return device.hex()


def throttle_login(login: str, device_id: str | None) -> str:
    """What the sign-in throttle counts failures under: the login for strangers,
    the login and the device for a device it knows."""
    return login if device_id is None else f"{login}{_SEPARATOR}{device_id}"
