"""The surge's waiting room: when more patients reach the booking pages than the
platform admits at once, they queue in arrival order and see their place.

State lives in Redis, so every gateway replica serves the same queue: a ticket
counter (``tail``), the last ticket let in (``head``), and a sorted set of the
admissions in use, scored by when each runs out. One Lua script does a whole
check atomically: it drops spent admissions, lets the next tickets in while
there is room, and answers where the asking ticket stands. A ticket whose turn
comes has ``claim_seconds`` to take it (an abandoned tab must not hold a place
for long); taken, it lasts ``pass_seconds`` or until the patient's booking is
done. A queue nobody has checked for ``IDLE_SECONDS`` expires as a whole:
its keys do not outlive a surge (or a test platform) by more than that.
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

import redis.asyncio as aioredis

from tuoguan_common import metrics

log = logging.getLogger(__name__)

# Far longer than any pass or claim: only a queue nobody uses any more expires.
IDLE_SECONDS = 24 * 3600

CHECK = """
local tail_key, head_key, active_key, taken_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local now, capacity = tonumber(ARGV[1]), tonumber(ARGV[2])
local claim_seconds, pass_seconds = tonumber(ARGV[3]), tonumber(ARGV[4])
local ticket = tonumber(ARGV[5])

local spent = redis.call('ZRANGEBYSCORE', active_key, '-inf', now)
for _, t in ipairs(spent) do
  redis.call('ZREM', active_key, t)
  redis.call('SREM', taken_key, t)
end

local tail = tonumber(redis.call('GET', tail_key) or '0')
if ticket <= 0 or ticket > tail then
  -- A new patient, or a ticket from before the queue was reset: the back of the queue.
  ticket = redis.call('INCR', tail_key)
  tail = ticket
end
local head = tonumber(redis.call('GET', head_key) or '0')
local room = capacity - redis.call('ZCARD', active_key)
while room > 0 and head < tail do
  head = head + 1
  redis.call('ZADD', active_key, now + claim_seconds, head)
  room = room - 1
end
redis.call('SET', head_key, head)

local standing
if ticket > head then
  standing = {ticket, ticket - head, 'queued', tail - head}
elseif not redis.call('ZSCORE', active_key, ticket) then
  standing = {ticket, 0, 'missed_turn', tail - head}
else
  if redis.call('SADD', taken_key, ticket) == 1 then
    redis.call('ZADD', active_key, now + pass_seconds, ticket)
  end
  standing = {ticket, 0, 'admitted', tail - head}
end
for _, key in ipairs(KEYS) do
  redis.call('EXPIRE', key, ARGV[6])
end
return standing
"""


@dataclass(frozen=True)
class Standing:
    ticket: int
    position: int  # 0 when admitted
    outcome: str  # admitted, queued, missed_turn, room_unavailable
    waiting: int

    @property
    def admitted(self) -> bool:
        return self.outcome in ("admitted", "room_unavailable")


class WaitingRoom:
    """The queue; ``check`` for a page of the booking flow, ``leave`` when a patient is done."""

    def __init__(self, redis_url: str, *, capacity: int, claim_seconds: int, pass_seconds: int,
                 namespace: str = "tuoguan:waiting-room", timeout_seconds: float = 0.5):
        self.capacity = capacity
        self.claim_seconds = claim_seconds
        self.pass_seconds = pass_seconds
        # Short: a Redis that does not answer lets patients through (fail open)
        # rather than keep every booking page waiting on it.
        self._redis = aioredis.Redis.from_url(redis_url, socket_timeout=timeout_seconds,
                                              socket_connect_timeout=timeout_seconds)
        self._keys = [f"{namespace}:{k}" for k in ("tail", "head", "active", "taken")]
        self._check = self._redis.register_script(CHECK)

    @property
    def enabled(self) -> bool:
        return self.capacity > 0

    async def check(self, ticket: int | None) -> Standing:
        if not self.enabled:
            return Standing(ticket or 0, 0, "admitted", 0)
        try:
            raw = await self._check(keys=self._keys, args=[
                time.time(), self.capacity, self.claim_seconds, self.pass_seconds, ticket or 0, IDLE_SECONDS])
        except (aioredis.RedisError, OSError):
            # Without Redis the queue cannot be fair; letting patients through keeps
            # the platform usable, and the services still shed what they cannot take.
            log.warning("waiting room unavailable: letting the patient through")
            metrics.PORTAL_WAITING_ROOM.labels("room_unavailable").inc()
            # The queue's length is unknown now: the last figure read would stand
            # for the whole outage (and keep TuoguanWaitingRoomQueueLong firing
            # through the max over replicas); the checked timestamp stays put.
            metrics.PORTAL_WAITING_ROOM_QUEUE.set(math.nan)
            return Standing(ticket or 0, 0, "room_unavailable", 0)
        standing = Standing(int(raw[0]), int(raw[1]), raw[2].decode(), int(raw[3]))
        metrics.PORTAL_WAITING_ROOM.labels(standing.outcome).inc()
        metrics.PORTAL_WAITING_ROOM_QUEUE.set(standing.waiting)
        metrics.PORTAL_WAITING_ROOM_CHECKED.set_to_current_time()
        return standing

    async def leave(self, ticket: int | None) -> None:
        """Frees the patient's place for the next in the queue."""
        if not self.enabled or not ticket:
            return
        try:
            await self._redis.zrem(self._keys[2], ticket)
            await self._redis.srem(self._keys[3], ticket)
        except (aioredis.RedisError, OSError):
            log.warning("waiting room unavailable: a place is freed when its admission runs out")

    async def shorten(self, ticket: int | None, seconds: float) -> None:
        """Lets the patient's place go in ``seconds`` at the latest (never later than it would have)."""
        if not self.enabled or not ticket:
            return
        try:
            await self._redis.zadd(self._keys[2], {str(ticket): time.time() + seconds}, xx=True, lt=True)
        except (aioredis.RedisError, OSError):
            log.warning("waiting room unavailable: a place is freed when its admission runs out")

    async def reset(self) -> None:
        await self._redis.delete(*self._keys)

    async def close(self) -> None:
        await self._redis.aclose()
