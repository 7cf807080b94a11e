"""Migrations through PgBouncer in transaction mode, as docs/deploy.md puts it
in front of PostgreSQL and the chart's migrate Job connects: they run, and a
migration still gives up on a lock it waited for longer than
``TUOGUAN_MIGRATION_LOCK_TIMEOUT_MS``, in its transaction and in the
statements it runs outside it. The timeout was a startup parameter
(``options``), which PgBouncer refuses: no migrate Job could connect."""
from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

import psycopg
import pytest
import sqlalchemy.exc

from tuoguan_common.db import drop_database, migrate, migrate_service, migrations_dir
from tuoguan_common.net import free_port
from tuoguan_common.testing import unique_database_url

pytestmark = pytest.mark.integration

TIMEOUT_MS = 300


@pytest.fixture
def direct(infra):
    """A fresh database's URL on the test PostgreSQL (not through PgBouncer); dropped afterwards."""
    url = unique_database_url(infra, "pooled")
    yield url
    drop_database(url)


def version(url: str) -> str:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT version_num FROM alembic_version").fetchone()[0]


def lock_timeouts(pgbouncer, url: str) -> list[str]:
    """lock_timeout on each of the pool's server connections (what its next clients get)."""
    clients = pgbouncer.server_connections(url)
    try:
        return [client.execute("SHOW lock_timeout").fetchone()[0] for client in clients]
    finally:
        for client in clients:
            client.close()


@contextlib.contextmanager
def holding(url: str, statement: str, params: tuple = ()) -> Iterator[None]:
    """Another session's transaction, its locks taken by ``statement``, held
    until the block ends, or for 20 s at most: a migration that waited without
    a timeout then goes on, and the test fails instead of hanging."""
    holder = psycopg.connect(url)
    holder.execute(statement, params)
    pid = holder.info.backend_pid

    def end() -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("SELECT pg_terminate_backend(%s)", (pid,))

    limit = threading.Timer(20, end)
    limit.start()
    try:
        yield
    finally:
        limit.cancel()
        with contextlib.suppress(psycopg.Error):
            holder.close()


def gives_up_on_its_lock(url: str, migrations, monkeypatch) -> None:
    """Migrating ``url`` to the head fails on a lock within the (shortened) timeout."""
    monkeypatch.setenv("TUOGUAN_MIGRATION_LOCK_TIMEOUT_MS", str(TIMEOUT_MS))
    started = time.monotonic()
    with pytest.raises(sqlalchemy.exc.OperationalError) as failed:
        migrate(url, migrations)
    assert isinstance(failed.value.orig, psycopg.errors.LockNotAvailable), failed.value
    assert time.monotonic() - started < 10


def test_a_service_migrates_through_a_transaction_pooler(infra, direct, pgbouncer, monkeypatch):
    """billing's migrate step (python -m billing.migrate, the migrate Job) on a
    fresh database, every revision through PgBouncer: the transactional ones,
    the indexes built CONCURRENTLY and 0007's backfill in transactions of their own."""
    monkeypatch.setenv("BILLING_DATABASE_URL", pgbouncer.url(direct))
    monkeypatch.setenv("AMQP_URI", infra["amqp_uri"])
    migrate_service("billing")
    assert version(direct) == "0007"
    with psycopg.connect(direct) as conn:
        assert conn.execute("SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                            "WHERE c.relname IN ('inbox_handled_at', 'idempotency_keys_created_at', "
                            "'payments_failed_unheard') AND i.indisvalid").fetchone() == (3,)
        default = conn.execute("SHOW lock_timeout").fetchone()[0]
    # The migration's timeouts stayed in its own transactions: the pool's other clients wait as they did.
    assert lock_timeouts(pgbouncer, direct) == [default, default]


def test_the_migrate_step_takes_a_connection_of_its_own_when_given_one(infra, direct, monkeypatch):
    """The services reach billing through a pooler; the migrate step is given
    a direct URL (the chart's `migrations-database-url`, docs/deploy.md), so
    CREATE INDEX CONCURRENTLY keeps its lock timeout. It connects there alone:
    the services' URL here answers nothing."""
    monkeypatch.setenv("BILLING_DATABASE_URL", f"postgresql://postgres@127.0.0.1:{free_port()}/tuoguan_billing")
    monkeypatch.setenv("BILLING_MIGRATIONS_DATABASE_URL", direct)
    monkeypatch.setenv("AMQP_URI", infra["amqp_uri"])
    migrate_service("billing")
    assert version(direct) == "0007"


def test_a_migration_gives_up_on_a_table_another_session_holds(direct, pgbouncer, monkeypatch):
    """0007 alters payments; a long transaction holds payments ACCESS EXCLUSIVE."""
    billing = migrations_dir("billing")
    migrate(pgbouncer.url(direct), billing, "0006")
    with holding(direct, "LOCK TABLE payments IN ACCESS EXCLUSIVE MODE"):
        gives_up_on_its_lock(pgbouncer.url(direct), billing, monkeypatch)
    assert version(direct) == "0006"
    migrate(pgbouncer.url(direct), billing)
    assert version(direct) == "0007"


def test_a_statement_run_outside_the_migration_s_transaction_gives_up_too(direct, pgbouncer, monkeypatch):
    """registration 0004 detaches doubled sessions in a transaction of its own
    (in an autocommit block, committed before its index is built): a session
    row another transaction has locked stops it within the timeout, no longer."""
    registration = migrations_dir("registration")
    migrate(pgbouncer.url(direct), registration, "0003")
    with psycopg.connect(direct, autocommit=True) as conn:
        department = conn.execute("INSERT INTO departments (code, name) VALUES ('THOR', '胸外科') RETURNING id"
                                  ).fetchone()[0]
        conn.execute("INSERT INTO title_fees VALUES ('chief', 5000)")
        doctor = conn.execute("INSERT INTO doctors (staff_code, department_id, name, title) "
                              "VALUES ('D1', %s, 'x', 'chief') RETURNING id", (department,)).fetchone()[0]
        template = conn.execute(
            "INSERT INTO session_templates (doctor_id, weekday, period, start_time, end_time, slot_minutes, "
            "capacity_per_slot) VALUES (%s, 1, 'afternoon', '14:00', '17:00', 30, 4) RETURNING id",
            (doctor,)).fetchone()[0]
        doubled = [conn.execute(
            "INSERT INTO sessions (doctor_id, department_id, template_id, service_date, period, released_at, "
            "created_at) VALUES (%s, %s, %s, '2026-11-30', %s, now(), now() + make_interval(secs => %s)) "
            "RETURNING id", (doctor, department, template, period, n)).fetchone()[0]
            for n, period in enumerate(("morning", "afternoon"))]
    with holding(direct, "SELECT 1 FROM sessions WHERE id = %s FOR UPDATE", (doubled[1],)):
        gives_up_on_its_lock(pgbouncer.url(direct), registration, monkeypatch)
    assert version(direct) == "0003"
    with psycopg.connect(direct) as conn:
        default = conn.execute("SHOW lock_timeout").fetchone()[0]
    assert lock_timeouts(pgbouncer, direct) == [default, default]
    migrate(pgbouncer.url(direct), registration)
    with psycopg.connect(direct) as conn:
        assert conn.execute("SELECT template_id IS NULL FROM sessions ORDER BY created_at").fetchall() \
            == [(False,), (True,)]


def test_an_index_built_concurrently_gives_up_on_its_table_and_leaves_the_pool_as_it_was(
        direct, pgbouncer, monkeypatch):
    """CREATE INDEX CONCURRENTLY cannot run in a transaction: its timeout is
    the session's, set just before it and reset after it, failed or not
    (billing 0006 builds the retention indexes on inbox)."""
    billing = migrations_dir("billing")
    migrate(pgbouncer.url(direct), billing, "0005")
    with holding(direct, "LOCK TABLE inbox IN SHARE UPDATE EXCLUSIVE MODE"):
        gives_up_on_its_lock(pgbouncer.url(direct), billing, monkeypatch)
    assert version(direct) == "0005"
    with psycopg.connect(direct) as conn:
        default = conn.execute("SHOW lock_timeout").fetchone()[0]
    assert lock_timeouts(pgbouncer, direct) == [default, default]
