"""Publishing a schedule, as the office's PublishSchedule and the worker's
daily timer both do it."""
from __future__ import annotations

import datetime as dt

from tuoguan_common import metrics

from .domain import schedule
from .domain.policy import ReleasePolicy
from .store import Store


def publish_schedule(store: Store, release: ReleasePolicy, now: dt.datetime, *, days_ahead: int = 0,
                     release_now: bool = False) -> tuple[int, int]:
    """Creates the sessions and slots from tomorrow to ``days_ahead`` days ahead
    (0: the configured horizon); returns how many of each it created."""
    first, last = schedule.publish_window(release.local_date(now), days_ahead or release.days_ahead)
    planned = schedule.plan_sessions(store.templates_to_publish(), first, last, release, now,
                                     release_now=release_now)
    sessions, slots = store.publish(planned)
    if release_now:
        # Days published earlier and still waiting for their release time open too.
        store.release_now(first, last, now)
    metrics.REGISTRATION_SLOTS_PUBLISHED.inc(slots)
    return sessions, slots
