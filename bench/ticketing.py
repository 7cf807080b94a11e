"""make bench (part 2): the O&M desk under load.

Starts the whole platform on fresh databases, then measures, each beside a
baseline from the same run on the same machine:

1. tickets opened per second through the public gRPC API (16 callers), beside
   a raw PostgreSQL transaction inserting a ticket and its first event;
2. Alertmanager notifications per second through the gateway's webhook during
   an alert storm (many notifications, few distinct alerts), with the count of
   tickets it made (exactly one per distinct alert is the requirement);
3. SLA states computed per second: the domain's computation on working-hours
   subsystems across the Chinese calendar, beside the same tickets on 24x7
   hours (plain wall-clock arithmetic), and through ListTickets (the board).

It ends with one line of JSON. A benchmark, not a test: it asserts nothing.
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import tempfile
import threading
import time
import uuid
from pathlib import Path

import grpc
import httpx
import psycopg

from bench import baselines
from bench.report import machine_note, print_figures, progress
from tuoguan.ticketing.v1 import ticketing_pb2 as pb
from tuoguan.ticketing.v1 import ticketing_pb2_grpc as pb_grpc
from tuoguan_common import auth
from tuoguan_common.db import drop_database, ensure_database
from tuoguan_common.launcher import Platform
from ticketing.domain.calendar import ServiceHours, WorkingCalendar
from ticketing.domain.priority import Priority
from ticketing.domain.sla import EventKind, Side, SlaPolicy, TicketEvent, compute_sla

WORKING_HOURS = "08:00-12:00,13:30-17:30"


def raw_ticket_insert_rate(database_url: str, *, connections: int = 8, seconds: float = 8.0) -> float:
    """Transactions/s of: insert a ticket row and its OPENED event row."""
    url = database_url.rsplit("/", 1)[0] + f"/bench_raw_{uuid.uuid4().hex[:8]}"
    ensure_database(url)
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE TABLE ticket (id uuid PRIMARY KEY, subsystem text NOT NULL, title text NOT NULL, "
                         "priority int NOT NULL, status text NOT NULL, created_at timestamptz NOT NULL DEFAULT now())")
            conn.execute("CREATE TABLE ticket_event (id bigserial PRIMARY KEY, ticket_id uuid NOT NULL, "
                         "kind text NOT NULL, at timestamptz NOT NULL DEFAULT now())")

        def body(_i):
            conn = psycopg.connect(url)

            def one():
                ticket_id = uuid.uuid4()
                with conn.transaction():
                    conn.execute("INSERT INTO ticket (id, subsystem, title, priority, status) "
                                 "VALUES (%s, 'HIS', 'slow', 2, 'new')", (ticket_id,))
                    conn.execute("INSERT INTO ticket_event (ticket_id, kind) VALUES (%s, 'opened')", (ticket_id,))
            return one

        return baselines.run_threads(connections, seconds, body) / seconds
    finally:
        drop_database(url)


def open_tickets(platform: Platform, issuer: auth.TokenIssuer, seconds: float, callers: int) -> dict:
    channel = grpc.insecure_channel(platform.address("ticketing"))
    stub = pb_grpc.TicketingServiceStub(channel)
    codes = [s.code for s in stub.ListSubsystems(pb.ListSubsystemsRequest(),
                                                 metadata=auth.bearer_metadata(issuer.issue("bench", ["admin"])))
             .subsystems]
    latencies: list[float] = []
    errors: dict[str, int] = {}
    lock = threading.Lock()

    def body(i):
        md = auth.bearer_metadata(issuer.issue(f"clinician-{i}", ["clinician"]))

        def one():
            started = time.perf_counter()
            try:
                stub.OpenTicket(pb.OpenTicketRequest(
                    kind=pb.TICKET_KIND_INCIDENT, subsystem_code=random.choice(codes), title="打印机无法打印",
                    impact=pb.LEVEL_MEDIUM, urgency=pb.LEVEL_MEDIUM, idempotency_key=uuid.uuid4().hex),
                    metadata=md, timeout=10)
            except grpc.RpcError as exc:
                with lock:
                    errors[exc.code().name] = errors.get(exc.code().name, 0) + 1
            with lock:
                latencies.append(time.perf_counter() - started)
        return one

    done = baselines.run_threads(callers, seconds, body)
    channel.close()
    latencies.sort()
    return {"per_s": done / seconds, "p50_ms": latencies[len(latencies) // 2] * 1000,
            "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000, "errors": errors}


def alert_storm(platform: Platform, issuer: auth.TokenIssuer, notifications: int, distinct: int,
                senders: int) -> dict:
    """Alertmanager batches of 10 alerts from ``senders`` concurrent clients."""
    token = issuer.issue("device:alertmanager", ["device"])
    codes = ["PACS", "HIS", "LIS", "EMR", "NETWORK-CORE", "STORAGE", "DC-VM", "BIOBANK"]
    fingerprints = [f"storm-{uuid.uuid4().hex[:12]}" for _ in range(distinct)]

    def alert(fp: str) -> dict:
        code = codes[hash(fp) % len(codes)]
        return {"status": "firing", "labels": {"alertname": "HighLatency", "subsystem": code, "severity": "critical",
                                               "instance": fp},
                "annotations": {"summary": f"{code} p99 latency above 2 s"},
                "startsAt": "2026-11-26T08:00:00Z", "endsAt": "0001-01-01T00:00:00Z", "fingerprint": fp}

    batches = [[alert(random.choice(fingerprints)) for _ in range(10)] for _ in range(notifications // 10)]
    cursor = iter(range(len(batches)))
    lock = threading.Lock()
    ids: set[str] = set()
    failures = [0]

    def sender():
        with httpx.Client(base_url=platform.gateway_url, timeout=30,
                          headers={"Authorization": f"Bearer {token}"}) as client:
            while True:
                with lock:
                    n = next(cursor, None)
                if n is None:
                    return
                body = {"version": "4", "status": "firing", "receiver": "tuoguan", "groupKey": f"g{n}",
                        "alerts": batches[n]}
                reply = client.post("/api/v1/alertmanager/webhook", json=body)
                with lock:
                    if reply.status_code == 200:
                        ids.update(reply.json()["ticket_ids"])
                    else:
                        failures[0] += 1

    started = time.monotonic()
    threads = [threading.Thread(target=sender) for _ in range(senders)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    return {"notifications_per_s": len(batches) * 10 / elapsed, "notifications": len(batches) * 10,
            "distinct_alerts": len({a["fingerprint"] for b in batches for a in b}), "tickets": len(ids),
            "failed_requests": failures[0]}


def sla_histories(count: int) -> list[list[TicketEvent]]:
    """Realistic histories around the 2026 National Day holiday: opened, started, paused on either side,
    resumed, some resolved."""
    rng = random.Random(7)
    base = dt.datetime(2026, 9, 28, 0, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    histories = []
    for _ in range(count):
        at = base + dt.timedelta(minutes=rng.randrange(0, 60 * 24 * 10))
        events = [TicketEvent(at, EventKind.OPENED, priority=Priority(rng.randint(1, 4)))]
        at += dt.timedelta(minutes=rng.randrange(5, 240))
        events.append(TicketEvent(at, EventKind.STARTED))
        if rng.random() < 0.5:
            at += dt.timedelta(hours=rng.randrange(1, 48))
            events.append(TicketEvent(at, EventKind.PAUSED, side=rng.choice(list(Side))))
            at += dt.timedelta(hours=rng.randrange(1, 72))
            events.append(TicketEvent(at, EventKind.RESUMED))
        if rng.random() < 0.5:
            events.append(TicketEvent(at + dt.timedelta(hours=rng.randrange(1, 30)), EventKind.RESOLVED))
        histories.append(events)
    return histories


def sla_rate(hours: ServiceHours, histories, seconds: float) -> float:
    calendar, policy = WorkingCalendar(), SlaPolicy.default()
    now = dt.datetime(2026, 10, 12, 10, 0, tzinfo=dt.timezone.utc)
    done, stop = 0, time.monotonic() + seconds
    while time.monotonic() < stop:
        for events in histories:
            compute_sla(events, hours, calendar, policy, now)
        done += len(histories)
    return done / seconds


def board_rate(platform: Platform, issuer: auth.TokenIssuer, seconds: float) -> dict:
    """The board rates every open ticket (up to the store's cap), then returns the most urgent 500."""
    from ticketing.store import MAX_RATED

    with psycopg.connect(platform.db_url("ticketing")) as conn:
        open_tickets = conn.execute("SELECT count(*) FROM tickets WHERE status <> 'closed'").fetchone()[0]
    rated_per_call = min(open_tickets, MAX_RATED)
    channel = grpc.insecure_channel(platform.address("ticketing"))
    stub = pb_grpc.TicketingServiceStub(channel)
    md = auth.bearer_metadata(issuer.issue("dispatcher", ["dispatcher"]))
    calls = 0
    stop = time.monotonic() + seconds
    while time.monotonic() < stop:
        stub.ListTickets(pb.ListTicketsRequest(view=pb.TICKET_VIEW_BOARD, limit=500), metadata=md)
        calls += 1
    channel.close()
    return {"open_tickets": open_tickets, "board_calls_per_s": calls / seconds,
            "sla_states_per_s": calls * rated_per_call / seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=float(os.environ.get("BENCH_TICKETING_SECONDS", 10)))
    parser.add_argument("--callers", type=int, default=16)
    parser.add_argument("--notifications", type=int, default=5000)
    parser.add_argument("--distinct", type=int, default=50)
    args = parser.parse_args()
    database_url = os.environ.get("DATABASE_URL") or "postgresql://postgres@127.0.0.1:5432/postgres"

    progress(f"machine: {machine_note()}")
    progress("baseline: raw PostgreSQL ticket insert (8 connections)")
    raw_pg = raw_ticket_insert_rate(database_url, seconds=args.seconds)
    progress(f"  {raw_pg:,.0f} tx/s")
    progress("baseline: raw grpcio echo (10 server threads, 10 client threads)")
    raw_grpc = baselines.raw_grpc_echo_rate(seconds=args.seconds)
    progress(f"  {raw_grpc:,.0f} calls/s")

    progress("SLA states computed in-process: working hours across the National Day holiday vs 24x7")
    histories = sla_histories(500)
    sla_working = sla_rate(ServiceHours.parse(WORKING_HOURS), histories, args.seconds / 2)
    sla_24x7 = sla_rate(ServiceHours.parse("24x7"), histories, args.seconds / 2)
    progress(f"  working hours {sla_working:,.0f}/s; 24x7 (wall clock) {sla_24x7:,.0f}/s")

    work = Path(tempfile.mkdtemp(prefix="tuoguan-bench-ticketing-"))
    plat = Platform(work_dir=work, database_url=database_url, db_prefix=f"bench_{uuid.uuid4().hex[:6]}",
                    extra_env={"LOG_LEVEL": "WARNING"})
    progress(f"starting the platform (logs in {work})")
    plat.start()
    try:
        plat.seed()
        issuer = auth.TokenIssuer(plat.private_key.read_bytes())
        progress(f"tickets opened through gRPC: {args.callers} callers for {args.seconds:.0f} s")
        opened = open_tickets(plat, issuer, args.seconds, args.callers)
        progress(f"  {opened['per_s']:,.0f}/s, p50 {opened['p50_ms']:.1f} ms, p99 {opened['p99_ms']:.1f} ms, "
                 f"errors {opened['errors']}")
        progress(f"alert storm through the webhook: {args.notifications} notifications, "
                 f"{args.distinct} distinct alerts, 8 senders")
        storm = alert_storm(plat, issuer, args.notifications, args.distinct, senders=8)
        progress(f"  {storm['notifications_per_s']:,.0f} notifications/s; {storm['tickets']} tickets for "
                 f"{storm['distinct_alerts']} distinct alerts; failed requests {storm['failed_requests']}")
        progress("the dispatcher's board (every open ticket rated, the 500 most urgent returned)")
        board = board_rate(plat, issuer, args.seconds / 2)
        progress(f"  {board['open_tickets']:,} open tickets: {board['board_calls_per_s']:,.1f} boards/s = "
                 f"{board['sla_states_per_s']:,.0f} SLA states/s")
    finally:
        plat.stop()

    figures = {
        "machine": machine_note(),
        "raw_postgres_ticket_tx_per_s": round(raw_pg),
        "raw_grpc_echo_per_s": round(raw_grpc),
        "tickets_opened_grpc_per_s": round(opened["per_s"]),
        "tickets_opened_grpc_p99_ms": round(opened["p99_ms"], 1),
        "open_vs_raw_postgres": round(opened["per_s"] / raw_pg, 2),
        "open_vs_raw_grpc": round(opened["per_s"] / raw_grpc, 2),
        "webhook_notifications_per_s": round(storm["notifications_per_s"]),
        "webhook_vs_raw_postgres": round(storm["notifications_per_s"] / raw_pg, 2),
        "storm_distinct_alerts": storm["distinct_alerts"],
        "storm_tickets": storm["tickets"],
        "storm_one_ticket_per_alert": storm["tickets"] == storm["distinct_alerts"],
        "sla_states_per_s_working_hours": round(sla_working),
        "sla_states_per_s_24x7_baseline": round(sla_24x7),
        "sla_working_vs_24x7": round(sla_working / sla_24x7, 2),
        "board_open_tickets": board["open_tickets"],
        "board_calls_per_s": round(board["board_calls_per_s"], 1),
        "sla_states_per_s_through_board": round(board["sla_states_per_s"]),
    }
    print_figures(figures)


if __name__ == "__main__":
    main()
