"""Baselines measured in the same run as the platform figures, on the same
machine: a raw PostgreSQL booking transaction and a raw grpcio echo."""
from __future__ import annotations

import threading
import time
import uuid
from concurrent import futures

import grpc
import psycopg

from tuoguan_common.db import drop_database, ensure_database


def run_threads(n: int, seconds: float, body) -> int:
    """Runs ``body(i)`` in n threads for ``seconds``; returns total iterations."""
    stop = time.monotonic() + seconds
    counts = [0] * n

    def loop(i):
        ctx = body(i)
        while time.monotonic() < stop:
            ctx()
            counts[i] += 1

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts)


def raw_postgres_booking_rate(database_url: str, *, connections: int = 8, slots: int = 50, seconds: float = 8.0) -> float:
    """Transactions/s of: lock a slot row, update its counter, insert a booking."""
    url = database_url.rsplit("/", 1)[0] + f"/bench_raw_{uuid.uuid4().hex[:8]}"
    ensure_database(url)
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE TABLE slot (id int PRIMARY KEY, capacity int NOT NULL, booked int NOT NULL DEFAULT 0)")
            conn.execute("CREATE TABLE booking (id uuid PRIMARY KEY, slot_id int NOT NULL, patient uuid NOT NULL, "
                         "created_at timestamptz NOT NULL DEFAULT now())")
            conn.execute("INSERT INTO slot (id, capacity) SELECT g, 1000000000 FROM generate_series(1, %s) g", (slots,))

        def body(i):
            conn = psycopg.connect(url)
            n = [i]

            def one():
                n[0] += 1
                slot = n[0] % slots + 1
                with conn.transaction():
                    conn.execute("SELECT booked, capacity FROM slot WHERE id = %s FOR UPDATE", (slot,))
                    conn.execute("UPDATE slot SET booked = booked + 1 WHERE id = %s", (slot,))
                    conn.execute("INSERT INTO booking (id, slot_id, patient) VALUES (%s, %s, %s)",
                                 (uuid.uuid4(), slot, uuid.uuid4()))
            return one

        done = run_threads(connections, seconds, body)
        return done / seconds
    finally:
        drop_database(url)


def raw_grpc_echo_rate(*, client_threads: int = 10, server_threads: int = 10, seconds: float = 8.0) -> float:
    """Unary calls/s of a grpcio server that echoes bytes, no interceptors."""

    def echo(request, context):
        return request

    handler = grpc.method_handlers_generic_handler(
        "bench.Echo", {"Echo": grpc.unary_unary_rpc_method_handler(echo)}
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=server_threads))
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        call = channel.unary_unary("/bench.Echo/Echo")
        payload = b"x" * 64

        def body(_i):
            return lambda: call(payload, timeout=5)

        done = run_threads(client_threads, seconds, body)
        channel.close()
        return done / seconds
    finally:
        server.stop(0)


if __name__ == "__main__":
    import os

    url = os.environ.get("DATABASE_URL") or "postgresql://postgres@127.0.0.1:5432/postgres"
    print("raw postgres booking tx/s", round(raw_postgres_booking_rate(url, seconds=4)))
    print("raw grpc echo calls/s", round(raw_grpc_echo_rate(seconds=4)))
