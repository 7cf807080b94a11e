"""The per-login sign-in throttle.

After ``max_failures`` wrong passwords for one login within ``window``, every
sign-in to that login is refused until the oldest failure leaves the window,
even with the right password: otherwise guessing would simply carry on. The
throttle counts logins that do not exist too, so it reveals nothing.
"""
from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass


@dataclass(frozen=True)
class SignInThrottle:
    max_failures: int = 5
    window: dt.timedelta = dt.timedelta(minutes=5)

    def window_start(self, now: dt.datetime) -> dt.datetime:
        """Failures at or before this moment no longer count: one ``window`` old has left it."""
        return now - self.window

    def is_locked(self, recent_failures: int) -> bool:
        return recent_failures >= self.max_failures

    def seconds_until_unlocked(self, oldest_failure: dt.datetime, now: dt.datetime) -> int:
        """How long a locked login waits, in whole seconds (at least 1): until
        its oldest failure in the window leaves it. At the limit no further
        failure is recorded, so the oldest one's leaving unlocks the login."""
        return max(1, math.ceil((oldest_failure + self.window - now).total_seconds()))
