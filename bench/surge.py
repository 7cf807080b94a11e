"""make bench: the Monday-morning surge.

Starts the whole platform (every api and worker as real processes) on fresh
databases, publishes a schedule, then:

1. measures the baselines on this machine in the same run: a raw PostgreSQL
   booking transaction and a raw grpcio echo;
2. the 07:00 burst: many patients holding at once, across many slots, through
   the public gRPC API (holds/s, latency p50/p99);
3. hot slots: thousands of patients at a few slots; exactly their capacity wins;
4. sustained full bookings (hold, pay, confirmed event handled) at a target
   rate for a fixed time;
5. integrity: overbooked slots, double charges, lost events.

It ends with one line of JSON holding the figures. A benchmark, not a test:
it asserts nothing, it reports.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import grpc
from grpc import aio

from bench import baselines, integrity, upkeep
from bench.report import machine_note, print_figures, progress
from tuoguan.billing.v1 import billing_pb2, billing_pb2_grpc
from tuoguan.registration.v1 import registration_pb2 as reg
from tuoguan.registration.v1 import registration_pb2_grpc as reg_grpc
from tuoguan_common import auth
from tuoguan_common.launcher import DOMAIN_SERVICES, Platform


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


class Patients:
    """Fresh patients: the bench signs their tokens with the platform's key,
    as identity would (sign-up's argon2 cost is not what is measured here).
    Patients sign in before the 07:00 release, so ``sign_in`` issues tokens
    ahead and the timed phases do not pay for identity's work."""

    def __init__(self, issuer: auth.TokenIssuer):
        self.issuer = issuer
        self._signed_in: list[tuple[str, tuple]] = []

    def _issue(self) -> tuple[str, tuple]:
        patient_id = str(uuid.uuid4())
        return patient_id, auth.bearer_metadata(self.issuer.issue(patient_id, [auth.PATIENT]))

    def sign_in(self, count: int) -> None:
        self._signed_in.extend(self._issue() for _ in range(count))

    def new(self) -> tuple[str, tuple]:
        return self._signed_in.pop() if self._signed_in else self._issue()


class ConfirmationListener:
    """Counts BookingConfirmed events on their own queue, as a consumer would."""

    def __init__(self, amqp_uri: str):
        import kombu

        self.confirmed: dict[str, float] = {}
        self._kombu = kombu.Connection(amqp_uri)
        self._kombu.connect()
        self._conn = self._kombu.connection
        ch = self._conn.channel()
        ch.exchange_declare("registration.events", "topic", durable=True, auto_delete=False)
        self.queue = f"bench-confirmed-{uuid.uuid4().hex[:6]}"
        ch.queue_declare(self.queue, exclusive=True)
        ch.queue_bind(self.queue, "registration.events", routing_key="BookingConfirmed")
        ch.basic_consume(self.queue, callback=self._on_message, no_ack=True)
        self._stop = False
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _on_message(self, message) -> None:
        body = json.loads(message.body)
        self.confirmed.setdefault(body["booking_id"], time.monotonic())

    def _loop(self) -> None:
        import socket

        while not self._stop:
            try:
                self._conn.drain_events(timeout=0.2)
            except socket.timeout:
                continue

    def close(self) -> None:
        self._stop = True
        self._thread.join(timeout=2)
        self._kombu.release()


class Clients:
    """Patients' connections: many clients, so several connections, each
    its own (not gRPC's shared subchannel), spread over the api's replicas."""

    def __init__(self, target: str, connections: int = 8):
        self._channels = [aio.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)])
                          for _ in range(connections)]
        # A stub builds a callable per method of its service: made once per connection, not per call.
        self._stubs: dict[type, list] = {}
        self._next = 0

    def stub(self, stub_type):
        stubs = self._stubs.get(stub_type)
        if stubs is None:
            stubs = self._stubs[stub_type] = [stub_type(channel) for channel in self._channels]
        self._next += 1
        return stubs[self._next % len(stubs)]

    async def __aenter__(self) -> "Clients":
        return self

    async def __aexit__(self, *exc) -> None:
        for channel in self._channels:
            await channel.close()


async def publish_schedule(platform: Platform, issuer: auth.TokenIssuer, capacity: int) -> list[reg.Slot]:
    office = auth.bearer_metadata(issuer.issue(str(uuid.uuid4()), [auth.REGISTRATION_OFFICE]))
    async with aio.insecure_channel(platform.address("registration")) as ch:
        stub = reg_grpc.RegistrationServiceStub(ch)
        departments = (await stub.ListDepartments(reg.ListDepartmentsRequest())).departments
        doctors = []
        for d in departments:
            doctors.extend((await stub.ListDoctors(reg.ListDoctorsRequest(department_id=d.department_id))).doctors)
        # Evening clinics with a large capacity: room for every booking the bench makes.
        for doctor in doctors:
            for weekday in range(1, 8):
                await stub.PutSessionTemplate(reg.PutSessionTemplateRequest(
                    template=reg.SessionTemplate(
                        doctor_id=doctor.doctor_id, weekday=weekday, period=reg.PERIOD_EVENING,
                        start_time="18:00", end_time="21:00", slot_minutes=15, capacity_per_slot=capacity,
                        active=True),
                    idempotency_key=str(uuid.uuid4())), metadata=office)
        await stub.PublishSchedule(reg.PublishScheduleRequest(days_ahead=14, release_now=True), metadata=office)
        slots = []
        for d in departments:
            resp = await stub.ListSlots(reg.ListSlotsRequest(department_id=d.department_id, only_available=True))
            # Paid slots only: the seed's free demo sessions today are confirmed at the hold, with no payment.
            slots.extend(s for s in resp.slots if s.fee_fen > 0)
        return slots


async def hold_burst(platform, patients: Patients, slots, seconds: float, concurrency: int) -> dict:
    """Back-to-back holds by fresh patients across many slots."""
    latencies: list[float] = []
    outcomes: dict[str, int] = {}
    deadline = time.monotonic() + seconds
    big = [s for s in slots if s.period == reg.PERIOD_EVENING]
    async with Clients(platform.address("registration")) as clients:
        counter = 0

        async def worker(i: int):
            nonlocal counter
            stub = clients.stub(reg_grpc.RegistrationServiceStub)
            while time.monotonic() < deadline:
                counter += 1
                slot = big[counter % len(big)]
                _pid, md = patients.new()
                started = time.perf_counter()
                try:
                    await stub.HoldSlot(reg.HoldSlotRequest(slot_id=slot.slot_id, idempotency_key=str(uuid.uuid4())),
                                        metadata=md, timeout=10)
                    outcome = "held"
                except grpc.aio.AioRpcError as exc:
                    outcome = exc.code().name
                latencies.append(time.perf_counter() - started)
                outcomes[outcome] = outcomes.get(outcome, 0) + 1

        started = time.monotonic()
        await asyncio.gather(*(worker(i) for i in range(concurrency)))
        elapsed = time.monotonic() - started
    return {
        "holds_per_s": outcomes.get("held", 0) / elapsed,
        "calls_per_s": len(latencies) / elapsed,
        "p50_ms": percentile(latencies, 50) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "outcomes": outcomes,
    }


async def hot_slots(platform, patients: Patients, slots, attempts: int, n_slots: int) -> dict:
    """Many patients at a few slots at the same moment: exactly their capacity wins."""
    hot = [s for s in slots if s.period != reg.PERIOD_EVENING][:n_slots] or slots[:n_slots]
    wins: dict[str, int] = {s.slot_id: 0 for s in hot}
    async with Clients(platform.address("registration")) as clients:

        async def attempt(i: int):
            stub = clients.stub(reg_grpc.RegistrationServiceStub)
            slot = hot[i % len(hot)]
            _pid, md = patients.new()
            try:
                await stub.HoldSlot(reg.HoldSlotRequest(slot_id=slot.slot_id, idempotency_key=str(uuid.uuid4())),
                                    metadata=md, timeout=30)
                wins[slot.slot_id] += 1
            except grpc.aio.AioRpcError:
                pass

        await asyncio.gather(*(attempt(i) for i in range(attempts)))
    capacity = {s.slot_id: s.remaining for s in hot}
    return {
        "slots": len(hot), "attempts": attempts,
        "won": sum(wins.values()), "capacity": sum(capacity.values()),
        "exact": all(wins[k] == capacity[k] for k in wins),
    }


async def sustained(platform, patients: Patients, slots, listener: ConfirmationListener, rate: float,
                    seconds: float, method_token: str = "tok_ok") -> dict:
    """Open-loop full bookings at ``rate`` per second for ``seconds``."""
    big = [s for s in slots if s.period == reg.PERIOD_EVENING]
    hold_lat: list[float] = []
    started_at: dict[str, float] = {}
    errors: dict[str, int] = {}
    async with Clients(platform.address("registration")) as registration, \
            Clients(platform.address("billing")) as billing:

        async def booking(i: int):
            rstub = registration.stub(reg_grpc.RegistrationServiceStub)
            bstub = billing.stub(billing_pb2_grpc.BillingServiceStub)
            slot = big[(i * 7919) % len(big)]
            _pid, md = patients.new()
            t0 = time.perf_counter()
            step = "hold"
            try:
                held = await rstub.HoldSlot(reg.HoldSlotRequest(slot_id=slot.slot_id,
                                                                idempotency_key=str(uuid.uuid4())),
                                            metadata=md, timeout=10)
                hold_lat.append(time.perf_counter() - t0)
                started_at[held.booking.booking_id] = time.monotonic()
                step = "pay"
                # With the hold's ticket, as the portal and the HTTP API's clients pay.
                await bstub.PayRegistrationFee(billing_pb2.PayRegistrationFeeRequest(
                    booking_id=held.booking.booking_id, payment_method_token=method_token,
                    idempotency_key=str(uuid.uuid4()), payment_ticket=held.payment_ticket), metadata=md, timeout=10)
            except grpc.aio.AioRpcError as exc:
                # Which call failed, and how: a shed pay wastes its hold, a shed hold does not.
                failed = f"{step}:{exc.code().name}"
                errors[failed] = errors.get(failed, 0) + 1

        tasks = []
        t_start = time.monotonic()
        total = int(rate * seconds)
        last_report = t_start
        for i in range(total):
            due = t_start + i / rate
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.ensure_future(booking(i)))
            if time.monotonic() - last_report >= 10:
                last_report = time.monotonic()
                progress(f"  sustained: {i} started, {len(listener.confirmed)} confirmed, "
                         f"hold p99 so far {percentile(hold_lat, 99) * 1000:.1f} ms")
        await asyncio.gather(*tasks)
        offered_end = time.monotonic()
        # Let the saga finish the bookings already paid for.
        drain_deadline = time.monotonic() + 30
        while time.monotonic() < drain_deadline:
            if all(b in listener.confirmed for b in started_at):
                break
            await asyncio.sleep(0.2)
    ours = {b: listener.confirmed[b] for b in started_at if b in listener.confirmed}
    in_window = [b for b, t in ours.items() if t <= offered_end + 1.0]
    full_latency = [ours[b] - started_at[b] for b in ours]
    window = offered_end - t_start
    return {
        "offered_per_s": total / window,
        "held": len(started_at),
        "confirmed": len(ours),
        "confirmed_in_window_per_s": len(in_window) / window,
        "hold_p50_ms": percentile(hold_lat, 50) * 1000,
        "hold_p99_ms": percentile(hold_lat, 99) * 1000,
        "full_p50_ms": percentile(full_latency, 50) * 1000,
        "full_p99_ms": percentile(full_latency, 99) * 1000,
        "errors": errors,
        "booking_ids": list(started_at),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=float(os.environ.get("BENCH_SECONDS", 60)))
    parser.add_argument("--rate", type=float, default=float(os.environ.get("BENCH_RATE", 300)))
    parser.add_argument("--burst-seconds", type=float, default=8.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--baseline-seconds", type=float, default=8.0)
    parser.add_argument("--keep", action="store_true", help="keep the bench databases")
    parser.add_argument("--registration-apis", type=int, default=int(os.environ.get("BENCH_REGISTRATION_APIS", 2)),
                        help="registration api processes (replicas sharing the port): the api is one Python "
                             "process per replica, so one replica uses one core at most")
    parser.add_argument("--autovacuum-rounds", action="store_true",
                        help="on a server with autovacuum off, make autovacuum's rounds on the platform's databases "
                             "(bench/upkeep.py): for runs of minutes, which slow down as the tables grow otherwise")
    args = parser.parse_args()

    progress(f"machine: {machine_note()}")
    database_url = os.environ.get("DATABASE_URL") or "postgresql://postgres@127.0.0.1:5432/postgres"
    amqp_uri = os.environ.get("AMQP_URI") or "amqp://guest:guest@127.0.0.1:5672//"

    progress("baseline: raw PostgreSQL booking transaction (8 connections, 50 slots)")
    raw_pg = baselines.raw_postgres_booking_rate(database_url, seconds=args.baseline_seconds)
    progress(f"  {raw_pg:,.0f} tx/s")
    progress("baseline: raw grpcio echo (10 server threads, 10 client threads)")
    raw_grpc = baselines.raw_grpc_echo_rate(seconds=args.baseline_seconds)
    progress(f"  {raw_grpc:,.0f} calls/s")

    work = Path(tempfile.mkdtemp(prefix="tuoguan-bench-"))
    plat = Platform(work_dir=work, database_url=database_url, amqp_uri=amqp_uri,
                    db_prefix=f"bench_{uuid.uuid4().hex[:6]}", keep_databases=args.keep,
                    extra_env={"LOG_LEVEL": "WARNING"}, api_replicas={"registration": args.registration_apis})
    progress(f"starting the platform (logs in {work})")
    plat.start(with_gateway=False)
    listener = None
    rounds = contextlib.ExitStack()
    try:
        autovacuum = rounds.enter_context(upkeep.autovacuum_rounds(
            [plat.db_url(s) for s in DOMAIN_SERVICES], database_url, progress, stand_in=args.autovacuum_rounds))
        plat.seed()
        issuer = auth.TokenIssuer(plat.private_key.read_bytes())
        patients = Patients(issuer)
        signed_in = int(args.rate * args.seconds + 2000 + 2500 * args.burst_seconds)
        progress(f"{signed_in:,} patients sign in before the release")
        patients.sign_in(signed_in)
        progress("publishing two weeks of evening clinics for the surge")
        slots = asyncio.run(publish_schedule(plat, issuer, capacity=40))
        progress(f"  {len(slots)} released slots")
        listener = ConfirmationListener(plat.amqp_uri)

        progress(f"07:00 burst: {args.concurrency} patients at a time holding for {args.burst_seconds:.0f} s")
        burst = asyncio.run(hold_burst(plat, patients, slots, args.burst_seconds, args.concurrency))
        progress(f"  {burst['holds_per_s']:,.0f} holds/s, p50 {burst['p50_ms']:.1f} ms, "
                 f"p99 {burst['p99_ms']:.1f} ms, outcomes {burst['outcomes']}")

        progress("hot slots: 2,000 patients at 5 slots at once")
        hot = asyncio.run(hot_slots(plat, patients, slots, attempts=2000, n_slots=5))
        progress(f"  {hot['won']} won of capacity {hot['capacity']}: exact={hot['exact']}")

        progress(f"sustained full bookings: {args.rate:.0f}/s offered for {args.seconds:.0f} s")
        sus = asyncio.run(sustained(plat, patients, slots, listener, args.rate, args.seconds))
        progress(f"  confirmed {sus['confirmed']} of {sus['held']} held; {sus['confirmed_in_window_per_s']:,.0f}/s "
                 f"in the window; hold p50 {sus['hold_p50_ms']:.1f} ms p99 {sus['hold_p99_ms']:.1f} ms; "
                 f"hold to confirmed p50 {sus['full_p50_ms']:.0f} ms p99 {sus['full_p99_ms']:.0f} ms; "
                 f"errors {sus['errors']}")

        progress("integrity: overbooked slots, double charges, lost events")
        checks = integrity.check(plat, sus["booking_ids"], listener.confirmed)
        progress(f"  {checks}")
    finally:
        rounds.close()
        if listener is not None:
            listener.close()
        plat.stop()

    figures = {
        "machine": machine_note(),
        "registration_api_processes": args.registration_apis,
        "postgres_autovacuum": autovacuum(),
        "raw_postgres_booking_tx_per_s": round(raw_pg),
        "raw_grpc_echo_per_s": round(raw_grpc),
        "hold_burst_per_s": round(burst["holds_per_s"]),
        "hold_burst_p50_ms": round(burst["p50_ms"], 1),
        "hold_burst_p99_ms": round(burst["p99_ms"], 1),
        "hold_vs_raw_postgres": round(burst["holds_per_s"] / raw_pg, 2),
        "hold_vs_raw_grpc": round(burst["holds_per_s"] / raw_grpc, 2),
        "hot_slots_exact": hot["exact"],
        "full_bookings_offered_per_s": round(sus["offered_per_s"]),
        "full_bookings_confirmed_per_s": round(sus["confirmed_in_window_per_s"]),
        "full_bookings_seconds": args.seconds,
        "sustained_hold_p99_ms": round(sus["hold_p99_ms"], 1),
        "hold_to_confirmed_p99_ms": round(sus["full_p99_ms"]),
        **checks,
    }
    print_figures(figures)


if __name__ == "__main__":
    sys.exit(main())
