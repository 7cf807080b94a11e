"""Failed sign-ins counted per client address, across the gateway's replicas.

Identity throttles each login (5 wrong passwords in 5 minutes). That does not
slow password spraying: one guess at each of many phone numbers, from one
address. So the gateway counts the failed sign-ins of each address in Redis
and, once an address has had ``max_failures`` in a window, refuses its
sign-ins (429, ``too_many_attempts_from_address``, Retry-After) until the
window ends. The limit is generous on purpose: a mobile carrier's NAT puts
many patients behind one address, and only failures count, so their
successful sign-ins cost them nothing. Sign-ups and password resets go
through the same count: a sign-up or a reset told its code is wrong is a
guess as a wrong password is (``*_MISSES``), and one address's guesses at
codes across many phones would otherwise go unslowed.

The count cannot be outrun by sending many guesses at once: before it asks
identity, a sign-in takes a place in its address's count, and afterwards
keeps it only when identity answered wrong login or password; any other end
(signed in, another refusal, an error, the request cancelled) gives it back.
So at most ``max_failures`` wrong guesses reach identity per window, however
many arrive together. How the count is kept (in Redis, a keyed hash of the
address; which addresses are counted; going on without Redis) is
``address_guard``'s, which the send guard (``send_guard``) shares; metric
``tuoguan_gateway_sign_in_guard_total``, a kept place counted as
``failure_counted``.
"""
from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import grpc

from tuoguan_common import metrics
from tuoguan_common.config import DEFAULT_REDIS_URL, env_number
from tuoguan_common.grpc_server import REASON_KEY

from .address_guard import AddressCount, AddressLimited, Reply, Unavailable, client_address, counted_address
from .grpc_trailers import first_value

__all__ = ["AddressRefused", "RESET_MISSES", "SIGN_IN_MISSES", "SIGN_UP_MISSES", "SignInGuard",
           "SignInGuardSettings", "client_address", "counted_address"]

# The refusals an address is counted for: each is a guess that missed. A wrong
# password; a wrong or expired sign-up or reset code (a guess at a code
# someone asked for). One count for all: a guesser does not get a second
# allowance by switching from one to another. (A phone number already taken
# is told only to whoever brought its code: no guess.)
SIGN_IN_MISSES = frozenset({"bad_credentials"})
SIGN_UP_MISSES = frozenset({"sign_up_code_invalid", "sign_up_code_expired"})
RESET_MISSES = frozenset({"reset_code_invalid", "reset_code_expired"})


@dataclass(frozen=True)
class SignInGuardSettings:
    # Failed sign-ins an address may have in a window; 0 switches the check off.
    max_failures: int = 200
    window_seconds: int = 600
    redis_url: str = DEFAULT_REDIS_URL
    namespace: str = "tuoguan:sign-in-failures"

    @classmethod
    def from_env(cls) -> "SignInGuardSettings":
        return cls(
            max_failures=env_number("SIGN_IN_FAILURES_PER_ADDRESS", cls.max_failures, minimum=0),
            window_seconds=env_number("SIGN_IN_ADDRESS_WINDOW_SECONDS", cls.window_seconds, minimum=1),
            redis_url=os.environ.get("REDIS_URL") or cls.redis_url,
            namespace=os.environ.get("SIGN_IN_GUARD_NAMESPACE") or cls.namespace,
        )


class AddressRefused(AddressLimited):
    def __init__(self, retry_after_seconds: int):
        super().__init__("too_many_attempts_from_address",
                         "too many failed attempts (sign-in, sign-up or password reset)", retry_after_seconds)


# One per process: every sign-in guard (one per app) warns through it.
unavailable = Unavailable("sign-in guard", metrics.GATEWAY_SIGN_IN_GUARD)


class SignInGuard:
    def __init__(self, settings: SignInGuardSettings, secret: str, *, timeout_seconds: float = 0.5):
        self.settings = settings
        self._count = AddressCount(
            limit=settings.max_failures, window_seconds=settings.window_seconds, redis_url=settings.redis_url,
            namespace=settings.namespace, secret=secret, counter=metrics.GATEWAY_SIGN_IN_GUARD,
            counted_outcome="failure_counted", refuse=AddressRefused, unavailable=unavailable,
            timeout_seconds=timeout_seconds)

    @property
    def enabled(self) -> bool:
        return self._count.enabled

    async def attempt(self, address: str | None, attempt: Callable[[], Awaitable[Reply]], *,
                      misses: frozenset[str] = SIGN_IN_MISSES) -> Reply:
        """Runs ``attempt`` (the call to identity) unless the address is
        refused (``AddressRefused``), and counts it against the address when
        identity refuses it for one of ``misses`` (the reasons). ``address``
        is as ``client_address`` gives it; None is not counted."""
        def missed(error: BaseException | None) -> bool:
            return isinstance(error, grpc.aio.AioRpcError) and \
                first_value(error.trailing_metadata(), REASON_KEY) in misses

        return await self._count.attempt(address, attempt, missed)

    async def close(self) -> None:
        await self._count.close()
