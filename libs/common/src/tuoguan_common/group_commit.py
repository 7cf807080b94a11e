"""Group commit: concurrent calls share one transaction.

In a surge most of a small write's cost is per transaction, not per row: the
round trips, the commit's WAL flush, the pool checkout, the driver's work per
statement. ``GroupCommit`` lets the calls that arrive while a batch is being
written wait and go together in the next one. Nobody waits on a timer: with
one caller at a time every batch holds one call and costs what it did alone;
under load the batches grow by themselves.

There is no thread of its own (nothing to start or stop): the first caller to
find no batch running leads it, writes the calls queued so far, answers them
and hands the lead to the first caller still queued.
"""
from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


class _Waiter(Generic[Item]):
    __slots__ = ("item", "outcome", "leads", "woken")

    def __init__(self, item: Item):
        self.item = item
        self.outcome: object = None
        self.leads = False
        self.woken = threading.Event()


class GroupCommit(Generic[Item, Result]):
    """Runs ``write_batch`` over the calls waiting together.

    ``write_batch(items)`` returns one outcome per item, in order: the result,
    or an exception for that item alone (a refusal). If it raises, the batch
    is written again one call at a time, so one bad call (or a deadlock) costs
    the others a retry, never their answer.
    """

    def __init__(self, write_batch: Callable[[Sequence[Item]], Sequence[object]], *, max_batch: int = 128):
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._write_batch = write_batch
        self.max_batch = max_batch
        self._lock = threading.Lock()
        self._queued: list[_Waiter[Item]] = []
        self._busy = False

    def submit(self, item: Item) -> Result:
        waiter = _Waiter(item)
        with self._lock:
            self._queued.append(waiter)
            leads = not self._busy
            self._busy = True
        if not leads:
            waiter.woken.wait()
            if not waiter.leads:
                return self._answer(waiter)
        self._lead(waiter)
        return self._answer(waiter)

    @staticmethod
    def _answer(waiter: _Waiter[Item]) -> Result:
        if isinstance(waiter.outcome, BaseException):
            raise waiter.outcome
        return waiter.outcome  # type: ignore[return-value]

    def _lead(self, me: _Waiter[Item]) -> None:
        while True:
            with self._lock:
                batch = self._queued[: self.max_batch]
                del self._queued[: self.max_batch]
            for waiter, outcome in zip(batch, self._outcomes([w.item for w in batch])):
                waiter.outcome = outcome
                if waiter is not me:
                    waiter.woken.set()
            with self._lock:
                if not self._queued:
                    self._busy = False
                    return
                if me in batch:
                    successor = self._queued[0]
                    successor.leads = True
                    successor.woken.set()
                    return
            # Only when more than max_batch were queued ahead of the leader: it goes on.

    def _outcomes(self, items: list[Item]) -> Sequence[object]:
        try:
            outcomes = self._write_batch(items)
        except Exception as exc:  # noqa: BLE001 - each call gets its own answer below
            if len(items) == 1:
                return [exc]
            return [self._outcomes([item])[0] for item in items]
        if len(outcomes) != len(items):
            return [RuntimeError("write_batch gave a wrong number of outcomes")] * len(items)
        return outcomes
