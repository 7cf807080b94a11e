"""The portal's waiting room against a real Redis: arrival order, fairness under
concurrency, the claim window, the pass's expiry, stale tickets, the switch-off
and failing open when Redis is down.

Each test has a queue of its own (a unique namespace) whose keys it deletes.
Without a Redis that answers, these tests fail; they are never skipped.
"""
from __future__ import annotations

import asyncio
import math
import time

import redis
from gateway_testkit import REDIS_URL
from prometheus_client import REGISTRY

from gateway.portal.waiting_room import IDLE_SECONDS, Standing, WaitingRoom

# Nothing listens on port 1: a Redis that is down.
UNREACHABLE_REDIS = "redis://127.0.0.1:1/0"
CHECKS = "tuoguan_portal_waiting_room_checks_total"
QUEUE = "tuoguan_portal_waiting_room_queue"
CHECKED = "tuoguan_portal_waiting_room_checked_timestamp_seconds"


def run_with_room(namespace: str, scenario, *, capacity: int, claim_seconds: int = 60, pass_seconds: int = 600,
                  url: str = REDIS_URL, new_tickets_per_address: int = 0):
    """Runs ``await scenario(room)`` in a fresh event loop, closing the room's connections afterwards."""
    async def main():
        # A loaded CI machine may take longer than the portal's half second to
        # connect 200 clients at once: these tests are about the queue, not the timeout.
        room = WaitingRoom(url, capacity=capacity, claim_seconds=claim_seconds, pass_seconds=pass_seconds,
                           namespace=namespace, timeout_seconds=5.0,
                           new_tickets_per_address=new_tickets_per_address, address_secret="test-secret")
        try:
            return await scenario(room)
        finally:
            await room.close()

    return asyncio.run(main())


def checks(outcome: str) -> float:
    return REGISTRY.get_sample_value(CHECKS, {"outcome": outcome}) or 0.0


def test_first_come_first_admitted_then_queued_in_arrival_order(namespace):
    async def scenario(room: WaitingRoom):
        arrivals = [await room.check(None) for _ in range(10)]

        assert [s.ticket for s in arrivals] == list(range(1, 11))
        assert [s.outcome for s in arrivals[:3]] == ["admitted"] * 3
        assert all(s.admitted and s.position == 0 for s in arrivals[:3])
        assert [s.outcome for s in arrivals[3:]] == ["queued"] * 7
        assert not any(s.admitted for s in arrivals[3:])
        assert [s.position for s in arrivals[3:]] == list(range(1, 8))
        assert arrivals[-1].waiting == 7

        # Re-checking keeps one's ticket and place: no new ticket is issued.
        again = await room.check(arrivals[5].ticket)
        assert again == Standing(ticket=6, position=3, outcome="queued", waiting=7)
        assert await room.check(arrivals[1].ticket) == Standing(ticket=2, position=0, outcome="admitted", waiting=7)
        assert (await room.check(10)).position == 7

        # The first patient is done: exactly one place frees, for ticket 4 (not for whoever asks first).
        await room.leave(arrivals[0].ticket)
        assert await room.check(5) == Standing(ticket=5, position=1, outcome="queued", waiting=6)
        assert await room.check(4) == Standing(ticket=4, position=0, outcome="admitted", waiting=6)
        assert [(await room.check(t)).position for t in range(5, 11)] == [1, 2, 3, 4, 5, 6]
        # The admitted are still admitted, and the ticket that left is not.
        assert [(await room.check(t)).outcome for t in (2, 3, 4)] == ["admitted"] * 3
        assert (await room.check(1)).outcome == "missed_turn"
        # A newcomer goes to the back.
        assert await room.check(None) == Standing(ticket=11, position=7, outcome="queued", waiting=7)

    run_with_room(namespace, scenario, capacity=3)


def test_two_hundred_at_once_are_admitted_or_queued_fairly(namespace):
    async def scenario(room: WaitingRoom):
        return await asyncio.gather(*(room.check(None) for _ in range(200)))

    standings = run_with_room(namespace, scenario, capacity=20)

    tickets = [s.ticket for s in standings]
    assert sorted(tickets) == list(range(1, 201)), "every patient gets a ticket of their own"
    admitted = [s for s in standings if s.outcome == "admitted"]
    queued = [s for s in standings if s.outcome == "queued"]
    assert len(admitted) == 20
    assert len(queued) == 180
    assert sorted(s.position for s in queued) == list(range(1, 181))
    # Arrival order: the first 20 tickets are in, the others queue by ticket.
    assert sorted(s.ticket for s in admitted) == list(range(1, 21))
    assert all(s.position == s.ticket - 20 for s in queued)


def test_a_turn_not_taken_within_the_claim_window_is_missed_and_goes_to_the_next(namespace):
    async def scenario(room: WaitingRoom):
        first = await room.check(None)
        second = await room.check(None)
        assert (first.outcome, second.outcome, second.position) == ("admitted", "queued", 1)
        await room.leave(first.ticket)
        # The next check lets ticket 2 in (its turn has come) while the newcomer queues behind it.
        third = await room.check(None)
        assert (third.ticket, third.outcome, third.position) == (3, "queued", 1)

        await asyncio.sleep(1.3)  # ticket 2's tab was closed: the window passes unclaimed

        late = await room.check(second.ticket)
        assert (late.ticket, late.outcome, late.admitted, late.position) == (2, "missed_turn", False, 0)
        assert await room.check(third.ticket) == Standing(ticket=3, position=0, outcome="admitted", waiting=0)
        # The patient who missed their turn (the portal drops their ticket) starts again at the back.
        assert (await room.check(None)).ticket == 4
        assert (await room.check(4)).position == 1

    run_with_room(namespace, scenario, capacity=1, claim_seconds=1, pass_seconds=600)


def test_a_turn_claimed_within_the_window_is_admitted(namespace):
    async def scenario(room: WaitingRoom):
        first = await room.check(None)
        second = await room.check(None)
        await room.leave(first.ticket)
        await room.check(None)  # lets ticket 2 in
        await asyncio.sleep(0.3)
        claimed = await room.check(second.ticket)
        assert (claimed.ticket, claimed.outcome) == (2, "admitted")
        # Claimed, it holds the place past the claim window.
        await asyncio.sleep(1.0)
        assert (await room.check(second.ticket)).outcome == "admitted"
        assert (await room.check(3)).outcome == "queued"

    run_with_room(namespace, scenario, capacity=1, claim_seconds=1, pass_seconds=600)


def test_an_admission_frees_its_place_when_the_pass_runs_out(namespace):
    async def scenario(room: WaitingRoom):
        holder = await room.check(None)
        waiter = await room.check(None)
        assert (holder.outcome, waiter.outcome) == ("admitted", "queued")

        # Taken, the admission lasts the pass (2 s), not the claim window (1 s).
        await asyncio.sleep(1.2)
        assert (await room.check(waiter.ticket)).outcome == "queued"

        await asyncio.sleep(1.0)
        assert (await room.check(waiter.ticket)).outcome == "admitted"
        assert (await room.check(holder.ticket)).outcome == "missed_turn"

    run_with_room(namespace, scenario, capacity=1, claim_seconds=1, pass_seconds=2)


def test_a_patient_who_paid_keeps_the_place_a_short_while_only(namespace):
    """After paying, the place is kept for a declined card's patient to book again, but not for the whole
    pass: a patient who paid and closed the tab held the next one's place for ten minutes. Shortening
    never lengthens a place, and a ticket with no place gets none."""
    async def scenario(room: WaitingRoom):
        holder = await room.check(None)
        waiter = await room.check(None)
        assert (holder.outcome, waiter.outcome) == ("admitted", "queued")
        await room.shorten(holder.ticket, 0.5)
        assert (await room.check(waiter.ticket)).outcome == "queued"
        await room.shorten(holder.ticket, 600)  # never longer than it was
        await asyncio.sleep(0.7)
        assert (await room.check(waiter.ticket)).outcome == "admitted"
        await room.shorten(holder.ticket, 600)  # gone: nothing to shorten, no place made
        third = await room.check(None)
        assert third.outcome == "queued"

    run_with_room(namespace, scenario, capacity=1, claim_seconds=60, pass_seconds=600)


def test_a_ticket_beyond_the_tail_is_treated_as_new(namespace):
    async def scenario(room: WaitingRoom):
        assert (await room.check(None)).ticket == 1
        assert (await room.check(None)).ticket == 2
        # A ticket the queue never issued (e.g. from before a reset) goes to the back.
        stale = await room.check(999)
        assert stale == Standing(ticket=3, position=2, outcome="queued", waiting=2)
        negative = await room.check(-5)
        assert (negative.ticket, negative.position) == (4, 3)

        # After a reset, a patient's old ticket is beyond the new tail: a fresh ticket.
        await room.reset()
        fresh = await room.check(4)
        assert fresh == Standing(ticket=1, position=0, outcome="admitted", waiting=0)
        assert await room.check(3) == Standing(ticket=2, position=1, outcome="queued", waiting=1)

    run_with_room(namespace, scenario, capacity=1)


def test_a_queue_nobody_checks_expires_whole(namespace):
    """Every key of the queue lives IDLE_SECONDS past its last check, so a
    surge's (or a test platform's) queue does not stay in Redis for ever."""
    async def scenario(room: WaitingRoom):
        await room.check(None)  # admitted: tail, head, active
        await room.check(1)  # taken
        await room.check(None)  # queued behind it (its owner kept with it)

    run_with_room(namespace, scenario, capacity=1)
    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = sorted(k.decode().rsplit(":", 1)[1] for k in client.scan_iter(match=f"{namespace}:*"))
        assert keys == ["active", "head", "owners", "tail", "taken"]
        for key in keys:
            ttl = client.ttl(f"{namespace}:{key}")
            assert IDLE_SECONDS - 60 < ttl <= IDLE_SECONDS, (key, ttl)
    finally:
        client.close()


def test_capacity_zero_switches_the_room_off_without_touching_redis(namespace):
    unavailable_before = checks("room_unavailable")

    async def scenario(room: WaitingRoom):
        assert not room.enabled
        assert await room.check(None) == Standing(ticket=0, position=0, outcome="admitted", waiting=0)
        assert await room.check(42) == Standing(ticket=42, position=0, outcome="admitted", waiting=0)
        await room.leave(42)

    # Redis is unreachable: had the room used it, the outcome would be room_unavailable.
    run_with_room(namespace, scenario, capacity=0, url=UNREACHABLE_REDIS)
    assert checks("room_unavailable") == unavailable_before


def test_without_redis_the_room_lets_patients_through(namespace, caplog):
    before = checks("room_unavailable")

    async def scenario(room: WaitingRoom):
        started = time.monotonic()
        standing = await room.check(None)
        assert standing.outcome == "room_unavailable"
        assert standing.admitted
        assert (await room.check(7)) == Standing(ticket=7, position=0, outcome="room_unavailable", waiting=0)
        # None of these may raise either: the patient's booking went through.
        await room.leave(7)
        await room.booked(7, "patient", "booking-1")
        await room.shorten(7, 90)
        assert time.monotonic() - started < 10, "an unavailable Redis must not hold the page up"

    with caplog.at_level("WARNING", logger="gateway.portal.waiting_room"):
        run_with_room(namespace, scenario, capacity=5, url=UNREACHABLE_REDIS)
    assert checks("room_unavailable") == before + 2
    # Each warning says what was left undone: the place then goes only when its admission runs out.
    assert [r.undone for r in caplog.records if hasattr(r, "undone")] == ["leave", "note_booking", "shorten"]


def test_a_check_that_cannot_read_redis_leaves_no_stale_queue_length(namespace):
    """The queue gauge is what this gateway last read. A check that cannot read
    Redis makes it unknown (NaN) rather than leave the figure read before the
    outage, which kept TuoguanWaitingRoomQueueLong firing through the max over
    replicas; the checked timestamp stays at the last read, so the rules can
    tell a replica's figure is old (one nobody checks through any more)."""
    async def arrive(room: WaitingRoom, patients: int):
        for _ in range(patients):
            await room.check(None)

    started = time.time()
    run_with_room(namespace, lambda room: arrive(room, 4), capacity=1)  # one admitted, three queued
    assert REGISTRY.get_sample_value(QUEUE) == 3
    read_at = REGISTRY.get_sample_value(CHECKED)
    assert started - 1 <= read_at <= time.time() + 1

    run_with_room(namespace, lambda room: arrive(room, 1), capacity=1, url=UNREACHABLE_REDIS)
    assert math.isnan(REGISTRY.get_sample_value(QUEUE))
    assert REGISTRY.get_sample_value(CHECKED) == read_at

    # Redis back: the next check reads the queue again.
    run_with_room(namespace, lambda room: arrive(room, 2), capacity=1)
    assert REGISTRY.get_sample_value(QUEUE) == 5
    assert REGISTRY.get_sample_value(CHECKED) >= read_at


def foreign_tickets(surface: str) -> float:
    return REGISTRY.get_sample_value("tuoguan_gateway_waiting_room_foreign_tickets_total", {"surface": surface}) or 0.0


def test_a_ticket_is_its_owners_alone(namespace):
    """Before, a ticket was just a number: any session or account presenting an admitted one was admitted.
    Now a ticket with a place counts as none when another owner presents it, and only its owner frees or
    shortens its place."""
    before = foreign_tickets("api")

    async def scenario(room: WaitingRoom):
        mine = await room.check(None, "account:a")
        assert (mine.ticket, mine.outcome) == (1, "admitted")
        queued = await room.check(None, "account:c")
        assert (queued.ticket, queued.outcome) == (2, "queued")

        # Another account with the admitted ticket: the back of the queue, not admitted.
        taken = await room.check(1, "account:b", surface="api")
        assert taken == Standing(ticket=3, position=2, outcome="queued", waiting=2)
        # With the queued one: the back too; its owner keeps the place ahead.
        assert await room.check(2, "account:b", surface="api") == Standing(
            ticket=4, position=3, outcome="queued", waiting=3)
        assert await room.check(2, "account:c") == Standing(ticket=2, position=1, outcome="queued", waiting=3)
        assert await room.check(1, "account:a") == Standing(ticket=1, position=0, outcome="admitted", waiting=3)

        # Nor does another free it, or cut it short.
        await room.leave(1, "account:b")
        await room.shorten(1, 0.1, "account:b")
        await asyncio.sleep(0.3)
        assert (await room.check(2, "account:c")).outcome == "queued"
        assert (await room.check(1, "account:a")).outcome == "admitted"
        await room.leave(1, "account:a")
        assert (await room.check(2, "account:c")).outcome == "admitted"

    run_with_room(namespace, scenario, capacity=1)
    assert foreign_tickets("api") == before + 2


def test_a_sessions_ticket_passes_to_the_first_account_signing_in_with_it_and_no_other(namespace):
    """A patient queues on the portal before signing in: the session's ticket becomes the account's. A copy
    of the session signed in as another account gets a ticket of its own."""
    async def scenario(room: WaitingRoom):
        first = await room.check(None, "visitor:v1")
        assert (first.ticket, first.outcome) == (1, "admitted")
        signed_in = await room.check(1, "account:a", claimable_from="visitor:v1")
        assert (signed_in.ticket, signed_in.outcome) == (1, "admitted")
        # The copy of the session: the ticket is account a's now.
        copy = await room.check(1, "account:b", claimable_from="visitor:v1")
        assert (copy.ticket, copy.outcome) == (2, "queued")
        assert (await room.check(1, "visitor:v1")).ticket == 3
        # Another session's ticket does not pass either.
        assert (await room.check(2, "account:c", claimable_from="visitor:v2")).ticket == 4

    run_with_room(namespace, scenario, capacity=1)


def test_redis_holds_no_account_id(namespace):
    async def scenario(room: WaitingRoom):
        await room.check(None, "account:8f14e45f-ceea-467f-a0e6-2c4ac6d1b0c1")

    run_with_room(namespace, scenario, capacity=1)
    client = redis.Redis.from_url(REDIS_URL)
    try:
        owners = client.hgetall(f"{namespace}:owners")
        assert list(owners) == [b"1"] and b"8f14e45f" not in owners[b"1"] and len(owners[b"1"]) == 32
    finally:
        client.close()


NAT, ELSEWHERE = "101.6.6.6", "2408:8000:1:2::/64"


def test_new_tickets_per_address_are_limited_and_none_is_taken_past_the_limit(namespace):
    """Before, every check without a ticket took one: a script loading pages without a cookie pushed the
    patients queueing behind it back, one place per request. Now an address takes at most its limit of new
    tickets a minute, however many ask at once; past it, no ticket (address_limited, with the seconds left),
    while its tickets already taken, and other addresses, are answered as before."""
    async def scenario(room: WaitingRoom):
        asked = await asyncio.gather(*(room.check(None, f"visitor:{n}", address=NAT) for n in range(20)))
        other = await room.check(None, "visitor:elsewhere", address=ELSEWHERE)
        n, mine = next((n, s) for n, s in enumerate(asked) if s.ticket)
        own = await room.check(mine.ticket, f"visitor:{n}", address=NAT)
        return asked, other, own

    refused_before = REGISTRY.get_sample_value("tuoguan_gateway_waiting_room_new_tickets_total",
                                               {"surface": "portal", "outcome": "refused"}) or 0.0
    asked, other, own = run_with_room(namespace, scenario, capacity=1, new_tickets_per_address=3)
    taken = [s for s in asked if s.outcome != "address_limited"]
    limited = [s for s in asked if s.outcome == "address_limited"]
    assert sorted(s.ticket for s in taken) == [1, 2, 3] and len(limited) == 17
    assert all(s.ticket == 0 and not s.admitted and 1 <= s.retry_after <= 60 for s in limited)
    assert other.outcome == "queued" and other.ticket == 4 and other.position == 3
    assert own.outcome in ("admitted", "queued") and own.ticket in (1, 2, 3)
    assert REGISTRY.get_sample_value("tuoguan_gateway_waiting_room_new_tickets_total",
                                     {"surface": "portal", "outcome": "refused"}) == refused_before + 17

    client = redis.Redis.from_url(REDIS_URL)
    try:
        counts = {k.decode(): client.get(k) for k in client.scan_iter(match=f"{namespace}:new-tickets:*")}
        # One count per address, under a keyed hash of it, for the minute only.
        assert sorted(counts.values()) == [b"1", b"3"]
        assert not any(NAT in key or "2408" in key for key in counts)
        assert all(0 < client.ttl(key) <= 60 for key in counts)
    finally:
        client.close()


def test_without_an_address_or_a_limit_new_tickets_are_not_counted(namespace):
    """A client whose address is not a public one (None) is not counted; nor is anyone with the limit at 0."""
    def scenario(address):
        async def checks(room: WaitingRoom):
            return [(await room.check(None, f"visitor:{n}", address=address)).ticket for n in range(5)]
        return checks

    assert run_with_room(namespace, scenario(None), capacity=1, new_tickets_per_address=2) == [1, 2, 3, 4, 5]
    assert run_with_room(f"{namespace}:off", scenario(NAT), capacity=1) == [1, 2, 3, 4, 5]


def test_the_new_tickets_per_address_come_from_the_environment(monkeypatch):
    from gateway.portal.settings import PortalSettings

    monkeypatch.delenv("WAITING_ROOM_NEW_TICKETS_PER_ADDRESS", raising=False)
    assert PortalSettings.from_env().waiting_room_new_tickets_per_address == 60
    monkeypatch.setenv("WAITING_ROOM_NEW_TICKETS_PER_ADDRESS", "0")
    assert PortalSettings.from_env().waiting_room_new_tickets_per_address == 0
