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

A ticket is bound to its owner (``owners``: ticket -> a hash of the account,
or of the anonymous portal session, that took it), in the same script: ticket
numbers are consecutive, so anyone can guess one near the head of the queue,
and a session cookie or an API request may carry a number taken by someone
else. Presented by anyone but its owner, a ticket that has a place (queued,
or its turn come) counts as no ticket: the caller goes to the back of the
queue, and the owner keeps the place. The gateway's JSON API shares the queue
(gateway/booking_queue.py): one account's ticket is good in both.

An admission notes the bookings held (or paid for) through it (``booked``:
ticket -> their ids): the API, which keeps no session, frees the place when the
client reads one of those confirmed, not any confirmed booking of the account's
(an old one read meanwhile would give the place away while the patient is still
booking).

New tickets are counted per client address (``new_tickets_per_address`` in
NEW_TICKET_WINDOW_SECONDS), in the same script: a cookie-less page load, or an
API call with a forged or random token, takes a ticket whose place, when its
turn comes, stands empty for the claim window; a script taking many would push
the real patients back. Past the limit no ticket is taken (``address_limited``)
until the window ends. Every new ticket counts, an account's too: the API's
token is not verified before the check (a forged one names any account), and a
signed-in session without a ticket takes a new one as readily. The address is
the gateway's (``address_guard.client_address``: the peer, or behind a trusted
proxy its X-Forwarded-For; only a public one is counted), kept in Redis only as
a keyed hash, for one window; never logged nor a metric label.
"""
from __future__ import annotations

import hashlib
import logging
import math
import time
from dataclasses import dataclass

import redis.asyncio as aioredis

from tuoguan.registration.v1 import registration_pb2 as reg
from tuoguan_common import metrics

from ..address_guard import address_digest

log = logging.getLogger(__name__)

# Far longer than any pass or claim: only a queue nobody uses any more expires.
IDLE_SECONDS = 24 * 3600

# After paying, how long the patient keeps their waiting-room place: long enough to hear that a card was
# declined and book again without queueing, short enough that a patient who paid and left frees it soon.
# The portal's and the API's (shorten); also after cancelling a confirmed booking (cancelled).
PAID_PLACE_SECONDS = 90
# The window of the count of new tickets per address.
NEW_TICKET_WINDOW_SECONDS = 60

CHECK = """
local tail_key, head_key, active_key, taken_key, owners_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local booked_key, address_key = KEYS[6], KEYS[7]
local now, capacity = tonumber(ARGV[1]), tonumber(ARGV[2])
local claim_seconds, pass_seconds = tonumber(ARGV[3]), tonumber(ARGV[4])
local ticket = tonumber(ARGV[5])
local owner, claimable_from = ARGV[7], ARGV[8]
-- The address's count of new tickets: at most ARGV[9] (0: not counted) per ARGV[10] seconds.
local address_limit, address_window = tonumber(ARGV[9]), tonumber(ARGV[10])

local spent = redis.call('ZRANGEBYSCORE', active_key, '-inf', now)
for _, t in ipairs(spent) do
  redis.call('ZREM', active_key, t)
  redis.call('SREM', taken_key, t)
  redis.call('HDEL', owners_key, t)
  redis.call('HDEL', booked_key, t)
end

local tail = tonumber(redis.call('GET', tail_key) or '0')
local head = tonumber(redis.call('GET', head_key) or '0')
local foreign = 0
if ticket > 0 and ticket <= tail and (ticket > head or redis.call('ZSCORE', active_key, ticket)) then
  -- A ticket with a place (queued, or its turn come) is its owner's alone. One whose place is
  -- gone (missed_turn below) gives nobody anything, whoever presents it.
  local bound = redis.call('HGET', owners_key, ticket)
  if bound ~= owner then
    if bound and claimable_from ~= '' and bound == claimable_from then
      -- The portal session that queued before signing in: the ticket is the account's now.
      redis.call('HSET', owners_key, ticket, owner)
    else
      -- Another's ticket (or one from before tickets had owners): as if none was presented.
      foreign = 1
      ticket = 0
    end
  end
end
local new_ticket, limited_for = 0, 0
if ticket <= 0 or ticket > tail then
  if address_limit > 0 then
    local count = redis.call('INCR', address_key)
    if count == 1 or redis.call('TTL', address_key) < 0 then redis.call('EXPIRE', address_key, address_window) end
    if count > address_limit then
      redis.call('DECR', address_key)
      limited_for = math.max(1, redis.call('TTL', address_key))
      ticket = 0
    end
  end
  if limited_for == 0 then
    -- A new patient, or a ticket from before the queue was reset: the back of the queue.
    ticket = redis.call('INCR', tail_key)
    tail = ticket
    new_ticket = 1
    redis.call('HSET', owners_key, ticket, owner)
  end
end
local room = capacity - redis.call('ZCARD', active_key)
while room > 0 and head < tail do
  head = head + 1
  redis.call('ZADD', active_key, now + claim_seconds, head)
  room = room - 1
end
redis.call('SET', head_key, head)

local standing
if limited_for > 0 then
  standing = {0, 0, 'address_limited', tail - head, foreign, new_ticket, limited_for}
elseif ticket > head then
  standing = {ticket, ticket - head, 'queued', tail - head, foreign, new_ticket, 0}
elseif not redis.call('ZSCORE', active_key, ticket) then
  standing = {ticket, 0, 'missed_turn', tail - head, foreign, new_ticket, 0}
else
  if redis.call('SADD', taken_key, ticket) == 1 then
    redis.call('ZADD', active_key, now + pass_seconds, ticket)
  end
  standing = {ticket, 0, 'admitted', tail - head, foreign, new_ticket, 0}
end
-- The queue's keys, not the address's count: that one lasts its window.
for i = 1, 6 do
  redis.call('EXPIRE', KEYS[i], ARGV[6])
end
return standing
"""

# Only the ticket's owner may free its place (a sign-out, a booking confirmed) or cut it short (paid).
# ARGV[3]: a booking's id, or '': the place is freed only if that booking was held or paid through it.
LEAVE = """
if redis.call('HGET', KEYS[3], ARGV[1]) ~= ARGV[2] then
  return 0
end
if ARGV[3] ~= '' and not string.find(' ' .. (redis.call('HGET', KEYS[4], ARGV[1]) or '') .. ' ',
                                     ' ' .. ARGV[3] .. ' ', 1, true) then
  return 0
end
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('SREM', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
redis.call('HDEL', KEYS[4], ARGV[1])
return 1
"""

SHORTEN = """
if redis.call('HGET', KEYS[2], ARGV[1]) ~= ARGV[3] then
  return 0
end
return redis.call('ZADD', KEYS[1], 'XX', 'LT', ARGV[2], ARGV[1])
"""

# Notes a booking held or paid for through the owner's admission (ARGV: ticket, owner, booking id, the
# keys' idle seconds). Ids are registration's (no spaces); the last BOOKED_KEPT are kept, more than a
# patient's active bookings may number, so a long admission's note stays small.
BOOKED = """
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] or not redis.call('ZSCORE', KEYS[3], ARGV[1]) then
  return 0
end
local ids = {}
for id in string.gmatch(redis.call('HGET', KEYS[2], ARGV[1]) or '', '%S+') do
  if id ~= ARGV[3] then table.insert(ids, id) end
end
table.insert(ids, ARGV[3])
while #ids > tonumber(ARGV[5]) do table.remove(ids, 1) end
redis.call('HSET', KEYS[2], ARGV[1], table.concat(ids, ' '))
redis.call('EXPIRE', KEYS[2], ARGV[4])
return 1
"""
BOOKED_KEPT = 10


def account_owner(subject: str) -> str:
    """Whom a ticket taken by an account is bound to: the same in the portal and the API, so one
    account's ticket is good in both."""
    return f"account:{subject}"


def visitor_owner(visitor: str) -> str:
    """Whom a ticket taken in a portal session before signing in is bound to (``visitor``: a random id
    the session keeps): it passes to the account that signs in with that session (``claimable_from``)."""
    return f"visitor:{visitor}"


def owner_key(owner: str) -> str:
    """What Redis holds for an owner: a fixed-size digest, never the account id itself (and an
    API caller's unverified token names any subject, of any length, it likes)."""
    return hashlib.sha256(owner.encode()).hexdigest()[:32]


def _freed_when_it_runs_out(undone: str) -> None:
    """Redis failed: ``undone`` (freeing a place, noting a booking, shortening a
    place) did not happen, and the place goes only when its admission runs out."""
    log.warning("waiting room unavailable: a place is freed when its admission runs out",
                extra={"undone": undone})


@dataclass(frozen=True)
class Standing:
    ticket: int  # 0 when address_limited: no ticket was taken
    position: int  # 0 when admitted
    outcome: str  # admitted, queued, missed_turn, address_limited, room_unavailable
    waiting: int
    # address_limited: seconds until the address may take a new ticket.
    retry_after: int = 0

    @property
    def admitted(self) -> bool:
        return self.outcome in ("admitted", "room_unavailable")


class WaitingRoom:
    """The queue; ``check`` for a page of the booking flow, ``leave`` when a patient is done."""

    def __init__(self, redis_url: str, *, capacity: int, claim_seconds: int, pass_seconds: int,
                 namespace: str = "tuoguan:waiting-room", timeout_seconds: float = 0.5,
                 new_tickets_per_address: int = 0, address_secret: str = ""):
        self.capacity = capacity
        # 0: new tickets are not counted per address.
        self.new_tickets_per_address = new_tickets_per_address
        self._address_secret = address_secret.encode()
        self.claim_seconds = claim_seconds
        self.pass_seconds = pass_seconds
        # Short: a Redis that does not answer lets patients through (fail open)
        # rather than keep every booking page waiting on it.
        self._redis = aioredis.Redis.from_url(redis_url, socket_timeout=timeout_seconds,
                                              socket_connect_timeout=timeout_seconds)
        self._namespace = namespace
        self._keys = [f"{namespace}:{k}" for k in ("tail", "head", "active", "taken", "owners", "booked")]
        self._check = self._redis.register_script(CHECK)
        self._leave = self._redis.register_script(LEAVE)
        self._shorten = self._redis.register_script(SHORTEN)
        self._booked = self._redis.register_script(BOOKED)
        # Served at 0 from the start: a rate of foreign tickets reads 0, not "no data", on a quiet day.
        for surface in ("portal", "api"):
            metrics.WAITING_ROOM_FOREIGN_TICKETS.labels(surface)
            for outcome in ("counted", "refused", "not_counted"):
                metrics.WAITING_ROOM_NEW_TICKETS.labels(surface, outcome)

    @property
    def enabled(self) -> bool:
        return self.capacity > 0

    async def check(self, ticket: int | None, owner: str = "", *, claimable_from: str = "",
                    surface: str = "portal", address: str | None = None) -> Standing:
        """Where ``ticket`` stands for ``owner`` (an account, or an anonymous portal session): a ticket
        another owner took counts as none. ``claimable_from``: a ticket of this owner's passes to
        ``owner`` (the portal session that signs in). ``address``: the client's, as
        ``address_guard.client_address`` gives it (None: not counted); a new ticket past its limit is
        refused (``address_limited``). ``surface`` (portal, api) only labels metrics."""
        if not self.enabled:
            return Standing(ticket or 0, 0, "admitted", 0)
        counted = bool(address) and self.new_tickets_per_address > 0
        try:
            raw = await self._check(keys=[*self._keys, self._address_key(address or "")], args=[
                time.time(), self.capacity, self.claim_seconds, self.pass_seconds, ticket or 0, IDLE_SECONDS,
                owner_key(owner), owner_key(claimable_from) if claimable_from else "",
                self.new_tickets_per_address if counted else 0, NEW_TICKET_WINDOW_SECONDS])
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
        standing = Standing(int(raw[0]), int(raw[1]), raw[2].decode(), int(raw[3]), retry_after=int(raw[6]))
        if int(raw[4]):
            metrics.WAITING_ROOM_FOREIGN_TICKETS.labels(surface).inc()
        if standing.outcome == "address_limited":
            metrics.WAITING_ROOM_NEW_TICKETS.labels(surface, "refused").inc()
        elif int(raw[5]) and self.new_tickets_per_address > 0:
            metrics.WAITING_ROOM_NEW_TICKETS.labels(surface, "counted" if counted else "not_counted").inc()
        metrics.PORTAL_WAITING_ROOM.labels(standing.outcome).inc()
        metrics.PORTAL_WAITING_ROOM_QUEUE.set(standing.waiting)
        metrics.PORTAL_WAITING_ROOM_CHECKED.set_to_current_time()
        return standing

    def _address_key(self, address: str) -> str:
        """The address's count of new tickets: a keyed hash of the address, never the address."""
        return f"{self._namespace}:new-tickets:{address_digest(self._address_secret, address)}"

    async def leave(self, ticket: int | None, owner: str = "", *, booking_id: str = "") -> None:
        """Frees the patient's place for the next in the queue (``owner``'s ticket only); with
        ``booking_id``, only if that booking was held or paid for through it (``booked``)."""
        if not self.enabled or not ticket:
            return
        try:
            await self._leave(keys=self._keys[2:6], args=[ticket, owner_key(owner), booking_id])
        except (aioredis.RedisError, OSError):
            _freed_when_it_runs_out("leave")

    async def cancelled(self, ticket: int | None, owner: str, booking: reg.Booking) -> None:
        """``owner`` cancelled ``booking`` (the portal and the API alike). A confirmed booking cancelled (it
        had its queue number) ends what the patient came for, as a payment does: the place is kept
        PAID_PLACE_SECONDS at most, time to book another time at once (a patient moving an appointment
        must not go to the back of the surge's queue), not the rest of the pass for one who cancelled and
        went. A hold released keeps the place whole: nothing was booked, the patient is choosing another
        time in the same visit (the portal says so), and the pass still bounds it."""
        if booking.status == reg.BOOKING_STATUS_CANCELLED and booking.queue_number > 0:
            await self.shorten(ticket, PAID_PLACE_SECONDS, owner)

    async def booked(self, ticket: int | None, owner: str, booking_id: str) -> None:
        """Notes that ``owner``'s admission held (or paid for) ``booking_id``: reading it confirmed
        frees the place (``leave`` with the booking's id)."""
        if not self.enabled or not ticket or not booking_id:
            return
        try:
            await self._booked(keys=[self._keys[4], self._keys[5], self._keys[2]],
                               args=[ticket, owner_key(owner), booking_id, IDLE_SECONDS, BOOKED_KEPT])
        except (aioredis.RedisError, OSError):
            # Reading the booking confirmed cannot free the place now.
            _freed_when_it_runs_out("note_booking")

    async def shorten(self, ticket: int | None, seconds: float, owner: str = "") -> None:
        """Lets the patient's place go in ``seconds`` at the latest (never later than it would have;
        ``owner``'s ticket only)."""
        if not self.enabled or not ticket:
            return
        try:
            await self._shorten(keys=[self._keys[2], self._keys[4]],
                                args=[ticket, time.time() + seconds, owner_key(owner)])
        except (aioredis.RedisError, OSError):
            _freed_when_it_runs_out("shorten")

    async def reset(self) -> None:
        await self._redis.delete(*self._keys)

    async def close(self) -> None:
        await self._redis.aclose()
