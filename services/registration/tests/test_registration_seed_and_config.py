"""The demo data loads twice without doubling anything; settings come from the environment."""
from __future__ import annotations

import datetime as dt
import json

import pytest
from registration.config import RegistrationConfig
from registration.seed import SEED_DATA, seed


@pytest.mark.integration
def test_seed_is_idempotent_and_publishes_two_weeks_released(database, store):
    data = json.loads(SEED_DATA.read_text("utf-8"))
    sessions, slots = seed(database, RegistrationConfig(), data)
    assert sessions > 0 and slots > 0
    assert seed(database, RegistrationConfig(), data) == (0, 0)
    departments = store.list_departments()
    assert len(departments) == 8
    assert {"胸外科", "乳腺外科", "肿瘤内科", "放疗科"} <= {d["name"] for d in departments}
    doctors = store.list_doctors(None)
    assert all(2 <= sum(1 for d in doctors if d["department_id"] == dep["id"]) <= 4 for dep in departments)
    assert {d["fee_fen"] for d in doctors} == {1000, 2000, 3000, 5000}
    now = dt.datetime.now(dt.timezone.utc)
    first = RegistrationConfig().release.local_date(now)
    bookable = store.list_slots(department_id=str(departments[0]["id"]), doctor_id=None, first=first,
                                last=first + dt.timedelta(days=14), now=now, only_available=True)
    assert bookable and all(s["booked"] == s["held"] == 0 for s in bookable)


def test_settings_come_from_the_environment_with_clear_errors():
    defaults = RegistrationConfig.from_env({})
    assert (defaults.booking.hold_minutes, defaults.booking.active_booking_cap) == (10, 5)
    assert (defaults.release.days_ahead, defaults.release.release_time) == (14, dt.time(7, 0))
    assert defaults.hold_latency_target == 0.05
    assert RegistrationConfig.from_env({"REGISTRATION_HOLD_LATENCY_TARGET_MS": "80"}).hold_latency_target == 0.08
    assert RegistrationConfig.from_env({"REGISTRATION_HOLD_LATENCY_TARGET_MS": "0"}).hold_latency_target == 0
    tuned = RegistrationConfig.from_env({"REGISTRATION_HOLD_MINUTES": "15", "REGISTRATION_RELEASE_TIME": "06:30",
                                         "REGISTRATION_CANCEL_CUTOFF_MINUTES": "60"})
    assert (tuned.booking.hold_minutes, tuned.booking.cancel_cutoff_minutes) == (15, 60)
    assert tuned.release.release_time == dt.time(6, 30)
    for bad in ({"REGISTRATION_HOLD_MINUTES": "ten"}, {"REGISTRATION_RELEASE_TIME": "7am"},
                {"REGISTRATION_TIMEZONE": "Mars/Olympus"}, {"REGISTRATION_ACTIVE_BOOKING_CAP": "0"},
                {"REGISTRATION_HOLD_LATENCY_TARGET_MS": "-5"}):
        with pytest.raises(SystemExit):
            RegistrationConfig.from_env(bad)
