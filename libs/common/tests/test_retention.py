"""The retention purge (``tuoguan_common.retention``) on the real PostgreSQL:
rows past their retention go, in batches, until none is left or the run's
time is spent; newer rows and unsent outbox rows stay; one process purges a
database at a time; every deletion walks an index, never the whole table."""
from __future__ import annotations

import datetime as dt
import time
import uuid

import psycopg
import pytest
from prometheus_client import REGISTRY

from tuoguan_common import retention
from tuoguan_common.retention import PeriodicPurge, RetentionPolicy, purge
from tuoguan_common.testing import wait_for

pytestmark = pytest.mark.integration

NOW = dt.datetime.now(dt.timezone.utc)
SMALL_BATCHES = RetentionPolicy(batch_rows=3)


@pytest.fixture
def db(outbox_db):
    """The shared tables with the indexes the services' migrations build; its URL."""
    with psycopg.connect(outbox_db.url, autocommit=True) as conn:
        for name, definition in retention.INDEXES.items():
            conn.execute(f"CREATE INDEX {name} {definition}")
    return outbox_db.url


@pytest.fixture
def service() -> str:
    return f"svc{uuid.uuid4().hex[:6]}"


def days_ago(days: float) -> dt.datetime:
    return NOW - dt.timedelta(days=days)


def add_outbox(conn: psycopg.Connection, created: dt.datetime, sent: dt.datetime | None) -> int:
    return conn.execute("INSERT INTO outbox (event_id, event_type, payload, created_at, sent_at) "
                        "VALUES (gen_random_uuid(), 'PaymentCaptured', '{}', %s, %s) RETURNING id",
                        (created, sent)).fetchone()[0]


def add_inbox(conn: psycopg.Connection, handled: dt.datetime, n: int = 1) -> None:
    conn.execute("INSERT INTO inbox (event_id, handler, handled_at) "
                 "SELECT gen_random_uuid(), 'payment_captured', %s FROM generate_series(1, %s)", (handled, n))


def add_keys(conn: psycopg.Connection, created: dt.datetime, scope: str, n: int = 1) -> None:
    conn.execute("INSERT INTO idempotency_keys (scope, owner, key, request_hash, response, created_at) "
                 "SELECT %s, 'patient-1', gen_random_uuid()::text, 'h', '\\x00', %s FROM generate_series(1, %s)",
                 (scope, created, n))


def counts(url: str) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        return {table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] for table in retention.TABLES}


def deleted_metric(service: str, table: str) -> float | None:
    return REGISTRY.get_sample_value("tuoguan_retention_deleted_rows_total", {"service": service, "table": table})


def test_rows_past_their_retention_go_batch_after_batch_and_the_rest_stay(db, service):
    with psycopg.connect(db, autocommit=True) as conn:
        gone = [add_outbox(conn, days_ago(9), days_ago(8)) for _ in range(3)]
        # Never sent, however old: the relay still owes it (a window of old rows steps over it).
        stuck = add_outbox(conn, days_ago(30), None)
        gone += [add_outbox(conn, days_ago(9), days_ago(8)) for _ in range(4)]
        kept = [add_outbox(conn, days_ago(6.5), days_ago(6)) for _ in range(2)] + [add_outbox(conn, NOW, None)]
        add_inbox(conn, days_ago(15), 7)
        add_inbox(conn, days_ago(13), 2)
        for scope in ("billing.PayRegistrationFee", "hold", "ResetPassword"):
            add_keys(conn, days_ago(8), scope, 3)
            add_keys(conn, days_ago(6), scope)

    purged = purge(db, service, SMALL_BATCHES)

    assert purged == retention.Purged({"outbox": 7, "inbox": 7, "idempotency_keys": 9}, finished=True)
    with psycopg.connect(db) as conn:
        assert [i for (i,) in conn.execute("SELECT id FROM outbox ORDER BY id")] == [stuck, *kept]
        assert conn.execute("SELECT count(*), max(now() - handled_at) < interval '14 days' FROM inbox").fetchone() \
            == (2, True)
        assert conn.execute("SELECT scope, count(*) FROM idempotency_keys GROUP BY scope ORDER BY scope").fetchall() \
            == [("ResetPassword", 1), ("billing.PayRegistrationFee", 1), ("hold", 1)]
    assert [deleted_metric(service, t) for t in retention.TABLES] == [7.0, 7.0, 9.0]
    # Nothing left to do: the next run deletes nothing.
    assert purge(db, service, SMALL_BATCHES) == retention.Purged({t: 0 for t in retention.TABLES}, finished=True)


def test_a_run_stops_once_its_time_is_spent_and_the_next_carries_on(db, service):
    with psycopg.connect(db, autocommit=True) as conn:
        for _ in range(5):
            add_outbox(conn, days_ago(9), days_ago(8))
        add_inbox(conn, days_ago(20), 5)
        add_keys(conn, days_ago(20), "open", 5)

    spent = purge(db, service, RetentionPolicy(batch_rows=2, budget_seconds=0))
    assert spent == retention.Purged({"outbox": 2, "inbox": 2, "idempotency_keys": 2}, finished=False)
    stopping = purge(db, service, RetentionPolicy(batch_rows=2), should_stop=lambda: True)
    assert stopping == retention.Purged({"outbox": 2, "inbox": 2, "idempotency_keys": 2}, finished=False)
    assert purge(db, service, RetentionPolicy(batch_rows=2)).finished
    assert counts(db) == {"outbox": 0, "inbox": 0, "idempotency_keys": 0}


def test_one_process_purges_a_database_at_a_time(db, service):
    with psycopg.connect(db, autocommit=True) as conn:
        add_inbox(conn, days_ago(20), 3)
        conn.execute("SELECT pg_advisory_lock(%s)", (retention.LOCK_KEY,))
        assert purge(db, service) is None
        assert counts(db)["inbox"] == 3
        # Let go before closing: a closed connection's backend releases the lock only once it has exited.
        conn.execute("SELECT pg_advisory_unlock(%s)", (retention.LOCK_KEY,))
    assert purge(db, service).deleted["inbox"] == 3


def test_a_table_whose_index_is_missing_is_left_alone_and_the_run_fails(db, service):
    """Without its index the inbox would be read whole for every batch: the
    purge leaves it (until the migration has run) and says so; the other tables go on."""
    with psycopg.connect(db, autocommit=True) as conn:
        add_inbox(conn, days_ago(20), 3)
        add_keys(conn, days_ago(20), "hold", 3)
        conn.execute("DROP INDEX inbox_handled_at")
        # A build that failed leaves an invalid index of that name: as good as none.
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute("CREATE UNIQUE INDEX CONCURRENTLY inbox_handled_at ON inbox (handler)")
    with pytest.raises(retention.MissingIndexes, match="no valid inbox_handled_at: run its migrations"):
        purge(db, service)
    assert counts(db) == {"outbox": 0, "inbox": 3, "idempotency_keys": 0}


def plan_nodes(conn: psycopg.Connection, statement: str, params: dict) -> list[tuple[str, str | None, str | None]]:
    """(node type, relation, index) of every node of the statement's plan."""
    (plan,), = conn.execute("EXPLAIN (FORMAT JSON) " + statement, params, prepare=False).fetchone()
    nodes, stack = [], [plan["Plan"]]
    while stack:
        node = stack.pop()
        nodes.append((node["Node Type"], node.get("Relation Name"), node.get("Index Name")))
        stack.extend(node.get("Plans", []))
    return nodes


def scans(nodes: list[tuple[str, str | None, str | None]], table: str) -> set[tuple[str, str | None]]:
    """How the plan reads ``table``: (node type, index) of its scans."""
    return {(kind, index) for kind, relation, index in nodes if relation == table and kind.endswith("Scan")}


def test_every_deletion_walks_an_index_not_the_whole_table(db):
    """On tables of 200,000 rows, half of them past their retention: the
    outbox by its primary key, the inbox and the keys by their time index
    and then by tuple id. Without the time index, the inbox is read whole."""
    rows, policy = 200_000, RetentionPolicy()
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("INSERT INTO outbox (event_id, event_type, payload, created_at, sent_at) "
                     "SELECT gen_random_uuid(), 'E', '{}', t, t FROM "
                     "(SELECT now() - make_interval(secs => %s * (%s - g)) AS t FROM generate_series(1, %s) g) s",
                     (14 * 86400 / rows, rows, rows))
        conn.execute("INSERT INTO inbox (event_id, handler, handled_at) SELECT gen_random_uuid(), 'h', "
                     "now() - make_interval(mins => (random() * 28 * 24 * 60)::int) FROM generate_series(1, %s)",
                     (rows,))
        conn.execute("INSERT INTO idempotency_keys (scope, owner, key, request_hash, created_at) "
                     "SELECT 'hold', 'p' || g %% 1000, g::text, 'h', "
                     "now() - make_interval(mins => (random() * 14 * 24 * 60)::int) FROM generate_series(1, %s) g",
                     (rows,))
        conn.execute("ANALYZE outbox, inbox, idempotency_keys")
        batch = {"rows": policy.batch_rows}

        outbox = plan_nodes(conn, retention.OUTBOX_BATCH, {**batch, "after": 0, "cutoff": days_ago(7)})
        inbox = plan_nodes(conn, retention.INBOX_BATCH, {**batch, "cutoff": days_ago(14)})
        keys = plan_nodes(conn, retention.KEYS_BATCH, {**batch, "cutoff": days_ago(7)})

        assert scans(outbox, "outbox") == {("Index Scan", "outbox_pkey")}, outbox
        assert scans(inbox, "inbox") == {("Index Scan", "inbox_handled_at"), ("Tid Scan", None)}, inbox
        assert scans(keys, "idempotency_keys") == {("Index Scan", "idempotency_keys_created_at"),
                                                   ("Tid Scan", None)}, keys

        conn.execute("DROP INDEX inbox_handled_at")
        assert ("Seq Scan", None) in scans(
            plan_nodes(conn, retention.INBOX_BATCH, {**batch, "cutoff": days_ago(14)}), "inbox")

        # And the purge itself, batch after batch, deletes exactly what the retention says.
        conn.execute(f"CREATE INDEX inbox_handled_at {retention.INDEXES['inbox_handled_at']}")
        cutoffs = conn.execute("SELECT (SELECT count(*) FROM outbox WHERE sent_at < now() - interval '7 days'), "
                               "(SELECT count(*) FROM inbox WHERE handled_at < now() - interval '14 days'), "
                               "(SELECT count(*) FROM idempotency_keys WHERE created_at < now() - interval '7 days')"
                               ).fetchone()
    purged = purge(db, "svcbig", policy, now=dt.datetime.now(dt.timezone.utc))
    assert purged.finished and tuple(purged.deleted.values()) == cutoffs
    assert all(n > rows // 3 for n in cutoffs), cutoffs  # twenty batches and more each


def test_an_api_purges_in_a_thread_that_stops_when_told(db, service):
    with psycopg.connect(db, autocommit=True) as conn:
        add_keys(conn, days_ago(8), "IssueDeviceToken", 4)
        add_keys(conn, days_ago(1), "IssueDeviceToken")
    purger = PeriodicPurge(service, db, interval_seconds=0.1).start()
    try:
        wait_for(lambda: counts(db)["idempotency_keys"] == 1, message="the old keys purged")
        wait_for(lambda: REGISTRY.get_sample_value(
            "tuoguan_timer_runs_total", {"service": service, "timer": "purge_retention", "outcome": "ok"}) >= 2,
            message="a second run")
    finally:
        started = time.monotonic()
        purger.stop()
    assert time.monotonic() - started < 2 and not purger._thread.is_alive()
    assert REGISTRY.get_sample_value("tuoguan_timer_runs_total",
                                     {"service": service, "timer": "purge_retention", "outcome": "error"}) == 0
    assert deleted_metric(service, "idempotency_keys") == 4


def test_an_api_counts_a_failed_run_and_tries_again(service):
    purger = PeriodicPurge(service, "postgresql://postgres@127.0.0.1:1/none", interval_seconds=0.05).start()
    try:
        wait_for(lambda: (REGISTRY.get_sample_value(
            "tuoguan_timer_runs_total", {"service": service, "timer": "purge_retention", "outcome": "error"}) or 0) >= 2,
            message="failed runs counted")
    finally:
        purger.stop()


def test_settings_from_the_environment():
    defaults = retention.settings_from_env({})
    assert defaults["RETENTION_INTERVAL_SECONDS"] == 600
    assert RetentionPolicy.from_settings(defaults) == RetentionPolicy() == RetentionPolicy(
        outbox=dt.timedelta(days=7), inbox=dt.timedelta(days=14), idempotency_keys=dt.timedelta(days=7),
        batch_rows=5000, budget_seconds=60)
    settings = retention.settings_from_env({
        "TUOGUAN_RETENTION_INTERVAL_SECONDS": "0", "TUOGUAN_RETENTION_OUTBOX_DAYS": "3",
        "TUOGUAN_RETENTION_INBOX_DAYS": "30", "TUOGUAN_RETENTION_IDEMPOTENCY_KEYS_DAYS": "10",
        "TUOGUAN_RETENTION_BATCH_ROWS": "1000", "TUOGUAN_RETENTION_BUDGET_SECONDS": "5"})
    assert settings["RETENTION_INTERVAL_SECONDS"] == 0
    assert RetentionPolicy.from_settings(settings) == RetentionPolicy(
        outbox=dt.timedelta(days=3), inbox=dt.timedelta(days=30), idempotency_keys=dt.timedelta(days=10),
        batch_rows=1000, budget_seconds=5)
    # Less than a day would undo the inbox's and the keys' protection.
    with pytest.raises(SystemExit, match="TUOGUAN_RETENTION_INBOX_DAYS must be at least 1"):
        retention.settings_from_env({"TUOGUAN_RETENTION_INBOX_DAYS": "0.5"})


def test_purges_through_a_transaction_pooler_take_turns_and_leave_nothing_behind(db, service, pgbouncer):
    """Through PgBouncer in transaction mode each transaction may get another
    server connection: a session's lock, taken on one and let go on another,
    stayed taken for good (every later purge skipped), and a session's
    timeouts stayed for the pool's next clients. A second client's transaction
    takes the purge's server connection between its rounds, as any api's would."""
    pooled = pgbouncer.url(db)
    with psycopg.connect(db, autocommit=True) as conn:
        add_inbox(conn, days_ago(20), 4)
        add_keys(conn, days_ago(8), "hold", 2)
        defaults = conn.execute("SELECT current_setting('statement_timeout'), current_setting('lock_timeout')"
                                ).fetchone()
    other = psycopg.connect(pooled)

    def meanwhile() -> bool:
        if other.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
            other.execute("SELECT 1")
        return False

    try:
        first = purge(pooled, service, SMALL_BATCHES, should_stop=meanwhile)
        # The pool's other server connection, the first still in the other client's transaction.
        second = purge(pooled, service, SMALL_BATCHES)
    finally:
        other.close()

    assert first == retention.Purged({"outbox": 0, "inbox": 4, "idempotency_keys": 2}, finished=True)
    assert second == retention.Purged({t: 0 for t in retention.TABLES}, finished=True)
    with psycopg.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND "
                            "database = (SELECT oid FROM pg_database WHERE datname = current_database())"
                            ).fetchone() == (0,)
    clients = pgbouncer.server_connections(db)
    try:
        for client in clients:
            assert client.execute("SELECT current_setting('statement_timeout'), current_setting('lock_timeout')"
                                  ).fetchone() == defaults
    finally:
        for client in clients:
            client.close()
    # A purge of the database while another process holds its lock is still skipped, through the pooler too.
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (retention.LOCK_KEY,))
        assert purge(pooled, service) is None
        conn.execute("SELECT pg_advisory_unlock(%s)", (retention.LOCK_KEY,))
