"""Group commit: concurrent calls share one transaction.

In a surge most of a small write's cost is per transaction, not per row: the
round trips, the commit's WAL flush, the pool checkout, the driver's work per
statement. ``GroupCommit`` lets the calls that arrive while a batch is being
written wait and go together in the next one. Nobody waits on a timer: with
one caller at a time every batch holds one call and costs what it did alone;
under load the batches grow by themselves.

It lives on the api's event loop (a coroutine per call, no thread per call):
the first caller to find no batch being written starts the writer, which
writes the calls queued so far in a worker thread (the store is blocking
code), answers them, and goes on while calls keep queueing.
"""
from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from .db import unreachable

Item = TypeVar("Item")
Result = TypeVar("Result")


def outcomes_of(write_batch: Callable[[Sequence[Item]], Sequence[object]], items: list[Item], *,
                shared: Callable[[BaseException], bool] = unreachable) -> list[object]:
    """One outcome per item: its result or its exception. A batch that fails
    as a whole is written again one item at a time, so one bad item (or a
    deadlock) costs the others a retry, never their answer; a failure that
    ``shared`` says is every item's (the database is down) is every item's
    answer at once, rather than a wait per item."""
    try:
        outcomes = list(write_batch(items))
    except Exception as exc:  # noqa: BLE001 - each call gets its own answer below
        if len(items) == 1 or shared(exc):
            return [exc] * len(items)
        return [outcomes_of(write_batch, [item], shared=shared)[0] for item in items]
    if len(outcomes) != len(items):
        return [RuntimeError("write_batch gave a wrong number of outcomes")] * len(items)
    return outcomes


class GroupCommit(Generic[Item, Result]):
    """Runs ``write_batch`` over the calls waiting together.

    ``write_batch(items)`` is blocking code that returns one outcome per item,
    in order: the result, or an exception for that item alone (a refusal).
    """

    def __init__(self, write_batch: Callable[[Sequence[Item]], Sequence[object]], *, max_batch: int = 128,
                 shared: Callable[[BaseException], bool] = unreachable):
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._write_batch = write_batch
        self._shared = shared
        self.max_batch = max_batch
        # Each call with its context: a batch runs in its first caller's, so
        # its database spans join that caller's trace (alone, a call's own).
        self._queued: list[tuple[Item, asyncio.Future, contextvars.Context]] = []
        # The batch writer while one runs (held, so the task is not collected mid-batch).
        self._writer: asyncio.Task | None = None

    async def submit(self, item: Item) -> Result:
        loop = asyncio.get_running_loop()
        answer = loop.create_future()
        self._queued.append((item, answer, contextvars.copy_context()))
        if self._writer is None:
            self._writer = loop.create_task(self._write())
        return await answer

    async def _write(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._queued:
                # A caller that gave up while queued (its deadline passed, it
                # hung up) is not written for: a hold nobody will pay for would
                # only take a place until it expires. A retry with its key writes it.
                self._queued = [queued for queued in self._queued if not queued[1].done()]
                batch = self._queued[: self.max_batch]
                del self._queued[: self.max_batch]
                if not batch:
                    break
                write = functools.partial(outcomes_of, self._write_batch, [item for item, _, _ in batch],
                                          shared=self._shared)
                try:
                    outcomes = await loop.run_in_executor(None, batch[0][2].run, write)
                except asyncio.CancelledError:  # the server is stopping: nobody is left waiting
                    for _, answer, _ in batch + self._queued:
                        answer.cancel()
                    self._queued.clear()
                    raise
                except Exception as exc:  # noqa: BLE001 - no thread to write in (shutting down): say so to each
                    outcomes = [exc] * len(batch)
                for (_, answer, _), outcome in zip(batch, outcomes):
                    if answer.done():  # the caller gave up (cancelled); the write stands
                        continue
                    if isinstance(outcome, BaseException):
                        answer.set_exception(outcome)
                    else:
                        answer.set_result(outcome)
        finally:
            self._writer = None
