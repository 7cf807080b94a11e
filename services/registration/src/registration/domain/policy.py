"""The configurable numbers of booking and publishing."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo


@dataclass(frozen=True)
class BookingPolicy:
    # An unpaid hold returns to stock after this long.
    hold_minutes: float = 10
    # HELD or CONFIRMED future bookings one patient may have at once: keeps
    # scalpers and scripts from sitting on the week's capacity.
    active_booking_cap: int = 5
    # Patients may cancel until this long before the visit; later, the place
    # could not be given to anyone else.
    cancel_cutoff_minutes: int = 120

    def hold_expires_at(self, now: dt.datetime) -> dt.datetime:
        return now + dt.timedelta(minutes=self.hold_minutes)

    def cancel_cutoff(self, starts_at: dt.datetime) -> dt.datetime:
        return starts_at - dt.timedelta(minutes=self.cancel_cutoff_minutes)


@dataclass(frozen=True)
class ReleasePolicy:
    # Patients can book this many days ahead; each day's sessions are released
    # at release_time local, days_ahead days before the service date.
    days_ahead: int = 14
    release_time: dt.time = dt.time(7, 0)
    timezone: str = "Asia/Shanghai"

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def local_date(self, moment: dt.datetime) -> dt.date:
        return moment.astimezone(self.zone).date()

    def local_moment(self, day: dt.date, time_of_day: dt.time) -> dt.datetime:
        """A wall-clock time on a calendar day, as an aware UTC datetime."""
        return dt.datetime.combine(day, time_of_day, tzinfo=self.zone).astimezone(dt.timezone.utc)
