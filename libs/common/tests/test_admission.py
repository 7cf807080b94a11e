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


class Core:
    """gRPC core's queue as channelz shows it: calls arrive, the process takes
    them in turn (moved by hand)."""

    def __init__(self, clock: Clock):
        self.clock = clock
        self.waiting = 0
        self.taken = 0
        self.reads: list[float] = []
        self._owed = [0.0, 0.0]  # fractions of a call to arrive, to take

    def __call__(self) -> tuple[int, int]:
        self.reads.append(self.clock.now)
        return self.waiting, self.taken

    def tick(self, seconds: float, arrive_per_s: float, take_per_s: float) -> None:
        self._owed[0] += arrive_per_s * seconds
        self._owed[1] += take_per_s * seconds
        arrived, self._owed[0] = divmod(self._owed[0], 1)
        self.waiting += int(arrived)
        took = min(self.waiting, int(self._owed[1]))
        self._owed[1] = min(self._owed[1] - took, 1)  # an idle process saves up no takes
        self.waiting -= took
        self.taken += took


def gate_on(clock: Clock, core: Core, limit: float = 0.25) -> LatencyAdmission:
    return LatencyAdmission("TestMethod", 0.05, interval=0.1, clock=clock, chance=lambda: 0.99,
                            core_queue=core, core_wait_limit=limit)


def gated(waiting: int = 0) -> tuple[Clock, Core, LatencyAdmission]:
    """A gate on a core queue with ``waiting`` calls in it, and the hand-moved clock of both."""
    clock = Clock()
    core = Core(clock)
    core.waiting = waiting
    return clock, core, gate_on(clock, core)


def calls_over(gate: LatencyAdmission, clock: Clock, core: Core, seconds: float, *, arrive_per_s: float,
               take_per_s: float) -> list[bool]:
    """A call every 10 ms for ``seconds`` while calls arrive in core and the
    process takes them at these rates; whether each call was admitted."""
    admitted = []
    for _ in range(round(seconds / 0.01)):
        admitted.append(gate.admit())
        clock.now += 0.01
        core.tick(0.01, arrive_per_s, take_per_s)
    return admitted


def test_while_the_call_at_the_head_of_core_s_queue_has_waited_past_the_limit_every_new_call_is_turned_away():
    """grpc.aio leaves the calls it has not taken yet in gRPC core, where no
    handler's latency sees them: holds took 40-50 ms in the handler while
    their callers waited seconds."""
    clock, core, gate = gated(30)  # and the process takes 20 a second, as many as come: 1.5 s each
    admitted = calls_over(gate, clock, core, 0.6, arrive_per_s=20, take_per_s=20)
    assert admitted[:25] == [True] * 25, "the head has waited under 0.25 s"
    assert admitted[31:] == [False] * 29, "from the reading after it passed 0.25 s on"
    assert gate.refuse_probability == 0, "the latency's rule is not moved: the handlers are fast"
    assert gauge() == 1.0
    assert 10 <= len(core.reads) <= 15, "read every 50 ms, not on every call (and once for the gauge)"
    # The queue taken at 2,000 a second: gone at the next reading, and every call admitted again.
    core.tick(0.05, 20, 2000)
    clock.now += 0.05
    assert gate.admit()
    assert gauge() == 0


def test_a_closed_loop_of_callers_keeps_calls_in_core_but_served_in_time_they_are_all_admitted():
    """The bench's 64 callers, each calling again as soon as answered, kept
    about 32 calls in each of two replicas' cores; a limit of 30 calls turned
    every one of them away for good, on a machine that took 600 a second from
    core (53 ms each). It is the wait that is limited, not the count."""
    clock, core, gate = gated(32)
    assert calls_over(gate, clock, core, 2.0, arrive_per_s=600, take_per_s=600) == [True] * 200
    assert core.waiting == 32
    assert gauge() == 0


def test_a_moderate_load_s_passing_queues_turn_nobody_away():
    """150 calls a second to a process that takes 300, with 40 more at once
    every half second: they wait at most 0.15 s, and nobody is turned away.
    The same load to a process that takes only 150 a second: the queue stands
    and grows, and every new call is turned away."""
    clock, core, gate = gated()
    admitted = []
    for _ in range(6):  # 3 s
        core.waiting += 40
        admitted += calls_over(gate, clock, core, 0.5, arrive_per_s=150, take_per_s=300)
    assert admitted == [True] * 300
    # The same load to a process that takes only 150 a second: the queue stands and grows.
    for _ in range(4):
        core.waiting += 40
        admitted = calls_over(gate, clock, core, 0.5, arrive_per_s=150, take_per_s=150)
    assert admitted == [False] * 50


def test_calls_waiting_through_a_blocked_event_loop_turn_calls_away_once_it_runs_again():
    clock, core, gate = gated(3)
    assert gate.admit()
    core.waiting = 200
    clock.now += 1.0  # the loop blocked: no call taken, no admit() run
    assert not gate.admit(), "the head call has waited a whole second"
    # Refusing is quick: the loop now takes the queue at 2,000 a second and it drains.
    assert calls_over(gate, clock, core, 0.5, arrive_per_s=100, take_per_s=2000)[-10:] == [True] * 10


def test_with_no_call_coming_the_gauge_shows_nobody_turned_away_though_a_call_stays_in_core():
    """An open stream (reflection, a health Watch) counts as waiting in core
    for as long as it is open, its age growing while the api idles; and once
    a surge is over no call comes to be turned away. The gauge shows the last
    reading's decision for a second, then nothing; the next call is judged
    afresh."""
    clock, core, gate = gated(1)  # the stream
    assert gate.admit()
    clock.now += 0.3
    # A call comes and is taken (admit() runs in its handler): core counts it begun and taken.
    core.taken += 1
    assert gate.admit(), "the stream is not taken for a call waiting at the head"
    clock.now += 2.0  # idle: nothing begins, the stream stays
    assert gauge() == 0
    # 50 calls come behind a busy loop; the first is taken.
    core.waiting, core.taken = 1 + 50 - 1, core.taken + 1
    assert gate.admit(), "a queue first seen: its head has waited nothing yet"
    clock.now += 0.3
    core.waiting, core.taken = core.waiting - 1, core.taken + 1
    assert not gate.admit(), "the head has waited 0.3 s"
    assert gauge() == 1.0
    clock.now += 1.01  # no call since: nobody is being turned away
    assert gauge() == 0


def test_calls_waiting_in_core_turn_calls_away_from_the_next_read_only():
    clock, core, gate = gated(5)
    assert gate.admit()
    clock.now += 0.26  # nothing taken: the head has waited 0.26 s
    assert not gate.admit()
    core.waiting, core.taken = 0, core.taken + 5  # taken all at once
    clock.now += 0.01
    assert not gate.admit(), "not read again yet"
    clock.now += 0.041  # 51 ms after the last read
    assert gate.admit()


def test_without_a_limit_or_a_target_calls_waiting_in_core_are_not_looked_at():
    clock = Clock()
    core = Core(clock)
    core.waiting = 500
    for target, limit in ((0.05, 0), (None, 0.25)):
        gate = LatencyAdmission("TestMethod", target, interval=0.1, clock=clock, chance=lambda: 0.5,
                                core_queue=core, core_wait_limit=limit)
        for _ in range(5):
            interval_of(gate, clock, [0.01])
        assert gate.admit() and gate.refuse_probability == 0
        assert gauge() == 0
    assert not core.reads
