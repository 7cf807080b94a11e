"""Failed sign-ins counted per client address, across the gateway's replicas.

Identity throttles each login (5 wrong passwords in 5 minutes). That does not
slow password spraying: one guess at each of many phone numbers, from one
address. So the gateway counts the failed sign-ins of each address in Redis
and, once an address has had ``max_failures`` in a window, refuses its
sign-ins (429, ``too_many_attempts_from_address``, Retry-After) until the
window ends. The limit is generous on purpose: a mobile carrier's NAT puts
many patients behind one address, and only failures count, so their
successful sign-ins cost them nothing. Sign-ups and password resets go
through the same count: a sign-up told the phone is taken, a reset told its
code is wrong, is a guess as a wrong password is (``*_MISSES``), and one
address's guesses at reset codes across many phones would otherwise go
unslowed, as would its search for which numbers have accounts.

The count cannot be outrun by sending many guesses at once: before it asks
identity, a sign-in takes a place in its address's count (one Redis script:
one more, or refused when that would pass the limit), and afterwards keeps it
only when identity answered wrong login or password; any other end (signed
in, another refusal, an error, the request cancelled) gives it back. So at
most ``max_failures`` wrong guesses reach identity per window, however many
arrive together (and, at the limit's edge, a sign-in may be refused while
others from its address are still being answered).

The address is the client's as uvicorn gives it: the peer, or, behind a
proxy trusted by GATEWAY_TRUSTED_PROXIES, the right-most address of
X-Forwarded-For that is not a trusted proxy; only a public address is
counted, an IPv6 one as its /64 network (one subscriber's, which may use any
of its addresses) and an IPv4-mapped IPv6 one as the IPv4 address (see
``counted_address``). A sign-in whose address is not counted is counted as
``not_counted``: many of them and no ``failure_counted`` means the trusted
proxies miss the ingress and the guard is idle. An address is personal data:
Redis keeps only a keyed hash of it, for one window, and it is never logged
nor a metric label. Without Redis (or when it does not answer in time)
sign-ins go through (identity's per-login throttle still stands), each
counted as ``unavailable``, with one warning at most every 10 s per process.
"""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import logging
import math
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import grpc
import redis.asyncio as aioredis
from fastapi import Request

from tuoguan_common import metrics
from tuoguan_common.config import DEFAULT_REDIS_URL, env_number
from tuoguan_common.grpc_server import REASON_KEY

from .errors import ApiError
from .grpc_trailers import first_value

log = logging.getLogger(__name__)

Reply = TypeVar("Reply")

# A place in the address's count for one sign-in (ARGV: the window's seconds,
# the limit): {1, 0} taken, the window starting with the first; {0, ttl}
# refused, the count as it was and its window's seconds left.
RESERVE = """
local count = redis.call('INCR', KEYS[1])
if count == 1 or redis.call('TTL', KEYS[1]) < 0 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
if count > tonumber(ARGV[2]) then
  redis.call('DECR', KEYS[1])
  return {0, redis.call('TTL', KEYS[1])}
end
return {1, 0}
"""

# A sign-in that was no failure gives its place back; the window's TTL stays,
# and a window that has expired meanwhile is not brought back. At 0 the key
# goes: an address that only signs in leaves nothing behind.
RELEASE = """
local count = tonumber(redis.call('GET', KEYS[1]) or '0')
if count > 1 then return redis.call('DECR', KEYS[1]) end
if count == 1 then redis.call('DEL', KEYS[1]) end
return 0
"""

OUTCOMES = ("failure_counted", "refused", "unavailable", "not_counted")

# The refusals an address is counted for: each is a guess that missed. A wrong
# password; a phone number already taken (a sign-up that learns which numbers
# have accounts, the targets for the rest); a wrong or expired reset code (a
# guess at a code someone asked for). One count for all: a guesser does not
# get a second allowance by switching from one to another.
SIGN_IN_MISSES = frozenset({"bad_credentials"})
SIGN_UP_MISSES = frozenset({"phone_taken"})
RESET_MISSES = frozenset({"reset_code_invalid", "reset_code_expired"})

# An IPv6 subscriber gets a /64 (at least) and picks any address in it.
IPV6_NETWORK_PREFIX = 64
# At most one "unavailable" warning per this many seconds, per process.
UNAVAILABLE_WARNING_SECONDS = 10.0


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


def counted_address(host: str | None) -> str | None:
    """What a client address is counted as: a public IPv4 address as itself
    (also when it comes IPv4-mapped, ``::ffff:a.b.c.d``), a public IPv6
    address as its /64 network (``2408:8000:1:2::/64``); None when it is not a
    public one (loopback, a private network: a hop of the cluster or of the
    hospital's network, behind which the real client is unknown). Counting
    such an address would put every patient behind that hop in one count."""
    try:
        address = ipaddress.ip_address(host) if host else None
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address is None or not address.is_global:
        return None
    if isinstance(address, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((address, IPV6_NETWORK_PREFIX), strict=False))
    return str(address)


def client_address(request: Request) -> str | None:
    """The request's client as the server resolved it, as ``counted_address`` counts it."""
    return counted_address(request.client.host if request.client else None)


class AddressRefused(ApiError):
    def __init__(self, retry_after_seconds: int):
        minutes = math.ceil(retry_after_seconds / 60)
        super().__init__(429, "too_many_attempts_from_address",
                         f"too many failed attempts (sign-in, sign-up or password reset) from this network: "
                         f"try again in {minutes} "
                         f"minute{'' if minutes == 1 else 's'}", retry_after=retry_after_seconds)
        self.minutes = minutes


class _Unavailable:
    """Counts every sign-in the guard could not check; warns at most once per
    ``interval`` seconds in the process (a burst that makes Redis time out
    would otherwise write a warning per sign-in), saying how many since."""

    def __init__(self, interval: float = UNAVAILABLE_WARNING_SECONDS, clock: Callable[[], float] = time.monotonic):
        self.interval = interval
        self._clock = clock
        self._warned_at: float | None = None
        self._since = 0

    def __call__(self, what: str, error: BaseException) -> None:
        metrics.GATEWAY_SIGN_IN_GUARD.labels("unavailable").inc()
        self._since += 1
        now = self._clock()
        if self._warned_at is not None and now - self._warned_at < self.interval:
            return
        log.warning("sign-in guard unavailable (%s from Redis): %s; %d time(s) since the last such warning",
                    type(error).__name__, what, self._since)
        self._warned_at, self._since = now, 0


# One per process: every guard (one per app) warns through it.
unavailable = _Unavailable()


class SignInGuard:
    def __init__(self, settings: SignInGuardSettings, secret: str, *, timeout_seconds: float = 0.5):
        self.settings = settings
        # The session secret every replica shares: the same address, the same key.
        self._secret = secret.encode()
        self._redis = aioredis.Redis.from_url(settings.redis_url, socket_timeout=timeout_seconds,
                                              socket_connect_timeout=timeout_seconds)
        self._reserve = self._redis.register_script(RESERVE)
        self._release = self._redis.register_script(RELEASE)
        # Places being given back, held until done (a cancelled sign-in does not wait for its own).
        self._releasing: set[asyncio.Task] = set()
        # Served at 0 from the start: a rate of refusals reads 0, not "no data", on a quiet day.
        for outcome in OUTCOMES:
            metrics.GATEWAY_SIGN_IN_GUARD.labels(outcome)

    @property
    def enabled(self) -> bool:
        return self.settings.max_failures > 0

    def _key(self, address: str) -> str:
        digest = hmac.new(self._secret, address.encode(), hashlib.sha256).hexdigest()[:32]
        return f"{self.settings.namespace}:{digest}"

    async def attempt(self, address: str | None, attempt: Callable[[], Awaitable[Reply]], *,
                      misses: frozenset[str] = SIGN_IN_MISSES) -> Reply:
        """Runs ``attempt`` (the call to identity) unless the address is
        refused (``AddressRefused``), and counts it against the address when
        identity refuses it for one of ``misses`` (the reasons). ``address``
        is as ``client_address`` gives it; None is not counted."""
        if not self.enabled:
            return await attempt()
        if not address:
            metrics.GATEWAY_SIGN_IN_GUARD.labels("not_counted").inc()
            return await attempt()
        key = self._key(address)
        try:
            taken, ttl = await self._reserve(keys=[key], args=[self.settings.window_seconds,
                                                               self.settings.max_failures])
        except (aioredis.RedisError, OSError) as exc:
            unavailable("sign-ins go through unchecked", exc)
            return await attempt()
        if not taken:
            metrics.GATEWAY_SIGN_IN_GUARD.labels("refused").inc()
            raise AddressRefused(ttl if ttl and ttl > 0 else self.settings.window_seconds)
        failed = False
        try:
            return await attempt()
        except grpc.aio.AioRpcError as exc:
            failed = first_value(exc.trailing_metadata(), REASON_KEY) in misses
            raise
        finally:
            if failed:
                metrics.GATEWAY_SIGN_IN_GUARD.labels("failure_counted").inc()
            else:
                await self._give_back(key)

    async def _give_back(self, key: str) -> None:
        # Shielded: a sign-in cancelled (again) while it gives its place back
        # still gives it back.
        task = asyncio.ensure_future(self._release_place(key))
        self._releasing.add(task)
        task.add_done_callback(self._releasing.discard)
        await asyncio.shield(task)

    async def _release_place(self, key: str) -> None:
        try:
            await self._release(keys=[key])
        except (aioredis.RedisError, OSError) as exc:
            unavailable("a sign-in's place in its address's count was not given back", exc)

    async def close(self) -> None:
        if self._releasing:
            await asyncio.gather(*self._releasing, return_exceptions=True)
        await self._redis.aclose()
