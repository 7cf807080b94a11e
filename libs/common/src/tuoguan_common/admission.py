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
wait in core first (grpc_server.core_queue): holds took 40-50 ms in the
handler while their callers waited seconds. So, apart from the latency's
rule, while the call at the head of core's queue has waited there longer
than ``core_wait_limit`` (CoreWait), every new call is turned away. A share
would not do: refused or not, every call waiting there is taken in turn.
The wait, not the count: a count that drains in 50 ms on one machine takes
a second on a slower one, and a closed loop of callers (the bench's 64)
keeps a steady count in core however fast each is served: a limit of 30
calls turned every one of them away, for good, on a machine that served
them in 50 ms.

Not thread-safe: one instance lives on one event loop.
"""
from __future__ import annotations

import math
import random
import time
from collections import deque
from collections.abc import Callable

from . import metrics

DEFAULT_INTERVAL = 0.1
STEP = 0.1
CEILING = 0.9
WAITING_READ_INTERVAL = 0.05
# How long the gauge shows that every call is turned away after the reading
# that decided it: past that, no call has come to be turned away.
CORE_DECISION_SHOWN = 1.0


class CoreWait:
    """How long the call at the head of gRPC core's queue has waited there:
    the wait that queue imposes now (CoDel's sojourn time, read in core).
    ``read`` returns (calls waiting, calls taken since the server started),
    a few hundred µs each (grpc_server.core_queue).

    Core hands a method's calls over in the order they came, so the call at
    the head is call number taken + 1 of those begun (across methods, about:
    the hot method's calls are nearly all of them in a surge), and it had
    arrived by the first reading that counted that many begun: its age is
    known to within the interval between readings, and never overstated.
    Measured, not worked out from the count and a rate: how fast a process
    takes calls shows only while a queue stands, and a moderate load's
    queues pass (the process idles between them), so a rate learnt over them
    can be too low and a wait worked out from it too long
    (services/registration/README.md)."""

    def __init__(self, read: Callable[[], tuple[int, int]], clock: Callable[[], float] = time.monotonic):
        self._read = read
        self._clock = clock
        # (when, calls begun by then), oldest first, from the reading that
        # first counted the call at the head on.
        self._readings: deque[tuple[float, int]] = deque()

    def seconds(self) -> float:
        """Read core afresh, and remember when its calls were first counted."""
        now = self._clock()
        waiting, taken = self._read()
        begun = waiting + taken
        if not self._readings or begun > self._readings[-1][1]:
            self._readings.append((now, begun))
        while self._readings and self._readings[0][1] <= taken:
            self._readings.popleft()  # every call it counted has been taken
        return now - self._readings[0][0] if waiting and self._readings else 0.0


class LatencyAdmission:
    """``admit()`` before a call, ``started()`` and ``finished(latency)`` around
    each call admitted. ``target`` None or 0 admits every call. The interval
    is at least the target: a call in flight through a whole interval then
    took longer than the target."""

    def __init__(self, method: str, target: float | None, *, interval: float = DEFAULT_INTERVAL,
                 step: float = STEP, ceiling: float = CEILING, clock: Callable[[], float] = time.monotonic,
                 chance: Callable[[], float] = random.random,
                 core_queue: Callable[[], tuple[int, int]] | None = None, core_wait_limit: float = 0):
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
        self._core = CoreWait(core_queue, clock) if core_queue is not None and core_wait_limit > 0 else None
        self.core_wait_limit = core_wait_limit
        self._core_read_at = -math.inf
        self._core_too_long = False
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
        if self._core is not None:
            if now - self._core_read_at >= WAITING_READ_INTERVAL:
                self._core_read_at = now
                self._core_too_long = self._core.seconds() > self.core_wait_limit
            if self._core_too_long:
                return False
        return self._level == 0 or self._chance() >= self.refuse_probability

    def _scraped(self) -> float:
        """The share turned away now (from the metrics thread): all of them
        while the last reading of core, if recent, found its head waiting too
        long. Not read afresh: with no call coming, nobody is turned away, and
        an open stream (reflection, a health Watch) counts as waiting in core,
        its age growing while the api idles."""
        now = self._clock()
        if self._core is not None and self.target is not None and self._core_too_long \
                and now - self._core_read_at < CORE_DECISION_SHOWN:
            return 1.0
        return self._rolled(now)[0] * self.step

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
