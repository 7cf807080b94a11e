"""Migration 0006 (engineers' rate grades) on a database that already holds
accounts: existing engineers get no grade, the database refuses a grade that
is not the contract's or an account that is not an engineer's, and the
downgrade takes the grades and their history away again. Migration 0007
(token generations) leaves every existing token valid, runs beside the
sign-ins reading accounts, and gives up rather than queue writers behind a
long transaction writing accounts. Migration 0008 builds the retention
purge's indexes beside the writers of the inbox and the keys. Migration 0009
lets a phone without an account hold a (sign-up) code, and its downgrade
voids such codes. Migration 0010 counts texts per clock hour, never below 0.
Migration 0011 keeps one notice per booking, a pending one with its next attempt."""
from __future__ import annotations

import uuid

import psycopg
import pytest

from identity.migrate import MIGRATIONS_DIR
from tuoguan_common.db import downgrade, drop_database, migrate
from tuoguan_common.testing import check_retention_indexes_migration, migrate_in_background, unique_database_url

pytestmark = pytest.mark.integration

ENGINEER, DISPATCHER = str(uuid.uuid4()), str(uuid.uuid4())
HEAD = "0011"


@pytest.fixture
def at_0005(infra):
    url = unique_database_url(infra, "identity")
    migrate(url, MIGRATIONS_DIR, "0005")
    with psycopg.connect(url, autocommit=True) as conn:
        for account_id, login, role in ((ENGINEER, "engineer", "engineer"), (DISPATCHER, "dispatcher", "dispatcher")):
            conn.execute("INSERT INTO accounts (id, login, password_hash, display_name, roles) "
                         "VALUES (%s, %s, '$argon2id$v=19$x', 'x', ARRAY[%s])", (account_id, login, role))
    yield url
    drop_database(url)


def columns(conn: psycopg.Connection) -> set[str]:
    return {c for (c,) in conn.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'accounts'").fetchall()}


def tables(conn: psycopg.Connection) -> set[str]:
    return {t for (t,) in conn.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'").fetchall()}


def refused(conn: psycopg.Connection, sql: str, *args) -> str:
    with pytest.raises(psycopg.errors.CheckViolation) as caught:
        conn.execute(sql, args)
    return caught.value.diag.constraint_name


def test_existing_engineers_get_no_grade_and_only_the_contracts_grades_fit(at_0005):
    migrate(at_0005, MIGRATIONS_DIR)
    with psycopg.connect(at_0005, autocommit=True) as conn:
        assert conn.execute("SELECT login, grade FROM accounts ORDER BY login").fetchall() == \
            [("dispatcher", None), ("engineer", None)]
        assert conn.execute("SELECT count(*) FROM staff_grade_changes").fetchone() == (0,)
        for grade in ("junior", "intermediate", "senior", "expert"):
            conn.execute("UPDATE accounts SET grade = %s WHERE id = %s", (grade, ENGINEER))
        assert refused(conn, "UPDATE accounts SET grade = 'Senior' WHERE id = %s", ENGINEER) == "accounts_grade_known"
        assert refused(conn, "UPDATE accounts SET grade = 'senior' WHERE id = %s", DISPATCHER) == \
            "accounts_grade_engineers_only"
        conn.execute("INSERT INTO staff_grade_changes (account_id, grade, set_by, set_at) "
                     "VALUES (%s, 'senior', 'admin-id', now())", (ENGINEER,))
        refused(conn, "INSERT INTO staff_grade_changes (account_id, grade, set_by, set_at) "
                      "VALUES (%s, 'principal', 'admin-id', now())", ENGINEER)
        with pytest.raises(psycopg.errors.ForeignKeyViolation):
            conn.execute("INSERT INTO staff_grade_changes (account_id, grade, set_by, set_at) "
                         "VALUES (%s, 'senior', 'admin-id', now())", (str(uuid.uuid4()),))


def test_the_downgrade_drops_the_grades_and_their_history_and_the_upgrade_comes_back(at_0005):
    migrate(at_0005, MIGRATIONS_DIR)
    with psycopg.connect(at_0005, autocommit=True) as conn:
        conn.execute("UPDATE accounts SET grade = 'senior' WHERE id = %s", (ENGINEER,))
        conn.execute("INSERT INTO staff_grade_changes (account_id, grade, set_by, set_at) "
                     "VALUES (%s, 'senior', 'admin-id', now())", (ENGINEER,))
    downgrade(at_0005, MIGRATIONS_DIR, "0005")
    with psycopg.connect(at_0005) as conn:
        assert "grade" not in columns(conn)
        assert "staff_grade_changes" not in tables(conn)
        assert conn.execute("SELECT count(*) FROM accounts").fetchone() == (2,)
    migrate(at_0005, MIGRATIONS_DIR)
    with psycopg.connect(at_0005) as conn:
        assert "grade" in columns(conn) and "staff_grade_changes" in tables(conn)
        assert conn.execute("SELECT grade FROM accounts WHERE id = %s", (ENGINEER,)).fetchone() == (None,)


def test_a_migration_waiting_behind_a_long_transaction_gives_up_instead_of_holding_up_sign_ins(at_0005, monkeypatch):
    """0006 alters accounts: behind a transaction that reads the table (a report, a stuck client), it would
    wait, and every sign-in would queue behind it. It gives up after the lock timeout, changing nothing, and
    runs once the table is free."""
    monkeypatch.setenv("TUOGUAN_MIGRATION_LOCK_TIMEOUT_MS", "300")
    with psycopg.connect(at_0005) as reader:
        reader.execute("SELECT count(*) FROM accounts").fetchone()   # the transaction holds its lock
        attempt, failures = migrate_in_background(at_0005, MIGRATIONS_DIR)
        attempt.join(timeout=15)
        waited_on = attempt.is_alive()
    attempt.join()  # the reader has gone: a migration still waiting goes on now
    assert not waited_on, "the migration waited behind the transaction instead of giving up"
    assert len(failures) == 1 and "lock timeout" in str(failures[0])
    with psycopg.connect(at_0005) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone()[0] == "0005"
    migrate(at_0005, MIGRATIONS_DIR)
    with psycopg.connect(at_0005) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone()[0] == HEAD


def test_token_generations_start_with_no_account_withdrawn_and_let_sign_ins_read_on(at_0005, monkeypatch):
    """Existing tokens carry no generation (0) and stay valid: no account has a
    row. 0007 runs beside a transaction reading accounts (sign-ins go on); behind
    one writing accounts it gives up after the lock timeout (its foreign key
    locks out writers) and runs once that ends. Its downgrade drops the generations only."""
    migrate(at_0005, MIGRATIONS_DIR, "0006")
    monkeypatch.setenv("TUOGUAN_MIGRATION_LOCK_TIMEOUT_MS", "300")
    with psycopg.connect(at_0005) as writer:
        writer.execute("UPDATE accounts SET display_name = 'y' WHERE id = %s", (ENGINEER,))
        with pytest.raises(Exception, match="lock timeout"):
            migrate(at_0005, MIGRATIONS_DIR)
    with psycopg.connect(at_0005) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone()[0] == "0006"
    with psycopg.connect(at_0005) as reader:
        reader.execute("SELECT count(*) FROM accounts").fetchone()
        migrate(at_0005, MIGRATIONS_DIR)
    with psycopg.connect(at_0005, autocommit=True) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone()[0] == HEAD
        assert conn.execute("SELECT count(*) FROM account_token_generations").fetchone() == (0,)
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute("INSERT INTO account_token_generations VALUES (%s, 0, now())", (ENGINEER,))
        with pytest.raises(psycopg.errors.ForeignKeyViolation):
            conn.execute("INSERT INTO account_token_generations VALUES (%s, 1, now())", (str(uuid.uuid4()),))
        conn.execute("INSERT INTO account_token_generations VALUES (%s, 1, now())", (ENGINEER,))
    downgrade(at_0005, MIGRATIONS_DIR, "0006")
    with psycopg.connect(at_0005) as conn:
        assert "account_token_generations" not in tables(conn)
        assert conn.execute("SELECT count(*) FROM accounts").fetchone() == (2,)


def test_the_retention_indexes_are_built_beside_writers_and_dropped_on_downgrade(infra):
    """Migration 0008: the retention purge's indexes on inbox and
    idempotency_keys, built CONCURRENTLY on a database with rows."""
    url = unique_database_url(infra, "identity")
    try:
        check_retention_indexes_migration(url, MIGRATIONS_DIR, "0007")
    finally:
        drop_database(url)


def test_sign_up_codes_may_be_kept_for_phones_without_an_account_and_the_downgrade_voids_them(infra):
    url = unique_database_url(infra, "identity")
    digest = bytes(32)
    insert = ("INSERT INTO password_reset_codes (phone, account_id, code_digest, issued_at, expires_at) "
              "VALUES (%s, %s, %s, now(), now() + interval '10 minutes')")
    try:
        migrate(url, MIGRATIONS_DIR, "0008")
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("INSERT INTO accounts (id, login, password_hash, display_name, roles) "
                         "VALUES (%s, '13800000001', '$argon2id$v=19$x', 'x', ARRAY['patient'])", (ENGINEER,))
            conn.execute(insert, ("13800000001", ENGINEER, digest))
            conn.execute(insert, ("13800000002", None, None))
            assert refused(conn, insert, "13800000003", None, digest) == "password_reset_codes_check"
        migrate(url, MIGRATIONS_DIR, "0009")
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(insert, ("13800000003", None, digest))
            assert refused(conn, insert, "13800000004", ENGINEER, None) == "password_reset_codes_account_has_digest"
        downgrade(url, MIGRATIONS_DIR, "0008")
        with psycopg.connect(url, autocommit=True) as conn:
            kept = dict(conn.execute("SELECT phone, code_digest IS NOT NULL FROM password_reset_codes").fetchall())
            assert kept == {"13800000001": True, "13800000002": False, "13800000003": False}
            assert refused(conn, insert, "13800000005", None, digest) == "password_reset_codes_check"
    finally:
        drop_database(url)


def test_texts_are_counted_per_hour_never_below_nothing_and_the_downgrade_drops_the_counts(infra):
    url = unique_database_url(infra, "identity")
    try:
        migrate(url, MIGRATIONS_DIR, "0010")
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("INSERT INTO texts_per_hour VALUES ('2026-12-01 08:00+00', 3)")
            assert refused(conn, "INSERT INTO texts_per_hour VALUES (%s, %s)", "2026-12-01 09:00+00", -1) \
                == "texts_per_hour_texts_check"
            with pytest.raises(psycopg.errors.UniqueViolation):
                conn.execute("INSERT INTO texts_per_hour VALUES ('2026-12-01 08:00+00', 1)")
        downgrade(url, MIGRATIONS_DIR, "0009")
        with psycopg.connect(url, autocommit=True) as conn:
            assert conn.execute("SELECT to_regclass('texts_per_hour')").fetchone() == (None,)
    finally:
        drop_database(url)


def test_a_booking_has_one_notice_and_a_pending_one_its_next_attempt(infra):
    url = unique_database_url(infra, "identity")
    insert = ("INSERT INTO patient_notices (booking_id, kind, params, status, next_attempt_at, created_at) "
              "VALUES (%s, 'session_suspended', '{}', %s, %s, now())")
    try:
        migrate(url, MIGRATIONS_DIR, HEAD)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(insert, ("b-1", "pending", "2026-12-01 08:00+00"))
            with pytest.raises(psycopg.errors.UniqueViolation):
                conn.execute(insert, ("b-1", "sent", None))
            assert refused(conn, insert, "b-2", "pending", None) == "patient_notices_check"
            assert refused(conn, insert, "b-3", "sent", "2026-12-01 08:00+00") == "patient_notices_check"
            assert refused(conn, insert, "b-4", "lost", None) == "patient_notices_status_check"
        downgrade(url, MIGRATIONS_DIR, "0010")
        with psycopg.connect(url, autocommit=True) as conn:
            assert conn.execute("SELECT to_regclass('patient_notices')").fetchone() == (None,)
    finally:
        drop_database(url)
