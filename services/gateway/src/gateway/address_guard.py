"""A limit per client address, counted in Redis across the gateway's replicas:
what the sign-in guard (failed sign-ins, ``sign_in_guard``) and the send guard
(text-message codes, ``send_guard``) are both built on. Each guard is an
``AddressCount`` of its own: its own limit, window, Redis namespace and metric;
what it counts is its own (``keep``).

The count cannot be outrun by sending many requests at once: before it asks
identity, a request takes a place in its address's count (one Redis script:
one more, or refused when that would pass the limit), and afterwards keeps it
only when ``keep`` says the outcome is one the guard counts; any other end
gives it back, also an error or the request cancelled. So at most ``limit``
counted outcomes reach identity per window, however many requests arrive
together (and, at the limit's edge, a request may be refused while others from
its address are still being answered). Once an address has its ``limit`` in a
window, its requests are refused (429, the guard's reason, Retry-After) until
the window ends.

The address is the client's as uvicorn gives it: the peer, or, behind a
proxy trusted by GATEWAY_TRUSTED_PROXIES, the right-most address of
X-Forwarded-For that is not a trusted proxy; only a public address is
counted, an IPv6 one as its /64 network (one subscriber's, which may use any
of its addresses) and an IPv4-mapped IPv6 one as the IPv4 address (see
``counted_address``). A request whose address is not counted is counted as
``not_counted``: many of them and none counted means the trusted proxies miss
the ingress and the guard is idle. An address is personal data: Redis keeps
only a keyed hash of it, for one window, and it is never logged nor a metric
label. Without Redis (or when it does not answer in time) requests go through
(identity's own per-login and per-phone limits still stand), each counted as
``unavailable``, with one warning at most every 10 s per guard and process.
"""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import redis.asyncio as aioredis
from fastapi import Request
from prometheus_client import Counter

from .errors import ApiError

log = logging.getLogger(__name__)

Reply = TypeVar("Reply")

# A place in the address's count for one request (ARGV: the window's seconds,
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

# A request the guard does not count gives its place back; the window's TTL
# stays, and a window that has expired meanwhile is not brought back. At 0 the
# key goes: an address that is never counted leaves nothing behind.
RELEASE = """
local count = tonumber(redis.call('GET', KEYS[1]) or '0')
if count > 1 then return redis.call('DECR', KEYS[1]) end
if count == 1 then redis.call('DEL', KEYS[1]) end
return 0
"""

# An IPv6 subscriber gets a /64 (at least) and picks any address in it.
IPV6_NETWORK_PREFIX = 64
# At most one "unavailable" warning per this many seconds, per guard and process.
UNAVAILABLE_WARNING_SECONDS = 10.0


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


def address_digest(secret: bytes, address: str) -> str:
    """What Redis keeps of a client address (every count per address: the guards', the waiting room's
    new tickets): a hash keyed with ``secret`` (the session secret every replica shares), so the same
    address gives the same key on every replica, and the key gives no address back."""
    return hmac.new(secret, address.encode(), hashlib.sha256).hexdigest()[:32]


def client_address(request: Request) -> str | None:
    """The request's client as the server resolved it, as ``counted_address`` counts it."""
    return counted_address(request.client.host if request.client else None)


class AddressLimited(ApiError):
    """429: the client's address has had its limit of a guard in this window. ``minutes``
    (rounded up) is what the portal shows; Retry-After the seconds left."""

    def __init__(self, reason: str, what: str, retry_after_seconds: int):
        minutes = math.ceil(retry_after_seconds / 60)
        super().__init__(429, reason, f"{what} from this network: try again in {minutes} "
                                      f"minute{'' if minutes == 1 else 's'}", retry_after=retry_after_seconds)
        self.minutes = minutes


class Unavailable:
    """Counts every request a guard could not check (its metric's ``unavailable``);
    warns at most once per ``interval`` seconds (a burst that makes Redis time
    out would otherwise write a warning per request), saying how many since."""

    def __init__(self, guard: str, counter: Counter, *, interval: float = UNAVAILABLE_WARNING_SECONDS,
                 clock: Callable[[], float] = time.monotonic):
        self.guard = guard
        self.counter = counter
        self.interval = interval
        self._clock = clock
        self._warned_at: float | None = None
        self._since = 0

    def __call__(self, what: str, error: BaseException) -> None:
        self.counter.labels("unavailable").inc()
        self._since += 1
        now = self._clock()
        if self._warned_at is not None and now - self._warned_at < self.interval:
            return
        log.warning("%s unavailable (%s from Redis): %s; %d time(s) since the last such warning",
                    self.guard, type(error).__name__, what, self._since)
        self._warned_at, self._since = now, 0


class AddressCount:
    """One guard's count per address. ``counter`` is its metric (label
    ``outcome``: ``counted_outcome``, refused, unavailable, not_counted, all
    served at 0 from the start); ``refuse`` makes the refusal from the
    window's seconds left; ``unavailable`` warns and counts when Redis does
    not answer; ``secret`` (the session secret every replica shares: the same
    address, the same key) keys the hash of the address."""

    def __init__(self, *, limit: int, window_seconds: int, redis_url: str, namespace: str, secret: str,
                 counter: Counter, counted_outcome: str, refuse: Callable[[int], AddressLimited],
                 unavailable: Unavailable, timeout_seconds: float = 0.5):
        self.limit = limit
        self.window_seconds = window_seconds
        self.namespace = namespace
        self._secret = secret.encode()
        self._counter = counter
        self._counted_outcome = counted_outcome
        self._refuse = refuse
        self._unavailable = unavailable
        self._redis = aioredis.Redis.from_url(redis_url, socket_timeout=timeout_seconds,
                                              socket_connect_timeout=timeout_seconds)
        self._reserve = self._redis.register_script(RESERVE)
        self._release = self._redis.register_script(RELEASE)
        # Places being given back, held until done (a cancelled request does not wait for its own).
        self._releasing: set[asyncio.Task] = set()
        # Served at 0 from the start: a rate of refusals reads 0, not "no data", on a quiet day.
        for outcome in (counted_outcome, "refused", "unavailable", "not_counted"):
            counter.labels(outcome)

    @property
    def enabled(self) -> bool:
        return self.limit > 0

    def _key(self, address: str) -> str:
        return f"{self.namespace}:{address_digest(self._secret, address)}"

    async def attempt(self, address: str | None, call: Callable[[], Awaitable[Reply]],
                      keep: Callable[[BaseException | None], bool]) -> Reply:
        """Runs ``call`` unless the address is refused (the guard's
        ``AddressLimited``), and keeps its place in the address's count when
        ``keep`` says so of how it ended: None when it answered, else what it
        raised (a cancelled call's ``CancelledError`` too).
        ``address`` is as ``client_address`` gives it; None is not counted."""
        if not self.enabled:
            return await call()
        if not address:
            self._counter.labels("not_counted").inc()
            return await call()
        key = self._key(address)
        try:
            taken, ttl = await self._reserve(keys=[key], args=[self.window_seconds, self.limit])
        except (aioredis.RedisError, OSError) as exc:
            self._unavailable("requests go through unchecked", exc)
            return await call()
        if not taken:
            self._counter.labels("refused").inc()
            raise self._refuse(ttl if ttl and ttl > 0 else self.window_seconds)
        kept = False
        try:
            reply = await call()
            kept = keep(None)
            return reply
        except (Exception, asyncio.CancelledError) as exc:
            kept = keep(exc)
            raise
        finally:
            if kept:
                self._counter.labels(self._counted_outcome).inc()
            else:
                await self._give_back(key)

    async def _give_back(self, key: str) -> None:
        # Shielded: a request cancelled (again) while it gives its place back
        # still gives it back.
        task = asyncio.ensure_future(self._release_place(key))
        self._releasing.add(task)
        task.add_done_callback(self._releasing.discard)
        await asyncio.shield(task)

    async def _release_place(self, key: str) -> None:
        try:
            await self._release(keys=[key])
        except (aioredis.RedisError, OSError) as exc:
            self._unavailable("a request's place in its address's count was not given back", exc)

    async def close(self) -> None:
        if self._releasing:
            await asyncio.gather(*self._releasing, return_exceptions=True)
        await self._redis.aclose()
