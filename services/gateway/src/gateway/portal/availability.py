"""A short-lived cache in front of the catalogue and slot queries.

At the 07:00 surge thousands of patients look at the same doctors' slots; each
gateway asks registration once per key and period and shares the answer. One
in-flight call per key: the patients who arrive while it runs wait for it
rather than sending their own.
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Any

import grpc

from tuoguan_common import metrics

# Enough for every department, doctor and doctor's fortnight of slots a hospital has.
MAX_ENTRIES = 4096
# Refusals that concern who asked, not what was asked.
_THE_CALLERS_OWN = frozenset({grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED})


class TtlCache:
    def __init__(self, name: str, ttl_seconds: float):
        self.name = name
        self.ttl = ttl_seconds
        self._entries: dict[Hashable, tuple[float, Any]] = {}
        self._in_flight: dict[Hashable, asyncio.Future] = {}

    async def get(self, key: Hashable, load: Callable[[], Awaitable[Any]]) -> Any:
        now = time.monotonic()
        entry = self._entries.get(key)
        if entry is not None and entry[0] > now:
            metrics.PORTAL_CACHE_LOOKUPS.labels(self.name, "hit").inc()
            return entry[1]
        pending = self._in_flight.get(key)
        if pending is not None:
            metrics.PORTAL_CACHE_LOOKUPS.labels(self.name, "joined").inc()
            try:
                return await asyncio.shield(pending)
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if not pending.cancelled() or (task is not None and task.cancelling()):
                    raise  # this caller was cancelled
                # The caller whose load this joined was cancelled, not this one: load afresh.
                return await self.get(key, load)
            except grpc.aio.AioRpcError as exc:
                if exc.code() not in _THE_CALLERS_OWN:
                    raise  # the service's failure: everyone's, and one call found it out for all
                # Refused for the caller who started the load (their token, their role),
                # not for this one: a load of this caller's own.
                return await self.get(key, load)
        metrics.PORTAL_CACHE_LOOKUPS.labels(self.name, "miss").inc()
        future = asyncio.get_running_loop().create_future()
        self._in_flight[key] = future
        try:
            value = await load()
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as exc:
            future.set_exception(exc)
            # Nobody else may be waiting: mark the exception retrieved.
            future.exception()
            raise
        finally:
            self._in_flight.pop(key, None)
        if self.ttl > 0:
            if len(self._entries) >= MAX_ENTRIES:
                self._entries.clear()
            self._entries[key] = (time.monotonic() + self.ttl, value)
        future.set_result(value)
        return value

    def forget(self, key: Hashable) -> None:
        self._entries.pop(key, None)
