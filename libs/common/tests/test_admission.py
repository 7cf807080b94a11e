"""LatencyAdmission's rule on a hand-moved clock: a standing queue raises the
share of calls turned away step by step, a passing burst does not, a stuck
queue counts as slow, and the share falls back to nothing once calls are
served in time again."""
from __future__ import annotations

import pytest
from tuoguan_common import metrics
from tuoguan_common.admission import LatencyAdmission


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def admission(clock: Clock, *, chance: float = 0.5, target: float | None = 0.05) -> LatencyAdmission:
    return LatencyAdmission("TestMethod", target, interval=0.1, step=0.1, ceiling=0.9, clock=clock,
                            chance=lambda: chance)


def interval_of(gate: LatencyAdmission, clock: Clock, latencies: list[float]) -> None:
    """One interval in which calls finish with these latencies."""
    start = clock.now
    for i, latency in enumerate(latencies, 1):
        gate.admit()
        gate.started()
        clock.now = start + 0.1 * i / (len(latencies) + 1)
        gate.finished(latency)
    clock.now = start + 0.1 + 1e-6  # just past the interval's end, whatever the float rounding


def after_slow_intervals(clock: Clock, intervals: int, *, chance: float = 0.5) -> LatencyAdmission:
    """A gate that has seen ``intervals`` intervals of holds past the target, rolled over."""
    gate = admission(clock, chance=chance)
    for _ in range(intervals):
        interval_of(gate, clock, [0.2])
    gate.admit()
    return gate


def gauge() -> float:
    """As Prometheus reads it when it scrapes."""
    return metrics.REGISTRY.get_sample_value("tuoguan_admission_refuse_probability", {"method": "TestMethod"})


def test_calls_served_in_time_are_all_admitted():
    clock = Clock()
    gate = admission(clock, chance=0.0)
    for _ in range(20):
        interval_of(gate, clock, [0.01, 0.04, 0.2])  # one slow call among fast ones: a burst, not a queue
    assert gate.refuse_probability == 0
    assert gate.admit()


def test_a_standing_queue_raises_the_share_turned_away_a_step_an_interval_up_to_the_ceiling():
    clock = Clock()
    gate = admission(clock)
    seen = []
    for _ in range(12):
        interval_of(gate, clock, [0.08, 0.3, 0.12])  # even the fastest waited past the target
        gate.admit()  # rolls the interval over
        seen.append(round(gate.refuse_probability, 2))
    assert seen == [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.9, 0.9, 0.9]
    assert gauge() == pytest.approx(0.9)


def test_a_call_is_turned_away_when_its_chance_falls_under_the_probability():
    clock = Clock()
    gate = after_slow_intervals(clock, 3, chance=0.25)
    assert gate.refuse_probability == pytest.approx(0.3)
    assert not gate.admit()  # 0.25 < 0.3
    assert after_slow_intervals(clock, 3, chance=0.35).admit()  # 0.35 >= 0.3


def test_the_share_falls_back_to_exactly_nothing_once_calls_are_fast_again():
    clock = Clock()
    gate = after_slow_intervals(clock, 7, chance=0.0)
    assert gate.refuse_probability == pytest.approx(0.7)
    for _ in range(7):
        interval_of(gate, clock, [0.01])
    gate.admit()
    assert gate.refuse_probability == 0  # whole steps: no float residue keeps refusing a call in a billion
    assert gauge() == 0


def test_a_queue_stuck_with_nothing_finishing_counts_as_slow_and_idleness_as_fast():
    clock = Clock()
    gate = admission(clock)
    gate.admit()
    gate.started()  # this call waits on a lock...
    clock.now += 0.05
    gate.admit()
    clock.now += 0.5  # ...through five intervals in which nothing else happens
    gate.admit()
    assert gate.refuse_probability == pytest.approx(0.4)  # the first interval it began in does not count
    gate.finished(0.55)
    clock.now += 0.1
    gate.admit()
    assert gate.refuse_probability == pytest.approx(0.5)  # it finished late
    clock.now += 0.3  # nothing in flight: idle, not slow
    gate.admit()
    assert gate.refuse_probability == pytest.approx(0.2)


def test_a_single_call_stuck_alone_raises_the_share_when_it_finishes():
    clock = Clock()
    gate = after_slow_intervals(clock, 5)
    assert gate.refuse_probability == pytest.approx(0.5)
    gate.started()
    clock.now += 1.0  # alone, through ten intervals, nobody else calling
    gate.finished(1.0)
    assert gate.refuse_probability == pytest.approx(0.9), "the intervals it waited through were slow, not idle"


def test_the_gauge_falls_back_when_the_surge_is_over_without_another_call():
    clock = Clock()
    gate = admission(clock)
    for _ in range(6):
        interval_of(gate, clock, [0.2])
    assert gauge() == pytest.approx(0.6)
    before = gate.refuse_probability
    clock.now += 2.0  # nobody calls any more
    assert gauge() == 0
    assert gate.refuse_probability == before, "reading the gauge changes nothing"


def test_a_target_longer_than_the_interval_lengthens_the_interval():
    clock = Clock()
    gate = LatencyAdmission("TestMethod", 0.3, interval=0.1, clock=clock, chance=lambda: 0.0)
    assert gate.interval == 0.3
    for _ in range(20):  # every call on time, each in flight longer than 0.1 s
        gate.admit()
        gate.started()
        clock.now += 0.25
        gate.finished(0.25)
    gate.admit()
    assert gate.refuse_probability == 0


def test_a_call_started_just_before_an_interval_ends_is_not_taken_for_a_stuck_queue():
    clock = Clock()
    gate = admission(clock)
    clock.now += 0.099
    gate.admit()
    gate.started()
    clock.now += 0.002
    gate.admit()
    assert gate.refuse_probability == 0


def test_without_a_target_every_call_is_admitted():
    clock = Clock()
    gate = admission(clock, chance=0.0, target=None)
    for _ in range(10):
        interval_of(gate, clock, [5.0])
    assert gate.admit() and gate.refuse_probability == 0


def test_a_nonsense_setting_is_refused():
    with pytest.raises(ValueError):
        LatencyAdmission("TestMethod", 0.05, step=0.5, ceiling=0.4)
    with pytest.raises(ValueError):
        LatencyAdmission("TestMethod", 0.05, interval=0)


def test_while_calls_wait_in_core_past_the_limit_every_new_call_is_turned_away_though_the_handlers_are_fast():
    """grpc.aio leaves the calls it has not taken yet in gRPC core, where no
    handler's latency sees them: holds took 40-50 ms in the handler while
    their callers waited seconds."""
    clock = Clock()
    waiting, reads = [30], []

    def in_core() -> int:
        reads.append(clock.now)
        return waiting[0]

    gate = LatencyAdmission("TestMethod", 0.05, interval=0.1, clock=clock, chance=lambda: 0.99,
                            waiting=in_core, waiting_limit=10)
    admitted = []
    for _ in range(20):  # 0.2 s of calls, 10 ms apart
        admitted.append(gate.admit())
        clock.now += 0.01
    assert admitted == [False] * 20
    assert gate.refuse_probability == 0, "the latency's rule is not moved: the handlers are fast"
    assert gauge() == 1.0
    assert 3 <= len(reads) <= 5, "read every 50 ms, not on every call"
    waiting[0] = 10  # at the limit: no longer a queue
    clock.now += 0.05
    assert gate.admit()
    assert gauge() == 0


def test_calls_waiting_in_core_turn_calls_away_from_the_next_read_only():
    clock = Clock()
    waiting = [0]
    gate = LatencyAdmission("TestMethod", 0.05, interval=0.1, clock=clock, chance=lambda: 0.99,
                            waiting=lambda: waiting[0], waiting_limit=10)
    assert gate.admit()
    waiting[0] = 50
    clock.now += 0.01
    assert gate.admit(), "not read again yet"
    clock.now += 0.041  # 51 ms after the last read
    assert not gate.admit()


def test_without_a_limit_or_a_target_calls_waiting_in_core_are_not_looked_at():
    clock = Clock()
    reads = []
    for target, limit in ((0.05, 0), (None, 10)):
        gate = LatencyAdmission("TestMethod", target, interval=0.1, clock=clock, chance=lambda: 0.5,
                                waiting=lambda: reads.append(1) or 500, waiting_limit=limit)
        for _ in range(5):
            interval_of(gate, clock, [0.01])
        assert gate.admit() and gate.refuse_probability == 0
        assert gauge() == 0
    assert not reads
