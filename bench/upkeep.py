"""Autovacuum's rounds, made by the bench on a server that has autovacuum off
(``--autovacuum-rounds``).

A hospital's PostgreSQL analyses and vacuums the platform's tables as they
change. A server with ``autovacuum = off`` (this machine's CI configuration
sets it so) never does, and the bench fills its tables from empty:

* the planner keeps the statistics of an empty table: billing read every
  payment for each batch of payments it opened;
* a prepared statement keeps a plan made while its table was empty (until
  the store stopped preparing it, billing's settling timer read every
  payment ten times a second);
* the dead rows behind every hot counter are never cleared.

Measured at 300 bookings/s offered, eight runs of 20 s one after the other
on one platform: without the rounds PostgreSQL's CPU per booking rose from
1.66 to 2.29-2.37 ms, and the bookings confirmed per second fell from 297
to 254-261 in the last runs. With them it stayed at 1.36-1.72 ms, and 293-296
bookings a second were confirmed at the end. Over the bench's own 60 s the
difference is within the machine's spread, so the rounds are asked for, not
made by default: runs of minutes want them.

The rounds make the same decisions autovacuum would, with the server's own
settings. They visit one database every naptime divided by the number of
databases, as autovacuum's launcher does. In each database they run ANALYZE
on every table changed past the analyze threshold, and VACUUM on every table
with dead rows (or, since PostgreSQL 13, inserted rows) past the vacuum
thresholds, throttled by autovacuum's cost delay. They touch only the
bench's own databases and change no setting of the server.
"""
from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import psycopg
from psycopg import sql

SETTINGS = ("autovacuum", "autovacuum_naptime", "autovacuum_analyze_threshold", "autovacuum_analyze_scale_factor",
            "autovacuum_vacuum_threshold", "autovacuum_vacuum_scale_factor",
            "autovacuum_vacuum_insert_threshold", "autovacuum_vacuum_insert_scale_factor",
            "autovacuum_vacuum_cost_delay", "autovacuum_vacuum_cost_limit", "vacuum_cost_limit")

TABLES = """
SELECT s.schemaname, s.relname, greatest(c.reltuples, 0) AS reltuples, s.n_mod_since_analyze, s.n_dead_tup,
       s.n_ins_since_vacuum
FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
"""


@dataclass(frozen=True)
class Thresholds:
    """The server's autovacuum settings (the names without ``autovacuum_``)."""

    naptime_s: float = 60.0
    analyze_threshold: float = 50
    analyze_scale_factor: float = 0.1
    vacuum_threshold: float = 50
    vacuum_scale_factor: float = 0.2
    # -1 turns the insert rule off, as in PostgreSQL.
    vacuum_insert_threshold: float = 1000
    vacuum_insert_scale_factor: float = 0.2
    # Autovacuum pauses this long (ms) each time its work reaches the cost
    # limit, so it never takes the machine from the queries it serves.
    vacuum_cost_delay: float = 2
    vacuum_cost_limit: float = 200


@dataclass(frozen=True)
class TableStats:
    reltuples: float
    changed_since_analyze: int
    dead: int
    inserted_since_vacuum: int


def due(table: TableStats, limits: Thresholds) -> tuple[bool, bool]:
    """(vacuum, analyze): what autovacuum would run on this table now."""
    analyze = table.changed_since_analyze > limits.analyze_threshold + limits.analyze_scale_factor * table.reltuples
    vacuum = table.dead > limits.vacuum_threshold + limits.vacuum_scale_factor * table.reltuples
    if limits.vacuum_insert_threshold >= 0:
        vacuum = vacuum or table.inserted_since_vacuum > (
            limits.vacuum_insert_threshold + limits.vacuum_insert_scale_factor * table.reltuples)
    return vacuum, analyze


def server_settings(url: str) -> tuple[bool, Thresholds]:
    """Whether the server runs autovacuum, and its thresholds."""
    with psycopg.connect(url, autocommit=True) as conn:
        rows = dict(conn.execute("SELECT name, setting FROM pg_settings WHERE name = ANY(%s)",
                                 (list(SETTINGS),)).fetchall())
    number = {name.removeprefix("autovacuum_"): float(value) for name, value in rows.items()
              if name.startswith("autovacuum_")}
    number["naptime_s"] = number.pop("naptime", 60.0)
    if number.get("vacuum_cost_limit", -1) < 0:  # -1: autovacuum takes vacuum_cost_limit
        number["vacuum_cost_limit"] = float(rows.get("vacuum_cost_limit", 200))
    return rows.get("autovacuum") == "on", Thresholds(**number)


def visit(url: str, limits: Thresholds) -> tuple[int, int]:
    """One autovacuum round in one database; returns (tables vacuumed, tables analysed)."""
    vacuumed = analysed = 0
    with psycopg.connect(url, autocommit=True) as conn:
        # Throttled as autovacuum is (a manual VACUUM is not, by default).
        conn.execute(sql.SQL("SET vacuum_cost_delay = {}").format(sql.Literal(limits.vacuum_cost_delay)))
        conn.execute(sql.SQL("SET vacuum_cost_limit = {}").format(sql.Literal(int(limits.vacuum_cost_limit))))
        for schema, name, reltuples, changed, dead, inserted in conn.execute(TABLES).fetchall():
            vacuum, analyze = due(TableStats(reltuples, changed or 0, dead or 0, inserted or 0), limits)
            if not (vacuum or analyze):
                continue
            table = sql.Identifier(schema, name)
            if vacuum:
                options = sql.SQL("(ANALYZE)" if analyze else "")
                conn.execute(sql.SQL("VACUUM {} {}").format(options, table))
                vacuumed += 1
            else:
                conn.execute(sql.SQL("ANALYZE {}").format(table))
            analysed += analyze
    return vacuumed, analysed


@dataclass
class StandInAutovacuum:
    """Autovacuum's rounds over ``urls`` in a thread, from ``start()`` to ``stop()``."""

    urls: Sequence[str]
    limits: Thresholds
    on_error: Callable[[str], None] = print
    vacuums: int = 0
    analyses: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> StandInAutovacuum:
        self._thread = threading.Thread(target=self._run, name="stand-in-autovacuum", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        pause = self.limits.naptime_s / max(len(self.urls), 1)
        i = 0
        while not self._stop.wait(pause):
            url = self.urls[i % len(self.urls)]
            i += 1
            try:
                vacuumed, analysed = visit(url, self.limits)
            except psycopg.Error as exc:  # a database dropped at the end of the run, or a lock timeout
                self.on_error(f"stand-in autovacuum: {url.rsplit('/', 1)[-1]}: {exc}")
                continue
            self.vacuums += vacuumed
            self.analyses += analysed

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()



@contextlib.contextmanager
def autovacuum_rounds(urls: Sequence[str], server_url: str, say: Callable[[str], None], *,
                      stand_in: bool = False) -> Iterator[Callable[[], str]]:
    """With ``stand_in``, the stand-in's rounds over ``urls`` for the block if
    the server has autovacuum off. Yields what the figures say of autovacuum
    in the run."""
    running, limits = server_settings(server_url)
    rounds = None
    if not running:
        if stand_in:
            say("this PostgreSQL runs without autovacuum: the bench makes its rounds on the platform's databases")
            rounds = StandInAutovacuum(urls, limits, say).start()
        else:
            say("this PostgreSQL runs without autovacuum: a run of minutes slows down as the tables grow "
                "(--autovacuum-rounds makes its rounds)")
    try:
        yield lambda: ("on" if running else "off on the server" if rounds is None else
                       f"off on the server; the bench made its rounds "
                       f"({rounds.vacuums} vacuums, {rounds.analyses} analyses)")
    finally:
        if rounds is not None:
            rounds.stop()
