"""The platform's budget of text messages per clock hour: a bound on the SMS bill.

Each phone gets a code a minute and ten a day, and each client address twenty
an hour (the gateway's send guard), but nothing bounded them all together: a
client with many addresses (an IPv6 /48 has 65,536 /64s), or any client while
the gateway's Redis is down, could make the hospital text as many numbers as
it liked, each message paid for. So identity counts the texts it sends in each
clock hour, in its database (one count across its replicas, with no Redis to
lose), and past ``per_hour`` refuses every code request until the hour ends:
sign-up and reset, for a number with an account or without one alike.
Every request answered as sent counts, also a reset for a number without an
account, which texts nothing: were it refused but not counted, the hour's
count would fill differently for numbers with and without accounts, and
whoever watched it fill (one probe, then one more request) would learn which
is which.

A clock hour, not a sliding one: one count row per hour, and a retry time the
patient can be told. Up to twice ``per_hour`` can go out across an hour's
turn; the budget bounds the bill, it does not pace it.

Pure: no I/O, time is a parameter.
"""
from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

from ..exceptions import SmsHourlyLimitReached

HOUR = dt.timedelta(hours=1)


@dataclass(frozen=True)
class TextBudget:
    # Texts identity sends in a clock hour, across its replicas; 0: no budget.
    per_hour: int = 2000
    # How long each hour's count is kept: a month and a day, to check the SMS
    # provider's monthly bill against.
    keep: dt.timedelta = dt.timedelta(days=32)

    @property
    def enabled(self) -> bool:
        return self.per_hour > 0

    @staticmethod
    def hour_of(now: dt.datetime) -> dt.datetime:
        """The clock hour ``now`` falls in (its start; an offset-aware time keeps its zone)."""
        return now.replace(minute=0, second=0, microsecond=0)

    def seconds_until_next_hour(self, now: dt.datetime) -> int:
        """Whole seconds until the next hour's budget, at least 1."""
        return max(1, math.ceil((self.hour_of(now) + HOUR - now).total_seconds()))

    def refusal(self, now: dt.datetime) -> SmsHourlyLimitReached:
        return SmsHourlyLimitReached(self.seconds_until_next_hour(now))

    def forget_before(self, now: dt.datetime) -> dt.datetime:
        return self.hour_of(now) - self.keep
