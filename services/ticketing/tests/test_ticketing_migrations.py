"""Migration 0002 (worklogs may not overlap) on a database that already holds
worklogs: their ends are filled in, and worklogs that already overlap stop the
migration, naming how many, instead of being deleted or left to break it
halfway. Migration 0005 builds the retention purge's indexes beside the
writers of the inbox and the keys."""
from __future__ import annotations

import datetime as dt
import uuid

import psycopg
import pytest
from ticketing.migrate import MIGRATIONS_DIR
from ticketing_testkit import shanghai
from tuoguan_common.db import downgrade, drop_database, migrate
from tuoguan_common.testing import check_retention_indexes_migration, unique_database_url

pytestmark = pytest.mark.integration

T0 = shanghai(2025, 11, 4, 9, 0)
TICKET = str(uuid.uuid4())


@pytest.fixture
def at_0001(infra):
    url = unique_database_url(infra, "ticketing")
    migrate(url, MIGRATIONS_DIR, "0001")
    with psycopg.connect(url, autocommit=True) as conn:
        subsystem = conn.execute("INSERT INTO subsystems (code, name, criticality, team, service_hours) "
                                 "VALUES ('HIS', 'HIS', 'critical', 'apps', '24x7') RETURNING id").fetchone()[0]
        conn.execute("INSERT INTO tickets (id, number, kind, subsystem_id, title, impact, urgency, priority, status, "
                     "source, requester_id, reported_by_id, created_at, updated_at) VALUES (%s, 'T1', 'incident', "
                     "%s, 'x', 'low', 'low', 4, 'in_progress', 'portal', 'c', 'c', %s, %s)",
                     (TICKET, subsystem, T0, T0))
    yield url
    drop_database(url)


def alert_ticket(url: str, status: str, source: str, fingerprint: str) -> None:
    """A subsystem and one machine-opened ticket on it, ``TICKET`` numbered T1, as an older schema holds them."""
    with psycopg.connect(url, autocommit=True) as conn:
        subsystem = conn.execute("INSERT INTO subsystems (code, name, criticality, team, service_hours) "
                                 "VALUES ('HIS', 'HIS', 'critical', 'apps', '24x7') RETURNING id").fetchone()[0]
        conn.execute(
            "INSERT INTO tickets (id, number, kind, subsystem_id, title, impact, urgency, priority, status, "
            "source, requester_id, reported_by_id, created_at, updated_at, alert_fingerprint) VALUES "
            "(%s, 'T1', 'incident', %s, 'x', 'high', 'high', 1, %s, %s, 'd', 'd', %s, %s, %s)",
            (TICKET, subsystem, status, source, T0, T0, fingerprint))


def ticket_columns(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        return {c for (c,) in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'tickets'").fetchall()}


def add_worklog(url: str, engineer: str, start: dt.datetime, minutes: int) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO worklogs (id, ticket_id, engineer_id, grade, activity, started_at, minutes, "
                     "created_at) VALUES (%s, %s, %s, 'senior', 'repair', %s, %s, %s)",
                     (str(uuid.uuid4()), TICKET, engineer, start, minutes, start))


def test_existing_worklogs_get_their_end_and_the_rule_from_then_on(at_0001):
    add_worklog(at_0001, "eng-1", T0, 60)
    add_worklog(at_0001, "eng-1", T0 + dt.timedelta(minutes=60), 30)  # back to back
    add_worklog(at_0001, "eng-2", T0, 60)                             # someone else
    migrate(at_0001, MIGRATIONS_DIR)
    with psycopg.connect(at_0001) as conn:
        ends = conn.execute("SELECT ended_at FROM worklogs ORDER BY engineer_id, started_at").fetchall()
    assert [e for (e,) in ends] == [T0 + dt.timedelta(minutes=60), T0 + dt.timedelta(minutes=90),
                                    T0 + dt.timedelta(minutes=60)]
    with pytest.raises(psycopg.errors.ExclusionViolation) as caught:
        add_worklog(at_0001, "eng-2", T0 + dt.timedelta(minutes=59), 10)
    assert caught.value.diag.constraint_name == "worklogs_no_overlap"

    downgrade(at_0001, MIGRATIONS_DIR, "0001")
    with psycopg.connect(at_0001) as conn:
        assert "ended_at" not in columns(conn)
    migrate(at_0001, MIGRATIONS_DIR)


def columns(conn: psycopg.Connection) -> set[str]:
    return {c for (c,) in conn.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'worklogs'").fetchall()}


def test_worklogs_that_already_overlap_stop_the_migration(at_0001):
    add_worklog(at_0001, "eng-1", T0, 60)
    add_worklog(at_0001, "eng-1", T0 + dt.timedelta(minutes=30), 60)
    with pytest.raises(RuntimeError, match=r"1 pair\(s\) of recorded worklogs overlap"):
        migrate(at_0001, MIGRATIONS_DIR)
    with psycopg.connect(at_0001) as conn:
        # Nothing of 0002 stayed: the migration is one transaction.
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone() == ("0001",)
        assert "ended_at" not in columns(conn)
        assert conn.execute("SELECT count(*) FROM worklogs").fetchone() == (2,)


def test_open_device_alarms_take_the_fingerprint_their_clearance_looks_for(infra):
    from ticketing.domain.alerts import device_alarm_fingerprint

    url = unique_database_url(infra, "ticketing")
    migrate(url, MIGRATIONS_DIR, "0002")
    fingerprints = {  # before the upgrade -> after
        ("device:00:1A:2B:temperature_high", "new"): "device:00%3A1A%3A2B:temperature_high",
        ("device:FRZ-09:door_open", "assigned"): "device:FRZ-09:door_open",
        ("device:AA:BB:door_open", "closed"): "device:AA:BB:door_open",      # closed: history as it was
        ("3f0b2c7d9e1a4b56", "new"): "3f0b2c7d9e1a4b56",                     # Alertmanager's own
    }
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            subsystem = conn.execute("INSERT INTO subsystems (code, name, criticality, team, service_hours) "
                                     "VALUES ('BIOBANK', 'Biobank', 'critical', 'lab', '24x7') RETURNING id").fetchone()[0]
            for n, (fingerprint, status) in enumerate(fingerprints):
                conn.execute(
                    "INSERT INTO tickets (id, number, kind, subsystem_id, title, impact, urgency, priority, status, "
                    "source, requester_id, reported_by_id, created_at, updated_at, alert_fingerprint) VALUES "
                    "(%s, %s, 'incident', %s, 'x', 'high', 'high', 1, %s, 'device', 'd', 'd', %s, %s, %s)",
                    (str(uuid.uuid4()), f"T{n}", subsystem, status, T0, T0, fingerprint))
        migrate(url, MIGRATIONS_DIR)
        with psycopg.connect(url) as conn:
            got = dict(conn.execute("SELECT number, alert_fingerprint FROM tickets").fetchall())
        assert [got[f"T{n}"] for n in range(len(fingerprints))] == list(fingerprints.values())
        assert got["T0"] == device_alarm_fingerprint("00:1A:2B", "temperature_high")

        downgrade(url, MIGRATIONS_DIR, "0002")
        with psycopg.connect(url) as conn:
            restored = dict(conn.execute("SELECT number, alert_fingerprint FROM tickets").fetchall())
        assert [restored[f"T{n}"] for n in range(len(fingerprints))] == [f for f, _status in fingerprints]
    finally:
        drop_database(url)


def test_device_alarm_clearances_and_raise_times_come_with_0004_and_go_with_its_downgrade(infra):
    url = unique_database_url(infra, "ticketing")
    migrate(url, MIGRATIONS_DIR, "0003")

    def tables_and_columns() -> tuple[set[str], set[str]]:
        with psycopg.connect(url) as conn:
            tables = {t for (t,) in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'").fetchall()}
        return tables, ticket_columns(url)

    try:
        alert_ticket(url, "new", "device", "device:FRZ-09:door_open")
        migrate(url, MIGRATIONS_DIR)
        tables, columns = tables_and_columns()
        assert "device_alarm_clearances" in tables and "alert_raised_at" in columns
        with psycopg.connect(url, autocommit=True) as conn:
            # The alarm open across the upgrade has no raise time: its clearance resolves it as before.
            assert conn.execute("SELECT alert_raised_at FROM tickets").fetchall() == [(None,)]
            conn.execute("INSERT INTO device_alarm_clearances (fingerprint_prefix, cleared_at) "
                         "VALUES ('device:FRZ-09:', %s)", (T0,))
            with pytest.raises(psycopg.errors.UniqueViolation):  # one row per device
                conn.execute("INSERT INTO device_alarm_clearances (fingerprint_prefix, cleared_at) "
                             "VALUES ('device:FRZ-09:', %s)", (T0,))

        downgrade(url, MIGRATIONS_DIR, "0003")
        tables, columns = tables_and_columns()
        assert "device_alarm_clearances" not in tables and "alert_raised_at" not in columns
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT number, alert_fingerprint FROM tickets").fetchall() == \
                [("T1", "device:FRZ-09:door_open")]
        migrate(url, MIGRATIONS_DIR)
        assert "device_alarm_clearances" in tables_and_columns()[0]
    finally:
        drop_database(url)


def test_the_retention_indexes_are_built_beside_writers_and_dropped_on_downgrade(infra):
    """Migration 0005: the retention purge's indexes on inbox and
    idempotency_keys, built CONCURRENTLY on a database with rows."""
    url = unique_database_url(infra, "ticketing")
    try:
        check_retention_indexes_migration(url, MIGRATIONS_DIR, "0004")
    finally:
        drop_database(url)


def test_0006_lets_assignments_name_their_engineer_and_keeps_older_events_as_they_are(infra):
    url = unique_database_url(infra, "ticketing")
    migrate(url, MIGRATIONS_DIR, "0005")

    def event_columns() -> set[str]:
        with psycopg.connect(url) as conn:
            return {c for (c,) in conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = 'ticket_events'").fetchall()}

    try:
        alert_ticket(url, "assigned", "portal", "fp")
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("INSERT INTO ticket_events (ticket_id, at, kind, actor_id) VALUES (%s, %s, 'assigned', 'd')",
                         (TICKET, T0))
        migrate(url, MIGRATIONS_DIR)
        assert "assignee_id" in event_columns()
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT assignee_id FROM ticket_events").fetchall() == [(None,)]
        downgrade(url, MIGRATIONS_DIR, "0005")
        assert "assignee_id" not in event_columns()
        migrate(url, MIGRATIONS_DIR)
    finally:
        drop_database(url)


def test_0007_voids_the_worklogs_of_tickets_closed_unresolved_and_frees_their_time(infra):
    url = unique_database_url(infra, "ticketing")
    migrate(url, MIGRATIONS_DIR, "0006")
    duplicate, real = TICKET, str(uuid.uuid4())
    try:
        alert_ticket(url, "closed", "portal", "fp")   # closed, never resolved: a duplicate
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("INSERT INTO tickets (id, number, kind, subsystem_id, title, impact, urgency, priority, "
                         "status, source, requester_id, reported_by_id, created_at, updated_at) SELECT %s, 'T2', "
                         "kind, subsystem_id, title, impact, urgency, priority, 'in_progress', source, requester_id, "
                         "reported_by_id, created_at, updated_at FROM tickets WHERE id = %s", (real, duplicate))
        add_worklog(url, "eng-1", T0, 60)                                      # on the duplicate
        add_worklog(url, "eng-2", T0, 60)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("UPDATE worklogs SET ticket_id = %s WHERE engineer_id = 'eng-2'", (real,))
        migrate(url, MIGRATIONS_DIR)
        with psycopg.connect(url, autocommit=True) as conn:
            assert conn.execute("SELECT engineer_id, void FROM worklogs ORDER BY engineer_id").fetchall() == \
                [("eng-1", True), ("eng-2", False)]
        # The duplicate's hour is free: the same engineer logs it on the real ticket, once.
        add_worklog(url, "eng-1", T0, 60)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("UPDATE worklogs SET ticket_id = %s WHERE engineer_id = 'eng-1' AND NOT void", (real,))
        with pytest.raises(psycopg.errors.ExclusionViolation) as caught:
            add_worklog(url, "eng-1", T0 + dt.timedelta(minutes=30), 60)
        assert caught.value.diag.constraint_name == "worklogs_no_overlap"

        # Back to 0006 only once nothing would overlap with the void ones counted again.
        with pytest.raises(RuntimeError, match=r"1 pair\(s\) of worklogs overlap"):
            downgrade(url, MIGRATIONS_DIR, "0006")
        with psycopg.connect(url, autocommit=True) as conn:
            assert conn.execute("SELECT version_num FROM alembic_version").fetchone() == ("0007",)
            conn.execute("DELETE FROM worklogs WHERE void")
        downgrade(url, MIGRATIONS_DIR, "0006")
        with psycopg.connect(url) as conn:
            assert "void" not in columns(conn)
        migrate(url, MIGRATIONS_DIR)
    finally:
        drop_database(url)
