"""Text messages the gateway makes identity send, counted per client address,
across the gateway's replicas: a limit against SMS pumping.

Identity limits the codes each phone number gets (one a minute, 10 a day). That
does not slow one client asking for a code for each of many numbers: every
text costs the hospital money and lands on someone's phone (the fraud pays
off for whoever is paid per message delivered to their numbers). So the
gateway counts the code requests identity accepted from each address and,
once an address has had ``max_sends`` in a window, refuses its requests for
codes (429, ``too_many_codes_from_address``, Retry-After) until the window
ends. A count of its own, apart from the failed sign-ins
(``sign_in_guard``): a patient who asks for a reset code is not a guesser,
nor is a guesser given a code for free.

Before it asks identity, a request takes a place in its address's count, and
keeps it unless identity refused it for a reason that says no text went out:
too soon for this phone, its codes used up today, the platform's texts for
the hour spent, a field that is not valid (``NOTHING_SENT``). Every other end
keeps it: an answer (identity gives the same one whether or not the number
has an account), a send the SMS gateway
failed or timed out on (the text may yet arrive), a call that failed or was
cancelled while identity may have been sending. So at most ``max_sends``
requests that may have made a phone ring reach identity per address and
window, however many arrive together. How the count is kept (Redis, a
keyed hash of the address, which addresses are counted, going on without
Redis) is ``address_guard``'s; metric ``tuoguan_gateway_send_guard_total``, a
kept place counted as ``counted``.

Wrap each call that makes identity send a text in ``send_guard.attempt``
(``request.app.state.send_guard``), as the password-reset routes do.
"""
from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import grpc

from tuoguan_common import metrics
from tuoguan_common.grpc_server import REASON_KEY
from tuoguan_common.config import DEFAULT_REDIS_URL, env_number

from .address_guard import AddressCount, AddressLimited, Reply, Unavailable
from .grpc_trailers import first_value


@dataclass(frozen=True)
class SendGuardSettings:
    # Code requests identity accepted that an address may have in a window; 0 switches the check off.
    max_sends: int = 20
    window_seconds: int = 3600
    redis_url: str = DEFAULT_REDIS_URL
    namespace: str = "tuoguan:sms-codes"

    @classmethod
    def from_env(cls) -> "SendGuardSettings":
        return cls(
            max_sends=env_number("SMS_CODES_PER_ADDRESS", cls.max_sends, minimum=0),
            window_seconds=env_number("SMS_CODES_ADDRESS_WINDOW_SECONDS", cls.window_seconds, minimum=1),
            redis_url=os.environ.get("REDIS_URL") or cls.redis_url,
            namespace=os.environ.get("SEND_GUARD_NAMESPACE") or cls.namespace,
        )


class TooManyCodes(AddressLimited):
    def __init__(self, retry_after_seconds: int):
        super().__init__("too_many_codes_from_address", "too many text-message codes asked for",
                         retry_after_seconds)


# One per process: every send guard (one per app) warns through it.
unavailable = Unavailable("send guard", metrics.GATEWAY_SEND_GUARD)


# Identity's refusals before any text: the only ends that give a place back.
NOTHING_SENT = frozenset({"reset_too_soon", "reset_codes_used_up_today", "sms_hourly_limit_reached"})


def _may_have_sent(error: BaseException | None) -> bool:
    if not isinstance(error, grpc.aio.AioRpcError):
        return True
    if error.code() == grpc.StatusCode.INVALID_ARGUMENT:
        return False
    return first_value(error.trailing_metadata(), REASON_KEY) not in NOTHING_SENT


class SendGuard:
    def __init__(self, settings: SendGuardSettings, secret: str, *, timeout_seconds: float = 0.5):
        self.settings = settings
        self._count = AddressCount(
            limit=settings.max_sends, window_seconds=settings.window_seconds, redis_url=settings.redis_url,
            namespace=settings.namespace, secret=secret, counter=metrics.GATEWAY_SEND_GUARD,
            counted_outcome="counted", refuse=TooManyCodes, unavailable=unavailable,
            timeout_seconds=timeout_seconds)

    @property
    def enabled(self) -> bool:
        return self._count.enabled

    async def attempt(self, address: str | None, send: Callable[[], Awaitable[Reply]]) -> Reply:
        """Runs ``send`` (the call that makes identity text a code) unless the
        address has had its codes for this window (``TooManyCodes``), and counts
        it against the address unless identity refused it before any text. ``address`` is as
        ``client_address`` gives it; None is not counted."""
        return await self._count.attempt(address, send, _may_have_sent)

    async def close(self) -> None:
        await self._count.close()
