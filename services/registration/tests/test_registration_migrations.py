"""Migration 0004 (one session per template and day) on a database that
already holds the doubled days the old publishing made: it cancels nothing,
detaches the later session of each pair from its template, and builds its
index beside the confirmations writing sessions, never in their way.
Migration 0005 builds the retention purge's indexes the same way; 0006 gives
doctors an English speciality."""
from __future__ import annotations

import datetime as dt
import time

import psycopg
import pytest
from registration.migrate import MIGRATIONS_DIR
from tuoguan_common.db import downgrade, drop_database, migrate
from tuoguan_common.testing import check_retention_indexes_migration, migrate_in_background, unique_database_url

pytestmark = pytest.mark.integration

INDEX = "sessions_one_per_template_day"
HEAD = "0006"
MONDAY, NEXT_MONDAY = dt.date(2026, 11, 30), dt.date(2026, 12, 7)


@pytest.fixture
def at_0003(infra):
    url = unique_database_url(infra, "registration")
    migrate(url, MIGRATIONS_DIR, "0003")
    yield url
    drop_database(url)


def a_doctor_and_template(conn: psycopg.Connection) -> tuple[str, str, str]:
    """Returns (doctor, department, template) ids."""
    department = conn.execute("INSERT INTO departments (code, name) VALUES ('THOR', '胸外科') RETURNING id").fetchone()[0]
    conn.execute("INSERT INTO title_fees VALUES ('chief', 5000)")
    doctor = conn.execute("INSERT INTO doctors (staff_code, department_id, name, title) "
                          "VALUES ('D1', %s, 'x', 'chief') RETURNING id", (department,)).fetchone()[0]
    template = conn.execute(
        "INSERT INTO session_templates (doctor_id, weekday, period, start_time, end_time, slot_minutes, "
        "capacity_per_slot) VALUES (%s, 1, 'afternoon', '14:00', '17:00', 30, 4) RETURNING id", (doctor,)).fetchone()[0]
    return str(doctor), str(department), str(template)


def a_session(conn: psycopg.Connection, doctor: str, department: str, template: str | None, day: dt.date,
              period: str, created_at: dt.datetime) -> str:
    return str(conn.execute(
        "INSERT INTO sessions (doctor_id, department_id, template_id, service_date, period, released_at, created_at) "
        "VALUES (%s, %s, %s, %s, %s, now(), %s) RETURNING id",
        (doctor, department, template, day, period, created_at)).fetchone()[0])


def index_state(conn: psycopg.Connection) -> bool | None:
    """Whether the index is valid; None when there is none."""
    row = conn.execute("SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                       "WHERE c.relname = %s", (INDEX,)).fetchone()
    return None if row is None else row[0]


def test_days_published_twice_keep_both_sessions_and_the_first_keeps_the_template(at_0003):
    t0 = dt.datetime(2026, 11, 16, 1, 0, tzinfo=dt.timezone.utc)
    with psycopg.connect(at_0003, autocommit=True) as conn:
        doctor, department, template = a_doctor_and_template(conn)
        # Published in the morning, the template moved to the afternoon, published again.
        first = a_session(conn, doctor, department, template, MONDAY, "morning", t0)
        doubled = a_session(conn, doctor, department, template, MONDAY, "afternoon", t0 + dt.timedelta(days=1))
        single = a_session(conn, doctor, department, template, NEXT_MONDAY, "afternoon", t0 + dt.timedelta(days=1))
        by_hand = a_session(conn, doctor, department, None, MONDAY, "evening", t0)
        # An earlier run whose build failed on those duplicates left an invalid index behind.
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute(f"CREATE UNIQUE INDEX CONCURRENTLY {INDEX} ON sessions (template_id, service_date)")
        assert index_state(conn) is False

    migrate(at_0003, MIGRATIONS_DIR)
    with psycopg.connect(at_0003, autocommit=True) as conn:
        assert dict(conn.execute("SELECT id::text, template_id::text FROM sessions").fetchall()) == {
            first: template, doubled: None, single: template, by_hand: None}
        assert index_state(conn) is True
        with pytest.raises(psycopg.errors.UniqueViolation):
            a_session(conn, doctor, department, template, NEXT_MONDAY, "evening", t0)
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone() == (HEAD,)

    downgrade(at_0003, MIGRATIONS_DIR, "0003")
    with psycopg.connect(at_0003) as conn:
        assert index_state(conn) is None
        assert conn.execute("SELECT count(*) FROM sessions").fetchone() == (4,)
    migrate(at_0003, MIGRATIONS_DIR)
    with psycopg.connect(at_0003) as conn:
        assert index_state(conn) is True


def test_the_index_is_built_beside_writers_of_sessions_not_in_their_way(at_0003):
    """A plain CREATE INDEX behind an open transaction writing sessions would
    queue every later confirmation (each writes its session's queue number)
    behind itself; built concurrently, they go on while it waits."""
    t0 = dt.datetime(2026, 11, 16, 1, 0, tzinfo=dt.timezone.utc)
    with psycopg.connect(at_0003, autocommit=True) as conn:
        doctor, department, template = a_doctor_and_template(conn)
        busy = a_session(conn, doctor, department, template, MONDAY, "afternoon", t0)
        other = a_session(conn, doctor, department, template, NEXT_MONDAY, "afternoon", t0)
    with psycopg.connect(at_0003) as long_writer:
        long_writer.execute("UPDATE sessions SET last_queue_number = last_queue_number + 1 WHERE id = %s", (busy,))
        attempt, failures = migrate_in_background(at_0003, MIGRATIONS_DIR)
        time.sleep(1.0)
        with psycopg.connect(at_0003, autocommit=True) as confirmation:
            confirmation.execute("SET lock_timeout = '2s'")
            confirmation.execute("UPDATE sessions SET last_queue_number = last_queue_number + 1 WHERE id = %s",
                                 (other,))
            confirmation.execute("INSERT INTO sessions (doctor_id, department_id, service_date, period, released_at) "
                                 "VALUES (%s, %s, %s, 'morning', now())", (doctor, department, MONDAY))
        long_writer.commit()
    attempt.join(30)
    assert not attempt.is_alive() and failures == []
    with psycopg.connect(at_0003) as conn:
        assert index_state(conn) is True
        assert conn.execute("SELECT last_queue_number FROM sessions WHERE id = %s", (other,)).fetchone() == (1,)


def test_the_retention_indexes_are_built_beside_writers_and_dropped_on_downgrade(infra):
    """Migration 0005: the retention purge's indexes on inbox and
    idempotency_keys, built CONCURRENTLY on a database with rows."""
    url = unique_database_url(infra, "registration")
    try:
        check_retention_indexes_migration(url, MIGRATIONS_DIR, "0004")
    finally:
        drop_database(url)


def test_doctors_keep_their_speciality_and_get_an_empty_english_one_until_the_seed_fills_it(at_0003):
    with psycopg.connect(at_0003, autocommit=True) as conn:
        doctor, _, _ = a_doctor_and_template(conn)
        conn.execute("UPDATE doctors SET speciality = '肺癌微创手术' WHERE id = %s", (doctor,))
    migrate(at_0003, MIGRATIONS_DIR)
    with psycopg.connect(at_0003) as conn:
        assert conn.execute("SELECT speciality, speciality_en FROM doctors").fetchall() == [("肺癌微创手术", "")]
    downgrade(at_0003, MIGRATIONS_DIR, "0005")
    with psycopg.connect(at_0003) as conn:
        assert conn.execute("SELECT speciality FROM doctors").fetchall() == [("肺癌微创手术",)]
        assert conn.execute("SELECT count(*) FROM information_schema.columns "
                            "WHERE table_name = 'doctors' AND column_name = 'speciality_en'").fetchone() == (0,)
