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

Once identity says the platform's texts for the clock hour are spent
(``sms_hourly_limit_reached``), the gateway repeats that refusal itself, with
the rest of identity's hour as Retry-After, to every code request of every
address, without asking identity (``HourlyTexts``): during a pumping attack
each refused request would otherwise still cost identity a transaction. It
asks identity again at most ``hourly_limit_recheck_seconds`` later (60), so a
limit an operator raises takes effect within a minute, and not at all once
the hour is over. Every number gets the same answer, as from identity. Metric
outcome ``hourly_limit``: a request refused so.

Wrap each call that makes identity send a text in ``send_guard.attempt``
(``request.app.state.send_guard``), as the password-reset routes do.
"""
from __future__ import annotations

import math
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import grpc

from tuoguan_common import metrics
from tuoguan_common.grpc_server import REASON_KEY, RETRY_AFTER_KEY
from tuoguan_common.config import DEFAULT_REDIS_URL, env_number

from .address_guard import AddressCount, AddressLimited, Reply, Unavailable
from .errors import retry_after
from .grpc_trailers import first_value


@dataclass(frozen=True)
class SendGuardSettings:
    # Code requests identity accepted that an address may have in a window; 0 switches the check off.
    max_sends: int = 20
    window_seconds: int = 3600
    redis_url: str = DEFAULT_REDIS_URL
    namespace: str = "tuoguan:sms-codes"
    # How long the gateway repeats identity's hourly-limit refusal before asking it again.
    hourly_limit_recheck_seconds: float = 60.0

    @classmethod
    def from_env(cls) -> "SendGuardSettings":
        return cls(
            max_sends=env_number("SMS_CODES_PER_ADDRESS", cls.max_sends, minimum=0),
            window_seconds=env_number("SMS_CODES_ADDRESS_WINDOW_SECONDS", cls.window_seconds, minimum=1),
            redis_url=os.environ.get("REDIS_URL") or cls.redis_url,
            namespace=os.environ.get("SEND_GUARD_NAMESPACE") or cls.namespace,
            hourly_limit_recheck_seconds=env_number("SMS_HOURLY_LIMIT_RECHECK_SECONDS",
                                                    cls.hourly_limit_recheck_seconds, float, minimum=0),
        )


class TooManyCodes(AddressLimited):
    def __init__(self, retry_after_seconds: int):
        super().__init__("too_many_codes_from_address", "too many text-message codes asked for",
                         retry_after_seconds)


# One per process: every send guard (one per app) warns through it.
unavailable = Unavailable("send guard", metrics.GATEWAY_SEND_GUARD)


HOURLY_LIMIT_REACHED = "sms_hourly_limit_reached"
# Identity's refusals before any text: the only ends that give a place back.
NOTHING_SENT = frozenset({"reset_too_soon", "reset_codes_used_up_today", HOURLY_LIMIT_REACHED})


def _may_have_sent(error: BaseException | None) -> bool:
    if not isinstance(error, grpc.aio.AioRpcError):
        return True
    if error.code() == grpc.StatusCode.INVALID_ARGUMENT:
        return False
    return first_value(error.trailing_metadata(), REASON_KEY) not in NOTHING_SENT


class HourlyTexts:
    """Identity's last refusal for the hour's spent texts, repeated until its hour
    ends or ``recheck_seconds`` have passed, whichever is first."""

    def __init__(self, recheck_seconds: float, clock: Callable[[], float] = time.monotonic):
        self.recheck_seconds = recheck_seconds
        self._clock = clock
        self._refusal: grpc.aio.AioRpcError | None = None
        self._hour_ends_at = self._recheck_at = 0.0

    def learn(self, error: BaseException) -> None:
        if not isinstance(error, grpc.aio.AioRpcError):
            return
        trailing = error.trailing_metadata()
        if first_value(trailing, REASON_KEY) != HOURLY_LIMIT_REACHED:
            return
        rest_of_hour = retry_after(trailing)
        if rest_of_hour is None:
            return
        now = self._clock()
        self._refusal = error
        self._hour_ends_at = now + int(rest_of_hour)
        self._recheck_at = min(self._hour_ends_at, now + self.recheck_seconds)

    def refusal(self) -> grpc.aio.AioRpcError | None:
        """Identity's refusal again, Retry-After the rest of its hour; None: ask identity."""
        now = self._clock()
        if self._refusal is None or now >= self._recheck_at:
            return None
        rest_of_hour = max(1, math.ceil(self._hour_ends_at - now))
        trailing = grpc.aio.Metadata(*((key, value) for key, value in self._refusal.trailing_metadata()
                                       if key != RETRY_AFTER_KEY), (RETRY_AFTER_KEY, str(rest_of_hour)))
        # Not identity's text: it counts the minutes left as they were when identity refused.
        return grpc.aio.AioRpcError(self._refusal.code(), grpc.aio.Metadata(), trailing,
                                    "no more codes can be sent by text message this hour (repeated by the gateway)")


class SendGuard:
    def __init__(self, settings: SendGuardSettings, secret: str, *, timeout_seconds: float = 0.5):
        self.settings = settings
        self._hourly_texts = HourlyTexts(settings.hourly_limit_recheck_seconds)
        metrics.GATEWAY_SEND_GUARD.labels("hourly_limit")
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
        ``client_address`` gives it; None is not counted. While the platform's texts for the hour
        are spent, identity's refusal without asking it."""
        refusal = self._hourly_texts.refusal()
        if refusal is not None:
            metrics.GATEWAY_SEND_GUARD.labels("hourly_limit").inc()
            raise refusal
        try:
            return await self._count.attempt(address, send, _may_have_sent)
        except grpc.aio.AioRpcError as error:
            self._hourly_texts.learn(error)
            raise

    async def close(self) -> None:
        await self._count.close()
