"""Retention of the tables every service shares (``outbox.DDL``): sent
outbox rows, inbox rows and idempotency keys are deleted once they are older
than they can ever be needed. ``dead_letters`` is the operators' and stays.

Each service's worker purges its own database on a timer
(``nameko_support.RetentionPurge``); identity, which has no worker, from a
thread of its api (``PeriodicPurge``, started by ``api_main.run``). Every
deletion walks an index from the oldest rows, a batch of ``batch_rows`` per
statement, each batch its own short transaction, round after round over
the three tables until every table is done or the run's time is spent; the
next run carries on. One process purges a database at a time: each batch's
transaction takes a transaction advisory lock, and a run that finds it taken
is skipped (or, past its first batch, stops: the other process carries on).
Nothing is left on the session (no session lock, no session setting), so it
works the same through a transaction pooler (PgBouncer, docs/deploy.md).

Why the defaults are safe:

* Outbox, 7 days after it was sent. A row is read only by the relay until it
  is sent; once sent, only a person looking into an incident reads it. An
  unsent row is never deleted, however old (the relay still owes it).
* Inbox, 14 days after the event was handled. The row only stops a second
  delivery of the same event from applying it twice. Second deliveries come
  soon after the first: an event that fails is tried again at most
  ``nameko_support.MAX_ATTEMPTS`` (10) times over about 20 s (waits of 0.1 s
  doubling up to ``RETRY_MAX_SECONDS``, 5 s), or as configured, which is
  seconds to minutes; a message whose acknowledgement was lost comes back
  when its consumer's connection closes; a relay that crashed after the
  broker committed a batch but before marking it sent publishes the batch
  again on its next run (any replica's, within a second, or when the worker
  is back). Only a relay or a queue's consumers stopped for two weeks could
  deliver later, and TuoguanOutboxRelayStalled and TuoguanEventQueueUnconsumed
  page within minutes. An event an operator re-publishes from
  ``dead_letters`` (docs/runbooks/TuoguanEventsDeadLettered.md) is kept out
  of the handlers that already applied it only while their inbox rows last:
  14 days.
* Idempotency keys, 7 days after they were claimed. A key answers a client's
  retry of the same write, seconds to minutes later. Past the retention a
  request with an old key is decided as a new one, and no money moves
  twice; a client that reuses a key gets a refusal, not a second effect:
  billing's ``PayRegistrationFee`` names its payment after the patient and
  the key (``payments.payment_id_for``), so the first request repeated
  finds its booking confirmed, cancelled or no longer held a week later
  (``check_payable`` refuses it), and the key used for a new booking names
  a payment that exists already: refused as ``idempotency_key_reused``
  (``check_payment_id_unused``), the key is not kept, and the patient pays
  with a new key; registration's holds end within minutes
  (``REGISTRATION_HOLD_MINUTES``), a cancel repeated finds its booking
  cancelled, a suspension its session suspended (nothing left to cancel), a
  template's put writes the same values again; identity's sign-up or staff
  account finds its login taken, a ``ResetPassword`` its code used up (codes
  last minutes), an ``IssueDeviceToken`` issues a new token (its admin asked
  for one); ticketing promises a retry its first answer "at once or a day
  later" (services/ticketing/README.md). No scope needs a key longer; none
  is excluded.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

import psycopg

from . import metrics
from .config import env_number

log = logging.getLogger(__name__)

TABLES = ("outbox", "inbox", "idempotency_keys")
# The worker timer's method name and the api thread's: tuoguan_timer_runs_total{timer=...}.
TIMER = "purge_retention"
DEFAULT_INTERVAL_SECONDS = 600.0

# The indexes the inbox's and the keys' deletions walk; each service's
# migration builds them (CONCURRENTLY). Frozen once released: another index
# is another constant and another migration.
INDEXES = {
    "inbox_handled_at": "ON inbox (handled_at)",
    "idempotency_keys_created_at": "ON idempotency_keys (created_at)",
}


def create_indexes() -> None:
    """The body of each service's retention migration's ``upgrade()`` (billing
    0006, identity 0008, registration 0005, ticketing 0005): builds
    ``INDEXES``, ``inbox`` by ``handled_at`` and ``idempotency_keys`` by
    ``created_at``, so each run's deletion of the oldest rows walks an index
    instead of reading the whole table (the outbox goes by its primary key and
    needs none). New databases get them there too: the shared DDL does not
    hold them.

    CONCURRENTLY (``db.create_index_concurrently``): a plain CREATE INDEX would
    stop the table's writes for as long as it read the table (a table that grew
    unpurged until that release: minutes). A build that failed leaves an
    invalid index, dropped and built again on the next run."""
    from .db import create_index_concurrently

    for name, definition in INDEXES.items():
        create_index_concurrently(name, definition)


def drop_indexes() -> None:
    """The body of the same migrations' ``downgrade()``: drops ``INDEXES`` CONCURRENTLY."""
    from .db import drop_index_concurrently

    for name in INDEXES:
        drop_index_concurrently(name)

# One purge per database at a time: pg_try_advisory_xact_lock's key (one bigint,
# apart from the two-int keys registration locks patients with).
LOCK_KEY = 0x7475_6F67_7561_6E01
# The first statement of each batch's transaction: the database's purge lock
# (whether it was free) and the batch's limits, both for this transaction
# only. A session's lock or settings would stay on the server connection: a
# transaction pooler gives the next statement another one (the unlock fails
# there, the lock stays taken for good) and the settings to other clients.
BEGIN_BATCH = ("SELECT pg_try_advisory_xact_lock(%(key)s), set_config('statement_timeout', %(statement)s, true), "
               "set_config('lock_timeout', %(lock)s, true)")

# The outbox goes by primary key from the oldest (ids grow with time): a
# window of the next ``rows`` ids, of which the sent rows older than the
# cutoff are deleted. Unsent rows in the window are stepped over, never
# deleted. The window advances past ``after``; the purge of the table ends
# at a window that deletes nothing (the rows kept begin there) or at its end.
OUTBOX_BATCH = """
WITH seen AS (SELECT id, sent_at FROM outbox WHERE id > %(after)s ORDER BY id LIMIT %(rows)s),
     gone AS (DELETE FROM outbox WHERE id = ANY(ARRAY(SELECT id FROM seen WHERE sent_at < %(cutoff)s))
                                   AND sent_at < %(cutoff)s RETURNING 1)
SELECT (SELECT count(*) FROM gone) AS deleted, (SELECT count(*) FROM seen) AS seen, (SELECT max(id) FROM seen) AS last
"""
# The inbox and the keys by their time column's index, oldest first; rows
# found by their tuple ids (a Tid Scan, no second index lookup). Ends at a
# batch smaller than ``rows``.
INBOX_BATCH = ("DELETE FROM inbox WHERE ctid = ANY(ARRAY("
               "SELECT ctid FROM inbox WHERE handled_at < %(cutoff)s ORDER BY handled_at LIMIT %(rows)s))")
KEYS_BATCH = ("DELETE FROM idempotency_keys WHERE ctid = ANY(ARRAY("
              "SELECT ctid FROM idempotency_keys WHERE created_at < %(cutoff)s ORDER BY created_at LIMIT %(rows)s))")

# A statement that takes longer fails the run (its batch rolls back; the next run tries again).
STATEMENT_TIMEOUT_MS = 30_000
# Hardly anything locks rows this old (a client retrying a week-old payment's
# request, an operator): the purge gives up on them rather than queue behind.
LOCK_TIMEOUT_MS = 5_000


@dataclass(frozen=True)
class RetentionPolicy:
    """How long each table's rows are kept, and how a run goes about deleting them."""

    outbox: dt.timedelta = dt.timedelta(days=7)
    inbox: dt.timedelta = dt.timedelta(days=14)
    idempotency_keys: dt.timedelta = dt.timedelta(days=7)
    # Rows one statement deletes at most: tens of milliseconds of row locks and WAL.
    batch_rows: int = 5000
    # Once a run has spent this long it stops after the round it is in; the next run carries on.
    budget_seconds: float = 60.0

    @classmethod
    def from_settings(cls, settings: Mapping[str, float]) -> RetentionPolicy:
        """From ``settings_from_env``'s keys (a worker's nameko config holds them)."""
        default = cls()
        return cls(
            outbox=dt.timedelta(days=settings.get("RETENTION_OUTBOX_DAYS", default.outbox.days)),
            inbox=dt.timedelta(days=settings.get("RETENTION_INBOX_DAYS", default.inbox.days)),
            idempotency_keys=dt.timedelta(
                days=settings.get("RETENTION_IDEMPOTENCY_KEYS_DAYS", default.idempotency_keys.days)),
            batch_rows=int(settings.get("RETENTION_BATCH_ROWS", default.batch_rows)),
            budget_seconds=float(settings.get("RETENTION_BUDGET_SECONDS", default.budget_seconds)),
        )


def settings_from_env(env: Mapping[str, str] | None = None) -> dict[str, float]:
    """``TUOGUAN_RETENTION_*`` (README, Configuration). No table is kept less
    than a day: less would undo the inbox's and the keys' protection."""
    default = RetentionPolicy()
    return {
        "RETENTION_INTERVAL_SECONDS": env_number("TUOGUAN_RETENTION_INTERVAL_SECONDS", DEFAULT_INTERVAL_SECONDS,
                                                 float, env, minimum=0),
        "RETENTION_OUTBOX_DAYS": env_number("TUOGUAN_RETENTION_OUTBOX_DAYS", default.outbox.days, float, env,
                                            minimum=1),
        "RETENTION_INBOX_DAYS": env_number("TUOGUAN_RETENTION_INBOX_DAYS", default.inbox.days, float, env,
                                           minimum=1),
        "RETENTION_IDEMPOTENCY_KEYS_DAYS": env_number("TUOGUAN_RETENTION_IDEMPOTENCY_KEYS_DAYS",
                                                      default.idempotency_keys.days, float, env, minimum=1),
        "RETENTION_BATCH_ROWS": env_number("TUOGUAN_RETENTION_BATCH_ROWS", default.batch_rows, int, env,
                                           minimum=1),
        "RETENTION_BUDGET_SECONDS": env_number("TUOGUAN_RETENTION_BUDGET_SECONDS", default.budget_seconds, float,
                                               env, minimum=0),
    }


@dataclass(frozen=True)
class Purged:
    """What one run deleted, by table; ``finished``: every table is down to its retention."""

    deleted: dict[str, int]
    finished: bool


def count_from_zero(service: str) -> None:
    """Every table's series exists from the start, at 0."""
    for table in TABLES:
        metrics.RETENTION_DELETED.labels(service, table)


class MissingIndexes(RuntimeError):
    """The database lacks an index a table's deletion needs (its migration has
    not run, or its build failed): that table is left alone rather than read
    whole batch after batch, and the run fails, for TuoguanTimerFailing to tell."""


class _Outbox:
    table = "outbox"
    index = None

    def __init__(self, cutoff: dt.datetime):
        self.cutoff = cutoff
        self.after = 0

    def batch(self, conn: psycopg.Connection, rows: int) -> tuple[int, bool]:
        deleted, seen, last = conn.execute(OUTBOX_BATCH, {"after": self.after, "rows": rows, "cutoff": self.cutoff},
                                           prepare=False).fetchone()
        if last is not None:
            self.after = last
        return deleted, deleted == 0 or seen < rows


class _ByAge:
    def __init__(self, table: str, index: str, statement: str, cutoff: dt.datetime):
        self.table = table
        self.index = index
        self.statement = statement
        self.cutoff = cutoff

    def batch(self, conn: psycopg.Connection, rows: int) -> tuple[int, bool]:
        deleted = conn.execute(self.statement, {"cutoff": self.cutoff, "rows": rows}, prepare=False).rowcount
        return deleted, deleted < rows


def purge(database_url: str, service: str, policy: RetentionPolicy = RetentionPolicy(), *,
          now: dt.datetime | None = None, should_stop: Callable[[], bool] = lambda: False,
          clock: Callable[[], float] = time.monotonic) -> Purged | None:
    """Deletes the rows of ``service``'s database past ``policy``'s retention;
    None when another process was purging it. Raises what the database raises
    (the batches done so far stay deleted and counted)."""
    now = now or dt.datetime.now(dt.timezone.utc)
    count_from_zero(service)
    started = clock()
    tables = [_Outbox(now - policy.outbox),
              _ByAge("inbox", "inbox_handled_at", INBOX_BATCH, now - policy.inbox),
              _ByAge("idempotency_keys", "idempotency_keys_created_at", KEYS_BATCH, now - policy.idempotency_keys)]
    deleted = {t.table: 0 for t in tables}
    with _connect(database_url, service) as conn:
        with _batch(conn) as free:
            if not free:
                log.info("retention purge skipped: another process is purging this database")
                return None
            valid = {name for (name,) in conn.execute(
                "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                "WHERE c.relname = ANY(%s) AND i.indisvalid AND pg_table_is_visible(c.oid)", (list(INDEXES),))}
        missing = [t.index for t in tables if t.index is not None and t.index not in valid]
        pending = [t for t in tables if t.index is None or t.index in valid]
        taken = False
        try:
            while pending and not taken:
                for table in list(pending):
                    with _batch(conn) as free:
                        # Another process took the database between two batches: it carries on.
                        taken = not free
                        if taken:
                            log.info("retention purge stopped: another process is purging this database")
                            break
                        n, done = table.batch(conn, policy.batch_rows)
                    deleted[table.table] += n
                    if n:
                        metrics.RETENTION_DELETED.labels(service, table.table).inc(n)
                    if done:
                        pending.remove(table)
                if clock() - started >= policy.budget_seconds or should_stop():
                    break
        finally:
            # Each batch let go of the lock as its transaction ended (an error's
            # rollback too): a purge right after finds the database free.
            log.info("retention purge", extra={
                **{f"{table}_deleted": n for table, n in deleted.items()},
                "finished": not pending and not missing, "seconds": round(clock() - started, 3)})
    if missing:
        raise MissingIndexes(f"{service}'s database has no valid {', '.join(missing)}: run its migrations; "
                             "those tables were not purged")
    return Purged(deleted, finished=not pending)


@contextlib.contextmanager
def _batch(conn: psycopg.Connection) -> Iterator[bool]:
    """One transaction of the run (committed on leaving, rolled back on an
    error, the lock let go either way), with the batch's limits; whether the
    database's purge lock was free."""
    with conn.transaction():
        yield conn.execute(BEGIN_BATCH, {"key": LOCK_KEY, "statement": str(STATEMENT_TIMEOUT_MS),
                                         "lock": str(LOCK_TIMEOUT_MS)}, prepare=False).fetchone()[0]


def _connect(database_url: str, service: str) -> psycopg.Connection:
    """A connection of the run's own, each batch its own transaction (``_batch``);
    a server gone silent is noticed as the outbox relay notices it. Nothing
    prepared: a transaction pooler before 1.21 loses prepared statements
    between transactions."""
    return psycopg.connect(database_url, autocommit=True, connect_timeout=5, application_name=f"{service}-retention",
                           tcp_user_timeout=15_000, keepalives=1, keepalives_idle=10, keepalives_interval=5,
                           keepalives_count=3, prepare_threshold=None)


class PeriodicPurge:
    """``purge`` every ``interval_seconds`` in a thread, for a process without
    a nameko worker (identity's api). Each run is counted as a worker timer's
    (tuoguan_timer_runs_total{timer="purge_retention"}), so TuoguanTimerFailing
    covers it too. ``stop`` ends it within one batch."""

    def __init__(self, service: str, database_url: str, policy: RetentionPolicy = RetentionPolicy(),
                 interval_seconds: float = DEFAULT_INTERVAL_SECONDS):
        self.service = service
        self.database_url = database_url
        self.policy = policy
        self.interval_seconds = interval_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> PeriodicPurge:
        if self.interval_seconds <= 0:
            log.warning("retention purge off (TUOGUAN_RETENTION_INTERVAL_SECONDS=0): the outbox, inbox and "
                        "idempotency keys grow without limit")
            return self
        count_from_zero(self.service)
        for outcome in ("ok", "error"):
            metrics.TIMER_RUNS.labels(self.service, TIMER, outcome)
        self._thread = threading.Thread(target=self._run, name="retention-purge", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval_seconds):
            self.run_once()

    def run_once(self) -> None:
        try:
            purge(self.database_url, self.service, self.policy, should_stop=self._stop.is_set)
            outcome = "ok"
        except Exception:  # noqa: BLE001 - the next run tries again; the failure is counted and logged
            log.exception("retention purge failed")
            outcome = "error"
        metrics.TIMER_RUNS.labels(self.service, TIMER, outcome).inc()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
