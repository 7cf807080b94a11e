"""The portal's short-lived cache: hits within the TTL, expiry, one in-flight
load per key shared by everyone who asks meanwhile, failures shared and not
kept, forgetting, and its lookup metrics."""
from __future__ import annotations

import asyncio
import gc
import time
import uuid

import grpc
import pytest
from prometheus_client import REGISTRY

from gateway.portal import availability
from gateway.portal.availability import TtlCache

LOOKUPS = "tuoguan_portal_cache_lookups_total"


def lookups(cache: TtlCache, outcome: str) -> float:
    return REGISTRY.get_sample_value(LOOKUPS, {"cache": cache.name, "outcome": outcome}) or 0.0


def new_cache(ttl: float) -> TtlCache:
    # A name of its own: the test's metric series start at zero.
    return TtlCache(f"test-{uuid.uuid4().hex[:12]}", ttl)


class Loader:
    """Counts its calls; answers ``value`` (or raises ``error``) after ``delay`` seconds."""

    def __init__(self, value="slots", *, delay: float = 0.0, error: Exception | None = None):
        self.value, self.delay, self.error = value, delay, error
        self.calls = 0

    async def __call__(self):
        self.calls += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.error is not None:
            raise self.error
        return f"{self.value}#{self.calls}"


def test_a_second_get_within_the_ttl_is_a_hit():
    cache, load = new_cache(60), Loader()

    async def scenario():
        assert await cache.get("k", load) == "slots#1"
        assert await cache.get("k", load) == "slots#1"
        assert await cache.get("k", load) == "slots#1"
        # Another key is another load.
        assert await cache.get("other", load) == "slots#2"

    asyncio.run(scenario())
    assert load.calls == 2
    assert (lookups(cache, "miss"), lookups(cache, "hit"), lookups(cache, "joined")) == (2, 2, 0)


def test_an_entry_expires_after_the_ttl(monkeypatch):
    cache, load = new_cache(2.0), Loader()
    clock = [1000.0]
    monkeypatch.setattr(availability.time, "monotonic", lambda: clock[0])

    async def scenario():
        assert await cache.get("k", load) == "slots#1"
        clock[0] += 1.9
        assert await cache.get("k", load) == "slots#1"
        clock[0] += 0.2  # 2.1 s after the load
        assert await cache.get("k", load) == "slots#2"
        assert await cache.get("k", load) == "slots#2"

    asyncio.run(scenario())
    assert load.calls == 2
    assert (lookups(cache, "miss"), lookups(cache, "hit")) == (2, 2)


def test_an_entry_expires_in_real_time():
    cache, load = new_cache(0.2), Loader()

    async def scenario():
        assert await cache.get("k", load) == "slots#1"
        await asyncio.sleep(0.3)
        assert await cache.get("k", load) == "slots#2"

    asyncio.run(scenario())
    assert load.calls == 2


def test_concurrent_gets_of_one_key_share_one_load():
    cache, load = new_cache(60), Loader(delay=0.1)

    async def scenario():
        return await asyncio.gather(*(cache.get(("slots", "doctor-1"), load) for _ in range(50)))

    started = time.monotonic()
    values = asyncio.run(scenario())
    assert time.monotonic() - started < 2
    assert load.calls == 1
    assert values == ["slots#1"] * 50
    assert (lookups(cache, "miss"), lookups(cache, "joined"), lookups(cache, "hit")) == (1, 49, 0)


def test_a_failed_load_reaches_every_waiter_and_is_not_kept():
    cache = new_cache(60)
    failing = Loader(delay=0.1, error=RuntimeError("registration is down"))

    async def scenario():
        results = await asyncio.gather(*(cache.get("k", failing) for _ in range(10)), return_exceptions=True)
        assert len(results) == 10
        assert all(isinstance(r, RuntimeError) and str(r) == "registration is down" for r in results), results
        assert failing.calls == 1
        # Nothing was cached: the next get loads again, and succeeds.
        recovered = Loader()
        assert await cache.get("k", recovered) == "slots#1"
        assert recovered.calls == 1
        assert await cache.get("k", recovered) == "slots#1"

    asyncio.run(scenario())
    assert (lookups(cache, "miss"), lookups(cache, "joined"), lookups(cache, "hit")) == (2, 9, 1)


def rpc_error(code: grpc.StatusCode) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details=code.name)


@pytest.mark.parametrize("code", [grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED])
def test_a_load_refused_for_its_caller_is_not_everyone_elses_refusal(code):
    """The staff lists load with the asking desk user's token: one whose token a
    service refuses must not pass that refusal on to everyone who joined."""
    cache = new_cache(60)
    refused = Loader(delay=0.1, error=rpc_error(code))
    own = Loader("staff")

    async def scenario():
        first = asyncio.ensure_future(cache.get("staff", refused))
        await asyncio.sleep(0.01)
        joined = await asyncio.gather(*(cache.get("staff", own) for _ in range(5)))
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await first
        assert caught.value.code() == code
        return joined

    joined = asyncio.run(scenario())
    assert joined == ["staff#1"] * 5, "the joiners loaded once more, with their own token, and shared that"
    assert (refused.calls, own.calls) == (1, 1)


def test_a_service_failure_is_shared_not_loaded_again_by_each_waiter():
    cache = new_cache(60)
    down = Loader(delay=0.1, error=rpc_error(grpc.StatusCode.UNAVAILABLE))
    other = Loader()

    async def scenario():
        first = asyncio.ensure_future(cache.get("k", down))
        await asyncio.sleep(0.01)
        results = await asyncio.gather(*(cache.get("k", other) for _ in range(5)), return_exceptions=True)
        await asyncio.gather(first, return_exceptions=True)
        return results

    results = asyncio.run(scenario())
    assert all(isinstance(r, grpc.aio.AioRpcError) and r.code() == grpc.StatusCode.UNAVAILABLE for r in results)
    assert (down.calls, other.calls) == (1, 0)


def test_a_failed_load_nobody_joined_leaves_no_unretrieved_exception():
    cache = new_cache(60)
    failing = Loader(error=ValueError("bad reply"))
    unhandled = []

    async def scenario():
        asyncio.get_running_loop().set_exception_handler(lambda loop, context: unhandled.append(context))
        with pytest.raises(ValueError, match="bad reply"):
            await cache.get("k", failing)
        gc.collect()
        await asyncio.sleep(0)

    asyncio.run(scenario())
    assert unhandled == []


def test_a_cancelled_load_does_not_cancel_the_patients_who_joined_it():
    cache, load = new_cache(60), Loader(delay=0.2)

    async def scenario():
        leader = asyncio.create_task(cache.get("k", load))
        await asyncio.sleep(0.05)
        joined = [asyncio.create_task(cache.get("k", load)) for _ in range(3)]
        await asyncio.sleep(0.05)
        leader.cancel()  # e.g. the first patient's request was abandoned
        with pytest.raises(asyncio.CancelledError):
            await leader
        return await asyncio.gather(*joined)

    values = asyncio.run(scenario())
    # They carried on: one of them loaded again for everyone.
    assert values == ["slots#2"] * 3
    assert load.calls == 2


def test_a_cancelled_waiter_does_not_cancel_the_load():
    cache, load = new_cache(60), Loader(delay=0.2)

    async def scenario():
        leader = asyncio.create_task(cache.get("k", load))
        await asyncio.sleep(0.05)
        waiter = asyncio.create_task(cache.get("k", load))
        await asyncio.sleep(0.05)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert await leader == "slots#1"
        assert await cache.get("k", load) == "slots#1"

    asyncio.run(scenario())
    assert load.calls == 1


def test_forget_drops_an_entry():
    cache, load = new_cache(60), Loader()

    async def scenario():
        assert await cache.get(("slots", "d1"), load) == "slots#1"
        assert await cache.get(("slots", "d2"), load) == "slots#2"
        cache.forget(("slots", "d1"))
        cache.forget(("slots", "never-cached"))  # no error
        assert await cache.get(("slots", "d1"), load) == "slots#3"
        assert await cache.get(("slots", "d2"), load) == "slots#2"

    asyncio.run(scenario())
    assert load.calls == 3


def test_ttl_zero_never_caches_but_still_shares_a_load_in_flight():
    cache, load = new_cache(0), Loader()

    async def scenario():
        assert await cache.get("k", load) == "slots#1"
        assert await cache.get("k", load) == "slots#2"
        assert await cache.get("k", load) == "slots#3"
        slow = Loader(delay=0.1)
        assert await asyncio.gather(cache.get("s", slow), cache.get("s", slow)) == ["slots#1"] * 2
        assert slow.calls == 1

    asyncio.run(scenario())
    assert load.calls == 3
    assert lookups(cache, "hit") == 0
    assert (lookups(cache, "miss"), lookups(cache, "joined")) == (4, 1)
