"""GroupCommit, the batching of concurrent writes: pure logic on an event loop, no I/O."""
from __future__ import annotations

import asyncio
import threading

import pytest
from tuoguan_common.group_commit import GroupCommit


class Refused(Exception):
    pass


class Recorder:
    """A blocking write_batch that records its batches; the first one can be
    held open (it runs in a worker thread) so the calls made meanwhile queue."""

    def __init__(self, *, hold_first: bool = False, fail_batches_over: int | None = None):
        self.batches: list[list[int]] = []
        self.release_first = threading.Event()
        if not hold_first:
            self.release_first.set()
        self.fail_batches_over = fail_batches_over

    def __call__(self, items):
        self.batches.append(list(items))
        if len(self.batches) == 1:
            assert self.release_first.wait(10)
        if self.fail_batches_over is not None and len(items) > self.fail_batches_over:
            raise RuntimeError("the transaction failed (a deadlock, say)")
        return [Refused(item) if item < 0 else item * 10 for item in items]


async def outcome(commit: GroupCommit, item: int):
    try:
        return await commit.submit(item)
    except Refused as exc:
        return ("refused", exc.args[0])


async def queued_behind_a_held_batch(commit: GroupCommit, recorder: Recorder, items: list[int]):
    """The first item's batch is held open until every other call has queued."""
    first = asyncio.ensure_future(outcome(commit, items[0]))
    while not recorder.batches:
        await asyncio.sleep(0.001)
    rest = [asyncio.ensure_future(outcome(commit, item)) for item in items[1:]]
    await asyncio.sleep(0.01)  # every later call is queued: the first batch is still open
    recorder.release_first.set()
    return await asyncio.gather(first, *rest)


def test_a_lone_call_is_a_batch_of_one():
    recorder = Recorder()
    commit = GroupCommit(recorder)

    async def main():
        return [await commit.submit(4), await commit.submit(5)]

    assert asyncio.run(main()) == [40, 50]
    assert recorder.batches == [[4], [5]]


def test_calls_made_while_a_batch_is_written_go_together_in_the_next():
    recorder = Recorder(hold_first=True)
    commit = GroupCommit(recorder)
    items = list(range(1, 21))
    assert asyncio.run(queued_behind_a_held_batch(commit, recorder, items)) == [i * 10 for i in items]
    assert recorder.batches == [[1], list(range(2, 21))]


def test_a_refusal_is_raised_in_its_own_caller_only():
    recorder = Recorder(hold_first=True)
    commit = GroupCommit(recorder)
    outcomes = asyncio.run(queued_behind_a_held_batch(commit, recorder, [1, 2, -3, 4]))
    assert outcomes == [10, 20, ("refused", -3), 40]


def test_a_failed_batch_is_written_again_one_call_at_a_time():
    recorder = Recorder(hold_first=True, fail_batches_over=1)
    commit = GroupCommit(recorder)
    assert asyncio.run(queued_behind_a_held_batch(commit, recorder, [1, 2, 3, 4])) == [10, 20, 30, 40]
    assert recorder.batches[1] == [2, 3, 4]
    assert recorder.batches[2:] == [[2], [3], [4]]


def test_a_call_that_fails_alone_gets_the_error():
    def broken(items):
        raise RuntimeError("database down")

    with pytest.raises(RuntimeError, match="database down"):
        asyncio.run(GroupCommit(broken).submit(1))


def test_batches_are_no_bigger_than_max_batch_and_everyone_is_answered():
    recorder = Recorder(hold_first=True)
    commit = GroupCommit(recorder, max_batch=5)
    items = list(range(1, 18))
    assert asyncio.run(queued_behind_a_held_batch(commit, recorder, items)) == [i * 10 for i in items]
    assert [len(b) for b in recorder.batches] == [1, 5, 5, 5, 1]
    assert [i for b in recorder.batches for i in b] == items


def test_a_wrong_number_of_outcomes_fails_each_call_rather_than_hanging():
    with pytest.raises(RuntimeError, match="wrong number"):
        asyncio.run(GroupCommit(lambda items: []).submit(1))


def test_many_concurrent_calls_all_get_their_own_answer_in_few_batches():
    batches = []

    def write(items):
        batches.append(len(items))
        return [i * 10 for i in items]

    commit = GroupCommit(write, max_batch=64)

    async def main():
        return await asyncio.gather(*(commit.submit(i) for i in range(2000)))

    assert asyncio.run(main()) == [i * 10 for i in range(2000)]
    assert sum(batches) == 2000 and len(batches) < 2000 / 8


def test_max_batch_must_be_positive():
    with pytest.raises(ValueError):
        GroupCommit(lambda items: items, max_batch=0)


def test_a_database_out_of_reach_fails_every_call_at_once_not_one_wait_each():
    import psycopg
    from tuoguan_common.group_commit import outcomes_of

    calls: list[list[int]] = []

    def down(items):
        calls.append(list(items))
        raise psycopg.OperationalError("connection refused")  # no SQLSTATE: the server never answered

    outcomes = outcomes_of(down, [1, 2, 3])
    assert calls == [[1, 2, 3]]
    assert len(outcomes) == 3 and all(isinstance(o, psycopg.OperationalError) for o in outcomes)

    def deadlocked(items):
        calls.append(list(items))
        if len(items) > 1:
            raise psycopg.errors.DeadlockDetected("deadlock detected")  # the server's answer: worth one at a time
        return [item * 10 for item in items]

    calls.clear()
    assert outcomes_of(deadlocked, [1, 2, 3]) == [10, 20, 30]
    assert calls == [[1, 2, 3], [1], [2], [3]]


def test_a_call_given_up_while_queued_is_not_written():
    """A caller that gave up (its deadline passed, it hung up) before its
    batch began is not written for: in a surge that hold would take a place
    nobody pays for, and its retry with the same key writes it then."""
    recorder = Recorder(hold_first=True)
    commit = GroupCommit(recorder)

    async def main():
        first = asyncio.ensure_future(outcome(commit, 1))
        while not recorder.batches:
            await asyncio.sleep(0.001)
        kept, abandoned = asyncio.ensure_future(outcome(commit, 2)), asyncio.ensure_future(outcome(commit, 3))
        await asyncio.sleep(0.01)
        abandoned.cancel()
        await asyncio.sleep(0.01)
        recorder.release_first.set()
        return await asyncio.gather(first, kept), abandoned.cancelled()

    assert asyncio.run(main()) == ([10, 20], True)
    assert recorder.batches == [[1], [2]]
