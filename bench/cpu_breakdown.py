"""Where a booking's CPU goes: runs the platform under a fixed load and
charges each process's CPU time (from /proc) to the bookings it served.

    uv run python -m bench.cpu_breakdown --rate 130 --seconds 10
    uv run python -m bench.cpu_breakdown --burst --seconds 10

The figures are CPU microseconds per booking (or per hold with --burst) for
every api and worker, PostgreSQL, RabbitMQ and the load generator itself:
the budget that two cores divide. A diagnostic for `make bench`, not a gate.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from bench import surge, upkeep
from tuoguan_common import auth
from tuoguan_common.launcher import DOMAIN_SERVICES, Platform

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def cpu_of_commands(prefixes: tuple[str, ...]) -> float:
    total = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if Path(f"/proc/{entry}/comm").read_text().strip().startswith(prefixes):
                total += cpu_seconds(int(entry))
        except OSError:
            continue
    return total


def database_work(platform: Platform) -> dict[str, tuple[int, int]]:
    """Committed transactions and rows written, per service database, so far."""
    import psycopg

    with psycopg.connect(platform.database_url) as conn:
        rows = conn.execute(
            "SELECT datname, xact_commit, tup_inserted + tup_updated + tup_deleted FROM pg_stat_database "
            "WHERE datname LIKE %s", (platform.db_prefix + "%",)).fetchall()
    return {name.removeprefix(platform.db_prefix + "_"): (int(tx), int(written)) for name, tx, written in rows}


def table_writes(platform: Platform) -> dict[tuple[str, str], tuple[int, int, int]]:
    """Rows inserted, updated and deleted so far, per table of every service database."""
    import psycopg

    counts = {}
    for service in DOMAIN_SERVICES:
        with psycopg.connect(platform.db_url(service)) as conn:
            for table, ins, upd, dele in conn.execute(
                    "SELECT relname, n_tup_ins, n_tup_upd, n_tup_del FROM pg_stat_user_tables"):
                counts[(service, table)] = (int(ins), int(upd), int(dele))
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=130.0, help="full bookings per second offered")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--burst", action="store_true", help="holds only, 64 at a time, instead of full bookings")
    parser.add_argument("--profile", metavar="PROCESS",
                        help="also sample this process (e.g. registration-api) with py-spy into folded stacks (flamegraph.pl or speedscope read them)")
    parser.add_argument("--registration-apis", type=int, default=1, help="registration api processes")
    parser.add_argument("--autovacuum-rounds", action="store_true",
                        help="on a server with autovacuum off, make autovacuum's rounds (bench/upkeep.py)")
    args = parser.parse_args()

    plat = Platform(work_dir=Path(tempfile.mkdtemp(prefix="tuoguan-cpu-")),
                    db_prefix=f"cpu_{uuid.uuid4().hex[:6]}", extra_env={"LOG_LEVEL": "WARNING"},
                    api_replicas={"registration": args.registration_apis})
    plat.start(with_gateway=False)
    listener = None
    rounds = contextlib.ExitStack()
    try:
        autovacuum = rounds.enter_context(upkeep.autovacuum_rounds(
            [plat.db_url(s) for s in DOMAIN_SERVICES], plat.database_url, print, stand_in=args.autovacuum_rounds))
        plat.seed()
        issuer = auth.TokenIssuer(plat.private_key.read_bytes())
        patients = surge.Patients(issuer)
        patients.sign_in(int(args.rate * args.seconds * (20 if args.burst else 1.2)))
        slots = asyncio.run(surge.publish_schedule(plat, issuer, capacity=40))
        listener = surge.ConfirmationListener(plat.amqp_uri)
        pids = {name: proc.pid for name, proc in plat.procs.items()}
        others = {"postgresql": ("postgres",), "rabbitmq": ("beam",)}
        before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        before.update({name: cpu_of_commands(p) for name, p in others.items()})
        before["load generator"] = cpu_seconds(os.getpid())
        work_before = database_work(plat)
        tables_before = table_writes(plat)
        spy = None
        if args.profile:
            svg = Path(plat.work_dir) / f"{args.profile}.folded"
            spy = subprocess.Popen(["py-spy", "record", "--gil", "--rate", "400", "--nonblocking", "-p", str(pids[args.profile]),
                                    "--format", "raw", "-o", str(svg), "-d", str(int(args.seconds))])
        started = time.monotonic()
        if args.burst:
            result = asyncio.run(surge.hold_burst(plat, patients, slots, args.seconds, 64))
            served, unit = result["outcomes"].get("held", 0), "hold"
        else:
            result = asyncio.run(surge.sustained(plat, patients, slots, listener, args.rate, args.seconds))
            served, unit = result["confirmed"], "booking"
            print(f"failed calls: {result['errors'] or 'none'}")
            print(f"hold p50 {result['hold_p50_ms']:.0f} ms, p99 {result['hold_p99_ms']:.0f} ms; "
                  f"hold to confirmed p99 {result['full_p99_ms']:.0f} ms")
        wall = time.monotonic() - started
        if spy is not None:
            spy.wait(timeout=60)
            print(f"folded stacks of {args.profile}: {svg}")
        after = {name: cpu_seconds(pid) for name, pid in pids.items()}
        after.update({name: cpu_of_commands(p) for name, p in others.items()})
        after["load generator"] = cpu_seconds(os.getpid())
        print(f"{served} {unit}s in {wall:.1f} s ({served / wall:.0f}/s)")
        print(f"{'process':22} {'% of a core':>12} {'CPU us per ' + unit:>22}")
        total = 0.0
        for name in after:
            used = after[name] - before[name]
            total += used
            print(f"{name:22} {used / wall * 100:11.0f}% {used / max(served, 1) * 1e6:22.0f}")
        print(f"{'total':22} {total / wall * 100:11.0f}% {total / max(served, 1) * 1e6:22.0f}")
        # Statistics reach pg_stat_database when a backend's transaction ends; give them a moment.
        time.sleep(1)
        work_after = database_work(plat)
        print(f"{'database':22} {'commits per ' + unit:>18} {'rows written per ' + unit:>24}")
        for name, (tx, written) in sorted(work_after.items()):
            tx0, written0 = work_before.get(name, (0, 0))
            print(f"{name:22} {(tx - tx0) / max(served, 1):18.1f} {(written - written0) / max(served, 1):24.1f}")
        print(f"{'table':36} {'inserted':>9} {'updated':>9} {'deleted':>9}  rows per {unit}")
        for (service, table), counts in sorted(table_writes(plat).items()):
            per = [(now - then) / max(served, 1) for now, then in zip(counts, tables_before.get((service, table), (0, 0, 0)))]
            if any(round(x, 2) for x in per):
                print(f"{service + '.' + table:36} {per[0]:9.2f} {per[1]:9.2f} {per[2]:9.2f}")
        print(f"PostgreSQL's autovacuum: {autovacuum()}")
    finally:
        rounds.close()
        if listener is not None:
            listener.close()
        plat.stop()


if __name__ == "__main__":
    main()
