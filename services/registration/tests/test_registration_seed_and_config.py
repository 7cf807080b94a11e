"""The demo data loads twice without doubling anything; settings come from the environment."""
from __future__ import annotations

import datetime as dt
import json
import re

import pytest
from registration.config import RegistrationConfig
from registration.domain.model import BookingStatus
from registration.domain.rules import NOT_SERVICE_DAY, VISIT_NOT_STARTED
from registration.exceptions import BookingRefused
from registration.seed import SEED_DATA, seed

SHANGHAI = RegistrationConfig().release.zone


def _at(day: dt.date, hour: int, minute: int) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=SHANGHAI).astimezone(dt.timezone.utc)


def _today(store, now):
    """The office's day view of today, each session with its bookings."""
    today = RegistrationConfig().release.local_date(now)
    return [(s, store.session_bookings(str(s["id"]), now)[1]) for s in store.list_sessions(today, None, now)]


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
    # Each language in its own field: the Chinese pages showed the English in brackets.
    assert all(d["speciality"] and not re.search(r"[A-Za-z]", d["speciality"]) for d in doctors)
    assert all(d["speciality_en"] and d["speciality_en"].isascii() for d in doctors)
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
    assert defaults.hold_core_wait_limit == 0.25
    assert RegistrationConfig.from_env({"REGISTRATION_HOLD_CORE_WAIT_LIMIT_MS": "0"}).hold_core_wait_limit == 0
    assert RegistrationConfig.from_env({"REGISTRATION_HOLD_CORE_WAIT_LIMIT_MS": "400"}).hold_core_wait_limit == 0.4
    # The count it replaces is refused by name, not ignored: it meant a wait that differs between machines.
    with pytest.raises(SystemExit, match="REGISTRATION_HOLD_CORE_WAIT_LIMIT_MS"):
        RegistrationConfig.from_env({"REGISTRATION_HOLD_CALLS_WAITING_LIMIT": "30"})
    tuned = RegistrationConfig.from_env({"REGISTRATION_HOLD_MINUTES": "15", "REGISTRATION_RELEASE_TIME": "06:30",
                                         "REGISTRATION_CANCEL_CUTOFF_MINUTES": "60"})
    assert (tuned.booking.hold_minutes, tuned.booking.cancel_cutoff_minutes) == (15, 60)
    assert tuned.release.release_time == dt.time(6, 30)
    for bad in ({"REGISTRATION_HOLD_MINUTES": "ten"}, {"REGISTRATION_RELEASE_TIME": "7am"},
                {"REGISTRATION_TIMEZONE": "Mars/Olympus"}, {"REGISTRATION_ACTIVE_BOOKING_CAP": "0"},
                {"REGISTRATION_HOLD_LATENCY_TARGET_MS": "-5"}, {"REGISTRATION_HOLD_CORE_WAIT_LIMIT_MS": "-1"}):
        with pytest.raises(SystemExit):
            RegistrationConfig.from_env(bad)


@pytest.mark.integration
def test_seed_gives_today_a_started_and_a_later_session_whose_bookings_the_office_can_work(database, store):
    """Publishing opens days from tomorrow on: the demo data's own sessions today
    let a fresh `make up` show check-in and no-show, and a second seed the same
    day adds nothing."""
    data = json.loads(SEED_DATA.read_text("utf-8"))
    day = dt.date(2026, 3, 4)
    now = _at(day, 10, 10)
    seed(database, RegistrationConfig(), data, now=now)

    sessions = _today(store, now)
    assert len(sessions) == 2
    (started, started_bookings), (later, later_bookings) = sorted(sessions, key=lambda s: s[0]["starts_at"])
    assert started["starts_at"] == _at(day, 9, 0) <= now < later["starts_at"] == _at(day, 10, 30)
    assert (started["booked"], later["booked"]) == (3, 2)
    bookings = started_bookings + later_bookings
    assert all(b["status"] == BookingStatus.CONFIRMED and b["fee_fen"] == 0 and b["queue_number"] for b in bookings)
    assert all(b["starts_at"] <= now for b in started_bookings)
    assert all(b["starts_at"] > now for b in later_bookings)
    assert len({b["patient_id"] for b in bookings}) == 5
    # Nobody else's day: the demo doctors have no weekly templates, and no template publishes today.
    assert all(s["doctor_id"] not in {t["doctor_id"] for t in store.list_templates(None)} for s, _ in sessions)

    # The office's two demonstrations work on them; their refusals stay what they were.
    with pytest.raises(BookingRefused) as refused:
        store.mark_no_show(str(later_bookings[0]["id"]), now)
    assert refused.value.reason == VISIT_NOT_STARTED
    assert store.mark_no_show(str(started_bookings[0]["id"]), now)["status"] == BookingStatus.NO_SHOW
    assert store.check_in(str(later_bookings[0]["id"]), day, now)["status"] == BookingStatus.CHECKED_IN
    with pytest.raises(BookingRefused) as refused:
        store.check_in(str(later_bookings[1]["id"]), day - dt.timedelta(days=1), now)
    assert refused.value.reason == NOT_SERVICE_DAY

    # `make up` again later the same day: nothing new, nothing booked twice.
    assert seed(database, RegistrationConfig(), data, now=_at(day, 15, 0)) == (0, 0)
    again = _today(store, now)
    assert [s["id"] for s, _ in again] == [s["id"] for s, _ in sorted(sessions, key=lambda s: s[0]["starts_at"])]
    assert sum(len(b) for _, b in again) == 5
    # The next day (published from the templates the day before) gets its own as well.
    tomorrow = _at(day + dt.timedelta(days=1), 8, 0)
    seed(database, RegistrationConfig(), data, now=tomorrow)
    demo_doctors = {s["doctor_id"] for s, _ in sessions}
    next_day = sorted((s for s in _today(store, tomorrow) if s[0]["doctor_id"] in demo_doctors),
                      key=lambda s: s[0]["starts_at"])
    assert [s["booked"] for s, _ in next_day] == [3, 2]


@pytest.mark.integration
@pytest.mark.parametrize("hour, minute, later", [(0, 5, True), (19, 40, True), (23, 40, False)])
def test_today_s_demo_sessions_fit_in_the_day_whenever_the_seed_runs(database, store, hour, minute, later):
    """Just after midnight the started session begins at 00:00; after 23:30 no
    whole slot is left for a later one, and the seed says so instead of failing."""
    data = json.loads(SEED_DATA.read_text("utf-8"))
    day = dt.date(2026, 3, 8)  # a Sunday: no weekly template has a session
    now = _at(day, hour, minute)
    seed(database, RegistrationConfig(), data, now=now)
    sessions = sorted(_today(store, now), key=lambda s: s[0]["starts_at"])
    assert len(sessions) == (2 if later else 1)
    started, bookings = sessions[0]
    assert _at(day, 0, 0) <= started["starts_at"] <= now and started["ends_at"] <= _at(day + dt.timedelta(days=1), 0, 0)
    assert len(bookings) == 3 and all(b["starts_at"] <= now for b in bookings)
    if later:
        assert now < sessions[1][0]["starts_at"] and sessions[1][0]["ends_at"] <= _at(day + dt.timedelta(days=1), 0, 0)
        assert sessions[1][0]["period"] == ("morning" if hour < 12 else "evening")
