"""What identity remembers of its last sends of reset codes, so that a phone
number without an account is answered like one with an account.

A code is sent while the request waits (a failed send must be told), after
the code is committed and with no lock held, so the answer for an account's
phone takes as long as the SMS gateway does, and is refused while the gateway
fails. A phone without an account is sent nothing; to be answered alike it
waits as long as a recent send took (one drawn from the last ``keep``, so the
waits follow the gateway's own spread; ``first_seconds`` before any), and,
while the last send failed less than ``failing_for`` ago, it is refused as
that send was (after waiting as long as a failed send took). What still
differs: the first refusal of an outage, and the answers within
``failing_for`` after the gateway is back and before an account's send has
shown it (an account's phone is sent to and answered, a phone without one
refused). Each process remembers its own sends.

Pure: no I/O, times (monotonic seconds) are parameters.
"""
from __future__ import annotations

import random
import threading
from collections import deque
from dataclasses import dataclass
from typing import Callable, Sequence


@dataclass(frozen=True)
class Decoy:
    """How a phone without an account is answered: refused (``fails``) or not,
    after waiting ``seconds``."""

    fails: bool
    seconds: float


@dataclass(frozen=True)
class _Send:
    at: float
    sent: bool
    seconds: float


class RecentSends:
    def __init__(self, keep: int = 20, failing_for: float = 60.0,
                 choice: Callable[[Sequence[float]], float] = random.choice, first_seconds: float = 0.3):
        self.failing_for = failing_for
        # Before this process has sent anything (just started, just scaled up):
        # a typical send's time, not an instant answer that only a phone
        # without an account would get.
        self.first_seconds = first_seconds
        self._choice = choice
        self._sends: deque[_Send] = deque(maxlen=keep)
        self._lock = threading.Lock()

    def record(self, sent: bool, seconds: float, at: float) -> None:
        """A send that ended at ``at`` after ``seconds``: delivered or not."""
        with self._lock:
            self._sends.append(_Send(at=at, sent=sent, seconds=max(0.0, seconds)))

    def decoy(self, at: float) -> Decoy:
        """How to answer a phone without an account at ``at``."""
        with self._lock:
            sends = list(self._sends)
        if not sends:
            return Decoy(fails=False, seconds=self.first_seconds)
        last = sends[-1]
        fails = not last.sent and at - last.at < self.failing_for
        alike = [s.seconds for s in sends if s.sent is not fails]
        return Decoy(fails=fails, seconds=self._choice(alike) if alike else 0.0)
