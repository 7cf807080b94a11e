"""Failed sign-ins counted per client address, across the gateway's replicas.

Identity throttles each login (5 wrong passwords in 5 minutes). That does not
slow password spraying: one guess at each of many phone numbers, from one
address. So the gateway counts the failed sign-ins of each address in Redis
and, once an address has had ``max_failures`` in a window, refuses its
sign-ins (429, ``too_many_attempts_from_address``, Retry-After) until the
window ends. The limit is generous on purpose: a mobile carrier's NAT puts
many patients behind one address, and only failures count, so their
successful sign-ins cost them nothing.

The address is the client's as uvicorn gives it: the peer, or, behind a
proxy trusted by GATEWAY_TRUSTED_PROXIES, the right-most address of
X-Forwarded-For that is not a trusted proxy; only a public address is
counted (see ``client_address``). An address is personal data:
Redis keeps only a keyed hash of it, for one window, and it is never logged
nor a metric label. Without Redis sign-ins go through (identity's per-login
throttle still stands), counted as ``unavailable``.
"""
from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import math
import os
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

# One more failure in the window; the window starts with its first failure.
COUNT_FAILURE = """
local failures = redis.call('INCR', KEYS[1])
if failures == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return failures
"""


OUTCOMES = ("failure_counted", "refused", "unavailable")


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


def client_address(request: Request) -> str | None:
    """The client's public address as the server resolved it; None when it is
    not a public one (loopback, a private network: a hop of the cluster or of
    the hospital's network, behind which the real client is unknown). Counting
    such an address would put every patient behind that hop in one count."""
    try:
        address = ipaddress.ip_address(request.client.host) if request.client else None
    except ValueError:
        return None
    return str(address) if address is not None and address.is_global else None


class AddressRefused(ApiError):
    def __init__(self, retry_after_seconds: int):
        minutes = math.ceil(retry_after_seconds / 60)
        super().__init__(429, "too_many_attempts_from_address",
                         f"too many failed sign-ins from this network: try again in {minutes} "
                         f"minute{'' if minutes == 1 else 's'}", retry_after=retry_after_seconds)
        self.minutes = minutes


class SignInGuard:
    def __init__(self, settings: SignInGuardSettings, secret: str, *, timeout_seconds: float = 0.5):
        self.settings = settings
        # The session secret every replica shares: the same address, the same key.
        self._secret = secret.encode()
        self._redis = aioredis.Redis.from_url(settings.redis_url, socket_timeout=timeout_seconds,
                                              socket_connect_timeout=timeout_seconds)
        self._count = self._redis.register_script(COUNT_FAILURE)
        # Served at 0 from the start: a rate of refusals reads 0, not "no data", on a quiet day.
        for outcome in OUTCOMES:
            metrics.GATEWAY_SIGN_IN_GUARD.labels(outcome)

    @property
    def enabled(self) -> bool:
        return self.settings.max_failures > 0

    def _key(self, address: str) -> str:
        digest = hmac.new(self._secret, address.encode(), hashlib.sha256).hexdigest()[:32]
        return f"{self.settings.namespace}:{digest}"

    async def sign_in(self, address: str | None, attempt: Callable[[], Awaitable[Reply]]) -> Reply:
        """Runs ``attempt`` (the call to identity) unless the address is
        refused (``AddressRefused``), and counts it against the address when
        identity answers wrong login or password."""
        if not self.enabled or not address:
            return await attempt()
        key = self._key(address)
        try:
            failures, ttl = await self._redis.pipeline(transaction=False).get(key).ttl(key).execute()
        except (aioredis.RedisError, OSError):
            log.warning("sign-in guard unavailable: the address is not checked")
            metrics.GATEWAY_SIGN_IN_GUARD.labels("unavailable").inc()
            return await attempt()
        if failures is not None and int(failures) >= self.settings.max_failures:
            metrics.GATEWAY_SIGN_IN_GUARD.labels("refused").inc()
            raise AddressRefused(ttl if ttl and ttl > 0 else self.settings.window_seconds)
        try:
            return await attempt()
        except grpc.aio.AioRpcError as exc:
            if first_value(exc.trailing_metadata(), REASON_KEY) == "bad_credentials":
                await self._count_failure(key)
            raise

    async def _count_failure(self, key: str) -> None:
        try:
            await self._count(keys=[key], args=[self.settings.window_seconds])
            metrics.GATEWAY_SIGN_IN_GUARD.labels("failure_counted").inc()
        except (aioredis.RedisError, OSError):
            log.warning("sign-in guard unavailable: a failed sign-in was not counted")
            metrics.GATEWAY_SIGN_IN_GUARD.labels("unavailable").inc()

    async def close(self) -> None:
        await self._redis.aclose()
