"""GroupCommit, the batching of concurrent writes: pure logic with threads, no I/O."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from tuoguan_common.group_commit import GroupCommit


class Refused(Exception):
    pass


class Recorder:
    """A write_batch that records its batches; the first one can be held open
    so that the calls made meanwhile queue behind it."""

    def __init__(self, *, hold_first: bool = False, fail_batches_over: int | None = None):
        self.batches: list[list[int]] = []
        self.first_started = threading.Event()
        self.release_first = threading.Event()
        if not hold_first:
            self.release_first.set()
        self.fail_batches_over = fail_batches_over
        self._lock = threading.Lock()

    def __call__(self, items):
        with self._lock:
            self.batches.append(list(items))
            first = len(self.batches) == 1
        if first:
            self.first_started.set()
            assert self.release_first.wait(10)
        if self.fail_batches_over is not None and len(items) > self.fail_batches_over:
            raise RuntimeError("the transaction failed (a deadlock, say)")
        return [Refused(item) if item < 0 else item * 10 for item in items]


def test_a_lone_call_is_a_batch_of_one():
    recorder = Recorder()
    commit = GroupCommit(recorder)
    assert commit.submit(4) == 40
    assert commit.submit(5) == 50
    assert recorder.batches == [[4], [5]]


def run_queued_behind_a_held_batch(commit: GroupCommit, recorder: Recorder, items: list[int]):
    """The first item's batch is held open until every other call has queued."""
    with ThreadPoolExecutor(max_workers=len(items)) as pool:
        futures = [pool.submit(commit.submit, items[0])]
        assert recorder.first_started.wait(10)
        futures += [pool.submit(commit.submit, item) for item in items[1:]]
        # Every later call is queued (none can run while the first batch is open).
        deadline = threading.Event()
        while len(commit._queued) < len(items) - 1 and not deadline.wait(0.01):
            pass
        recorder.release_first.set()
        outcomes = []
        for future in futures:
            try:
                outcomes.append(future.result(timeout=10))
            except Refused as exc:
                outcomes.append(("refused", exc.args[0]))
    return outcomes


def test_calls_made_while_a_batch_is_written_go_together_in_the_next():
    recorder = Recorder(hold_first=True)
    commit = GroupCommit(recorder)
    items = list(range(1, 21))
    outcomes = run_queued_behind_a_held_batch(commit, recorder, items)
    assert outcomes == [i * 10 for i in items]
    assert recorder.batches[0] == [1]
    assert sorted(recorder.batches[1]) == list(range(2, 21))
    assert len(recorder.batches) == 2


def test_a_refusal_is_raised_in_its_own_caller_only():
    recorder = Recorder(hold_first=True)
    commit = GroupCommit(recorder)
    outcomes = run_queued_behind_a_held_batch(commit, recorder, [1, 2, -3, 4])
    assert outcomes == [10, 20, ("refused", -3), 40]
    with pytest.raises(Refused):
        commit.submit(-7)


def test_a_failed_batch_is_written_again_one_call_at_a_time():
    recorder = Recorder(hold_first=True, fail_batches_over=1)
    commit = GroupCommit(recorder)
    outcomes = run_queued_behind_a_held_batch(commit, recorder, [1, 2, 3, 4])
    assert outcomes == [10, 20, 30, 40]
    assert sorted(recorder.batches[1]) == [2, 3, 4]
    assert sorted(map(tuple, recorder.batches[2:])) == [(2,), (3,), (4,)]


def test_a_call_that_fails_alone_gets_the_error():
    def broken(items):
        raise RuntimeError("database down")

    commit = GroupCommit(broken)
    with pytest.raises(RuntimeError, match="database down"):
        commit.submit(1)


def test_batches_are_no_bigger_than_max_batch_and_everyone_is_answered():
    recorder = Recorder(hold_first=True)
    commit = GroupCommit(recorder, max_batch=5)
    items = list(range(1, 18))
    outcomes = run_queued_behind_a_held_batch(commit, recorder, items)
    assert outcomes == [i * 10 for i in items]
    assert max(len(b) for b in recorder.batches) == 5
    assert sorted(i for b in recorder.batches for i in b) == items


def test_a_wrong_number_of_outcomes_fails_each_call_rather_than_hanging():
    commit = GroupCommit(lambda items: [])
    with pytest.raises(RuntimeError, match="wrong number"):
        commit.submit(1)


def test_many_threads_hammering_all_get_their_own_answer():
    commit = GroupCommit(lambda items: [i * 10 for i in items], max_batch=16)
    with ThreadPoolExecutor(max_workers=32) as pool:
        results = list(pool.map(commit.submit, range(2000)))
    assert results == [i * 10 for i in range(2000)]


def test_max_batch_must_be_positive():
    with pytest.raises(ValueError):
        GroupCommit(lambda items: items, max_batch=0)
