"""Admission by latency: while the calls admitted wait too long, turn a share
of new calls away at once, so the ones admitted still finish in time.

Why not only the server's in-flight limit: a fixed limit refuses whichever
call finds the server full. In a surge that was the payment, which lasts
longer than the hold before it, so patients held places they then could not
pay for, and each such hold cost the platform a booking's work for nothing.
Refusing at the first step of a journey tells the patient before anything is
held, and leaves the capacity to those already on their way.

The signal is CoDel's (RFC 8289): a standing queue shows in the *minimum*
latency over an interval, a passing burst does not. An interval in which no
call finished while some waited counts as above target too (the queue is
stuck, not idle). The action is PIE's (RFC 8033): a probability of refusing
that rises by a step each interval above target and falls by a step each
interval at or under it, so it settles where the calls admitted are as many
as can be served. It never refuses every call: the few let through keep the
latency measured, and the probability falls as soon as they are served in time.

A call's latency here starts when its handler takes it, but a busy grpc.aio
process takes calls from gRPC core more slowly than they come, and the rest
wait in core first (grpc_server.calls_waiting_in_core): holds took 40-50 ms
in the handler while their callers waited seconds. So, apart from the
latency's rule, while more than ``waiting_limit`` calls wait in core every
new call is turned away (``waiting`` is read every ``WAITING_READ_INTERVAL``:
it costs a few hundred µs). That queue is measured in core, not through the
calls admitted, so none need to go through to keep it measured; and a share
would not do: refused or not, every call waiting there is taken in turn.

Not thread-safe: one instance lives on one event loop.
"""
from __future__ import annotations

import math
import random
import time
from collections.abc import Callable

from . import metrics

DEFAULT_INTERVAL = 0.1
STEP = 0.1
CEILING = 0.9
WAITING_READ_INTERVAL = 0.05


class LatencyAdmission:
    """``admit()`` before a call, ``started()`` and ``finished(latency)`` around
    each call admitted. ``target`` None or 0 admits every call. The interval
    is at least the target: a call in flight through a whole interval then
    took longer than the target."""

    def __init__(self, method: str, target: float | None, *, interval: float = DEFAULT_INTERVAL,
                 step: float = STEP, ceiling: float = CEILING, clock: Callable[[], float] = time.monotonic,
                 chance: Callable[[], float] = random.random, waiting: Callable[[], int] | None = None,
                 waiting_limit: int = 0):
        if interval <= 0 or not 0 < step <= ceiling < 1:
            raise ValueError("needs interval > 0 and 0 < step <= ceiling < 1")
        self.target = target or None
        self.interval = max(interval, self.target or 0)
        self.step = step
        # Whole steps, so the probability comes back to exactly 0.
        self._level = 0
        self._top = math.floor(ceiling / step + 1e-9)
        self._clock = clock
        self._chance = chance
        # 0: calls waiting in core are not looked at.
        self._waiting = waiting if waiting_limit > 0 else None
        self.waiting_limit = waiting_limit
        self._queue_read_at = -math.inf
        self._queue_full = False
        self._in_flight = 0
        self._interval_start = clock()
        self._fastest: float | None = None  # the lowest latency finished in this interval
        self._busy_at_start = False  # a call was in flight when this interval began
        # Read when scraped, so it falls back to 0 after a surge even when no call comes to roll it over.
        metrics.ADMISSION_REFUSE_PROBABILITY.labels(method).set_function(self._scraped)

    @property
    def refuse_probability(self) -> float:
        return self._level * self.step

    def admit(self) -> bool:
        if self.target is None:
            return True
        now = self._clock()
        self._roll(now)
        if self._waiting is not None:
            if now - self._queue_read_at >= WAITING_READ_INTERVAL:
                self._queue_read_at = now
                self._queue_full = self._waiting() > self.waiting_limit
            if self._queue_full:
                return False
        return self._level == 0 or self._chance() >= self.refuse_probability

    def _scraped(self) -> float:
        """The share turned away now, read afresh (from the metrics thread)."""
        if self._waiting is not None and self.target is not None and self._waiting() > self.waiting_limit:
            return 1.0
        return self._rolled(self._clock())[0] * self.step

    def started(self) -> None:
        self._in_flight += 1

    def finished(self, latency: float) -> None:
        if self.target is not None:
            # Rolled over first: the intervals this call spent waiting counted it as in flight.
            self._roll(self._clock())
            if self._fastest is None or latency < self._fastest:
                self._fastest = latency
        self._in_flight -= 1

    def _clamp(self, level: int) -> int:
        return min(self._top, max(0, level))

    def _rolled(self, now: float) -> tuple[int, int]:
        """The level once the intervals ended by ``now`` are counted, and how
        many there are. Changes nothing (the metrics thread reads it too)."""
        if self.target is None:
            return 0, 0
        elapsed = now - self._interval_start
        if elapsed < self.interval:
            return self._level, 0
        intervals = math.floor(elapsed / self.interval)
        # Nothing finished in the interval: stuck if a call was in flight from
        # its start (it still is, then), idle otherwise.
        above = self._fastest > self.target if self._fastest is not None else self._busy_at_start
        level = self._clamp(self._level + (1 if above else -1))
        # The intervals after it saw no call start or finish: stuck while calls are in flight, idle otherwise.
        return self._clamp(level + (intervals - 1) * (1 if self._in_flight else -1)), intervals

    def _roll(self, now: float) -> None:
        level, intervals = self._rolled(now)
        if not intervals:
            return
        self._level = level
        self._interval_start += intervals * self.interval
        self._fastest = None
        self._busy_at_start = self._in_flight > 0
