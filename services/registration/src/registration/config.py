"""Registration's own settings, read from the environment once at start-up."""
from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tuoguan_common.config import env_number
from tuoguan_common.payment_tickets import PaymentTickets

from .domain.policy import BookingPolicy, ReleasePolicy


def _time_of_day(env: Mapping[str, str], name: str, default: dt.time) -> dt.time:
    raw = env.get(name)
    if not raw:
        return default
    try:
        return dt.time.fromisoformat(raw)
    except ValueError as exc:
        raise SystemExit(f"{name} must be HH:MM, got {raw!r}") from exc


@dataclass(frozen=True)
class RegistrationConfig:
    booking: BookingPolicy = field(default_factory=BookingPolicy)
    release: ReleasePolicy = field(default_factory=ReleasePolicy)
    # Worker timers, in seconds.
    expiry_interval: float = 1.0
    publish_interval: float = 3600.0
    gauge_interval: float = 15.0
    # The most holds one transaction writes in a surge.
    hold_batch_max: int = 128
    # Holds slower than this (the fastest of each 0.1 s, or of each target if
    # longer) make the api turn a growing share of new holds away
    # (tuoguan_common.admission); 0: never.
    hold_latency_target: float = 0.05
    # While the call at the head of gRPC core's queue, before any handler, has
    # waited there longer than this, every new hold is turned away
    # (tuoguan_common.admission); 0: not looked at.
    hold_core_wait_limit: float = 0.25
    # Signs the payment ticket of each hold (None: holds come without one).
    payment_tickets: PaymentTickets | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> RegistrationConfig:
        env = os.environ if env is None else env
        if env.get("REGISTRATION_HOLD_CALLS_WAITING_LIMIT"):
            # A count of calls stood for a wait that differs tenfold between
            # machines: an operator who set it must choose the wait instead.
            raise SystemExit("REGISTRATION_HOLD_CALLS_WAITING_LIMIT is replaced by "
                             "REGISTRATION_HOLD_CORE_WAIT_LIMIT_MS (docs/deploy.md)")

        def number(name: str, default, kind=int, minimum=0):
            return env_number(name, default, kind, env, minimum=minimum)

        booking = BookingPolicy(
            hold_minutes=number("REGISTRATION_HOLD_MINUTES", BookingPolicy.hold_minutes, float, minimum=0.05),
            active_booking_cap=number("REGISTRATION_ACTIVE_BOOKING_CAP", BookingPolicy.active_booking_cap, minimum=1),
            cancel_cutoff_minutes=number("REGISTRATION_CANCEL_CUTOFF_MINUTES", BookingPolicy.cancel_cutoff_minutes),
        )
        release = ReleasePolicy(
            days_ahead=number("REGISTRATION_DAYS_AHEAD", ReleasePolicy.days_ahead, minimum=1),
            release_time=_time_of_day(env, "REGISTRATION_RELEASE_TIME", ReleasePolicy.release_time),
            timezone=env.get("REGISTRATION_TIMEZONE") or ReleasePolicy.timezone,
        )
        try:
            ZoneInfo(release.timezone)
        except ZoneInfoNotFoundError as exc:
            raise SystemExit(f"REGISTRATION_TIMEZONE: unknown time zone {release.timezone!r}") from exc
        return cls(
            booking=booking,
            release=release,
            expiry_interval=number("REGISTRATION_EXPIRY_INTERVAL_SECONDS", cls.expiry_interval, float, 0.05),
            publish_interval=number("REGISTRATION_PUBLISH_INTERVAL_SECONDS", cls.publish_interval, float, 1),
            gauge_interval=number("REGISTRATION_GAUGE_INTERVAL_SECONDS", cls.gauge_interval, float, 1),
            hold_batch_max=number("REGISTRATION_HOLD_BATCH_MAX", cls.hold_batch_max, minimum=1),
            hold_latency_target=number("REGISTRATION_HOLD_LATENCY_TARGET_MS", cls.hold_latency_target * 1000,
                                       float) / 1000,
            hold_core_wait_limit=number("REGISTRATION_HOLD_CORE_WAIT_LIMIT_MS", cls.hold_core_wait_limit * 1000,
                                        float) / 1000,
            payment_tickets=PaymentTickets.from_env(env),
        )
