"""PostgreSQL: one database per service, a connection pool, Alembic migrations.

The pool is built at start-up by the process (api or worker) and handed to
the service's store; nothing connects at import time.
"""
from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
from pathlib import Path
from typing import Iterable, Iterator
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg.rows import dict_row
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from psycopg_pool import ConnectionPool, PoolTimeout

from .config import migrations_database_url

log = logging.getLogger(__name__)
_tracer = trace.get_tracer(__name__)


def not_reached(exc: BaseException) -> bool:
    """The work never reached the database: it could not be reached, or the
    pool gave no connection in time. Nothing about the work itself is known."""
    return isinstance(exc, PoolTimeout) or unreachable(exc)


def unreachable(exc: BaseException) -> bool:
    """The database cannot be reached (a lost connection, a pool that gives
    none): every item would fail the same way, each after its own wait. An
    error the server answered (a deadlock, a constraint) carries a SQLSTATE
    and concerns the batch's contents: those are worth one at a time."""
    return isinstance(exc, psycopg.OperationalError) and getattr(exc, "sqlstate", None) is None


# Answers that say nothing about the work itself: the same transaction may
# succeed when tried again.
_TRANSIENT_SQLSTATES = frozenset({
    "40001",  # serialization_failure
    "40P01",  # deadlock_detected
    "55P03",  # lock_not_available (lock_timeout, NOWAIT)
    "57P01", "57P02", "57P03",  # admin_shutdown, crash_shutdown, cannot_connect_now (a restart)
    "25006",  # read_only_sql_transaction: a primary demoted by a failover
    # query_canceled: statement_timeout, or a cancel (pg_cancel_backend, a failover's
    # tooling): the same statement may well finish in time when tried again.
    "57014",
    # idle_session_timeout: the server ended a connection the pool kept idle; a new one will do.
    "57P05",
})
# Connection exception; insufficient resources (too many connections, out of memory, disk full).
_TRANSIENT_SQLSTATE_CLASSES = ("08", "53")


def transient(exc: BaseException) -> bool:
    """A database failure worth trying the work again for, judged by its
    SQLSTATE rather than psycopg's class: an OperationalError may repeat
    every time (54000, an index row too large), and a server made read-only
    by a failover refuses writes with an InternalError (25006). No SQLSTATE:
    only when the database could not be reached, or the pool gave no
    connection in time."""
    if isinstance(exc, PoolTimeout) or unreachable(exc):
        return True
    state = getattr(exc, "sqlstate", None) if isinstance(exc, psycopg.Error) else None
    return bool(state) and (state in _TRANSIENT_SQLSTATES or state.startswith(_TRANSIENT_SQLSTATE_CLASSES))


def pg_array(values: Iterable[object]) -> str:
    """An array parameter as PostgreSQL's array literal, for ``%s::<type>[]``.

    psycopg dumps a Python list element by element in Python, with a type
    lookup per list: in the batch statements of a surge (a dozen arrays of a
    batch's rows) that was most of the statement's cost on the client, ten
    times this. Elements are str()'d (a uuid, a number, an aware datetime, a
    bool, a JSON text) and quoted; bytes are written as bytea's hex; None is NULL.
    """
    return "{" + ",".join("NULL" if v is None else '"' + _element(v) + '"' for v in values) + "}"


def _element(value: object) -> str:
    if isinstance(value, bytes):
        return "\\\\x" + value.hex()  # bytea's "\x" input, its backslash escaped for the array
    return str(value).replace("\\", "\\\\").replace('"', '\\"')


def _name_and_admin_url(url: str) -> tuple[str, str]:
    """The database a URL names, and the URL of the same server's maintenance database."""
    parts = urlsplit(url)
    return parts.path.lstrip("/"), urlunsplit(parts._replace(path="/postgres"))


def ensure_database(url: str) -> None:
    """Creates the service's database on its server when it does not exist."""
    name, admin_url = _name_and_admin_url(url)
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            # Two processes may race here at first start; the loser finds it made.
            with contextlib.suppress(psycopg.errors.DuplicateDatabase, psycopg.errors.UniqueViolation):
                conn.execute(f'CREATE DATABASE "{name}"')
                log.info("created database", extra={"database": name})


def drop_database(url: str) -> None:
    name, admin_url = _name_and_admin_url(url)
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def migrate(url: str, migrations_dir: Path, revision: str = "head") -> None:
    """Runs the service's Alembic migrations up to ``revision``."""
    from alembic import command
    from alembic.config import Config

    ensure_database(url)
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir))
    cfg.set_main_option("sqlalchemy.url", sqlalchemy_url(url))
    command.upgrade(cfg, revision)


def downgrade(url: str, migrations_dir: Path, revision: str) -> None:
    """Takes the service's database back down to ``revision`` (migration tests)."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir))
    cfg.set_main_option("sqlalchemy.url", sqlalchemy_url(url))
    command.downgrade(cfg, revision)


def migrations_dir(service: str) -> Path:
    """``<service>/migrations`` inside the installed package ``<service>``."""
    spec = importlib.util.find_spec(service)
    if spec is None or spec.origin is None:
        raise RuntimeError(f"service package {service!r} is not installed")
    return Path(spec.origin).parent / "migrations"


def migrate_service(service: str) -> None:
    """The deploy-time step of ``python -m <service>.migrate``: the service's own
    database (through ``migrations_database_url``) to the latest revision, and the queues
    its worker consumes declared on the broker before any event is published."""
    from .topology import declare_event_queues

    migrate(migrations_database_url(service), migrations_dir(service))
    declare_event_queues(service, os.environ.get("AMQP_URI"))


def sqlalchemy_url(url: str) -> str:
    scheme, rest = url.split("://", 1)
    return f"postgresql+psycopg://{rest}" if scheme in ("postgresql", "postgres") else url


# How long a migration waits for a table's lock before it gives up (and the
# deploy step fails, to be run again): a schema change queued behind a long
# transaction holds up every query on the table behind it, sign-ins and
# bookings included, for as long as it waits.
MIGRATION_LOCK_TIMEOUT_MS = 10_000


def migration_lock_timeout_ms() -> int:
    """``TUOGUAN_MIGRATION_LOCK_TIMEOUT_MS`` (``MIGRATION_LOCK_TIMEOUT_MS``; 0 waits as long as it takes)."""
    from .config import env_number

    return env_number("TUOGUAN_MIGRATION_LOCK_TIMEOUT_MS", MIGRATION_LOCK_TIMEOUT_MS, minimum=0)


def set_lock_timeout(conn: psycopg.Connection) -> None:
    """The migration's lock timeout for the rest of the transaction ``conn``
    (a migration's psycopg connection) is in, and for it alone; it begins one
    if none is open and the connection is not in autocommit.

    Set in the transaction, not when connecting: a transaction pooler
    (PgBouncer, which docs/deploy.md puts in front) refuses an ``options``
    startup parameter, and a session's SET would stay on a pooled server
    connection that the next statement may not get and another client may."""
    conn.execute("SELECT set_config('lock_timeout', %s, true)", (str(migration_lock_timeout_ms()),), prepare=False)


def run_alembic_env() -> None:
    """The body of every service's ``migrations/env.py``: online, plain SQL,
    each migration in a transaction of its own whose lock waits last at most
    ``TUOGUAN_MIGRATION_LOCK_TIMEOUT_MS`` (``set_lock_timeout`` as the
    transaction begins; statements a migration runs outside it go through
    ``own_transaction`` or ``create_index_concurrently``)."""
    from alembic import context
    from sqlalchemy import create_engine, event, pool

    # No prepared statements: a migration runs each statement about once, and a
    # transaction pooler before 1.21 would lose them between transactions.
    engine = create_engine(context.config.get_main_option("sqlalchemy.url"), poolclass=pool.NullPool,
                           connect_args={"prepare_threshold": None})
    with engine.connect() as connection:
        # Each migration's transaction (transaction_per_migration) and the
        # version's; not an autocommit block's (no transaction to set it in).
        @event.listens_for(connection, "begin")
        def bounded(conn) -> None:
            driver = conn.connection.driver_connection
            if not driver.autocommit:
                set_lock_timeout(driver)

        context.configure(connection=connection, transaction_per_migration=True)
        with context.begin_transaction():
            context.run_migrations()


@contextlib.contextmanager
def own_transaction() -> Iterator:
    """In a migration, inside ``autocommit_block()``: one transaction of its own
    (committed on leaving, rolled back on an error), its lock waits bounded as
    the migration's are. For a statement that may run in a transaction but
    must not wait in the migration's (a backfill, a VALIDATE CONSTRAINT, after
    the ALTER's lock is let go): in autocommit it would wait for its locks as
    long as it takes. Yields the SQLAlchemy connection (``op.get_bind()``)."""
    from alembic import op

    bind = op.get_bind()
    driver = bind.connection.driver_connection
    assert driver.autocommit, "own_transaction() belongs inside autocommit_block()"
    driver.execute("BEGIN")
    try:
        set_lock_timeout(driver)
        yield bind
    except BaseException:
        with contextlib.suppress(Exception):
            driver.execute("ROLLBACK")
        raise
    driver.execute("COMMIT")


@contextlib.contextmanager
def _session_lock_timeout() -> Iterator[None]:
    """For a statement that cannot run in a transaction (CREATE or DROP INDEX
    CONCURRENTLY): the lock timeout set for the session just before it and
    reset after it, failed or not. On a direct or session-pooled connection
    this is the statement's own; a transaction pooler may run the statement on
    another server connection than the SET (it then waits without the
    timeout) and hand the SET's to another client until the RESET."""
    from alembic import op

    op.execute(f"SET lock_timeout = {migration_lock_timeout_ms()}")
    try:
        yield
    finally:
        with contextlib.suppress(Exception):
            op.execute("RESET lock_timeout")


def create_index_concurrently(name: str, definition: str, *, unique: bool = False) -> None:
    """In a migration: builds index ``name`` (``definition``: ``ON table (...)
    [WHERE ...]``) without stopping the table's writes, as CREATE INDEX
    CONCURRENTLY outside the migration's transaction. A build that failed
    before (the run stopped, a duplicate for a unique one) leaves an invalid
    index: it is dropped and built again."""
    from alembic import op
    from sqlalchemy import text

    with op.get_context().autocommit_block():
        invalid = op.get_bind().execute(text(
            "SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE c.relname = :name AND NOT i.indisvalid"), {"name": name}).first()
        with _session_lock_timeout():
            if invalid is not None:
                op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
            op.execute(f"CREATE {'UNIQUE ' if unique else ''}INDEX CONCURRENTLY IF NOT EXISTS {name} {definition}")


def drop_index_concurrently(name: str) -> None:
    """In a migration: drops index ``name`` without stopping the table's writes."""
    from alembic import op

    with op.get_context().autocommit_block(), _session_lock_timeout():
        op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")


class Database:
    """A pool of connections to one service's database."""

    def __init__(self, url: str, *, min_size: int = 1, max_size: int = 8, name: str = "db", timeout: float = 30.0):
        self.url = url
        self.dbname = urlsplit(url).path.lstrip("/")
        # timeout: how long a caller waits for a connection before PoolTimeout (psycopg_pool's default, 30 s).
        self.pool = ConnectionPool(
            url, min_size=min_size, max_size=max_size, open=False, name=name, timeout=timeout,
            kwargs={"row_factory": dict_row, "autocommit": False},
        )

    def open(self) -> "Database":
        self.pool.open(wait=True, timeout=30)
        return self

    def close(self) -> None:
        self.pool.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[psycopg.Cursor]:
        """A cursor inside one transaction: committed on success, rolled back on error."""
        # Not OpenTelemetry's own record of a failure: it exports the exception's
        # text, and PostgreSQL's names the values at fault ("Key (login)=(138...)
        # already exists"). The failure's type is enough to find its log line.
        with _tracer.start_as_current_span("db.transaction", kind=SpanKind.CLIENT, record_exception=False,
                                           set_status_on_exception=False) as span:
            span.set_attribute("db.system", "postgresql")
            span.set_attribute("db.name", self.dbname)
            try:
                with self.pool.connection() as conn:
                    with conn.cursor() as cur:
                        yield cur
            except Exception as exc:
                span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
                raise

    def warn_without_autovacuum(self) -> bool:
        """Logs a warning, and returns False, when the server runs without
        autovacuum. Its tables are then never analysed nor vacuumed: plans stay
        those made for the tables as they were, and dead rows pile up behind
        every counter. In the surge bench PostgreSQL's CPU per booking rose
        by 40 % in three minutes (bench/upkeep.py)."""
        with self.transaction() as cur:
            cur.execute("SELECT current_setting('autovacuum') = 'on' AS running")
            running = cur.fetchone()["running"]
        if not running:
            log.warning("PostgreSQL runs without autovacuum: tables are never analysed nor vacuumed, and queries "
                        "slow down as they grow; turn it on (docs/deploy.md)", extra={"database": self.dbname})
        return running
