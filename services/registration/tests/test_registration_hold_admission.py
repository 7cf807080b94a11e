"""Admission at the hold, through the gRPC API against the real PostgreSQL:
while holds wait past their latency target, a share of new holds is turned
away at once with RESOURCE_EXHAUSTED (reason holds_busy) and nothing written;
once holds are served in time again, every hold is admitted."""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
from registration.config import RegistrationConfig
from registration_testkit import hold, local, reason_of, slot_counters, tomorrow
from tuoguan_common import metrics

pytestmark = pytest.mark.integration


@pytest.fixture
def config(request) -> RegistrationConfig:
    # 50 ms, the default: a hold alone takes a few, even on a loaded machine; one stuck on a lock takes 650.
    return RegistrationConfig(hold_latency_target=getattr(request, "param", 0.05))


def refuse_probability() -> float:
    return metrics.REGISTRY.get_sample_value("tuoguan_admission_refuse_probability", {"method": "HoldSlot"})


def attempt(stub, md, slot_id) -> str:
    try:
        hold(stub, md, slot_id)
        return "held"
    except grpc.RpcError as exc:
        assert exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, exc
        assert "try again" in exc.details()
        return reason_of(exc)


def test_holds_stuck_past_their_target_turn_new_holds_away_until_they_are_served_again(stub, store, clinic,
                                                                                     people):
    stuck_slot = clinic.slot(clinic.chen, local(tomorrow(), 9), capacity=5)
    open_slot = clinic.slot(clinic.wang, local(tomorrow(), 10), capacity=100)
    patients = [people.patient()[1] for _ in range(40)]

    with ThreadPoolExecutor(max_workers=41) as pool:
        with store.db.transaction() as lock:
            # Another transaction holds the slot's row: the batch holding it waits, and every hold behind it.
            lock.execute("SELECT 1 FROM slots WHERE id = %s FOR UPDATE", (stuck_slot,))
            first = pool.submit(attempt, stub, people.patient()[1], stuck_slot)
            time.sleep(0.65)
            assert not first.done()
            crowd = [pool.submit(attempt, stub, md, open_slot) for md in patients]
            deadline = time.monotonic() + 5
            while sum(c.done() for c in crowd) == 0 and time.monotonic() < deadline:
                time.sleep(0.01)
            # The rest of the crowd reaches the api (on a busy machine, later): until no more answer for 0.5 s.
            answered, quiet_since = sum(c.done() for c in crowd), time.monotonic()
            while time.monotonic() - quiet_since < 0.5 and time.monotonic() < deadline:
                time.sleep(0.02)
                if sum(c.done() for c in crowd) != answered:
                    answered, quiet_since = sum(c.done() for c in crowd), time.monotonic()
            answered_while_stuck = [c.result() for c in crowd if c.done()]
            assert refuse_probability() >= 0.3
        outcomes = [c.result(timeout=10) for c in crowd]

    assert first.result(timeout=10) == "held"
    assert answered_while_stuck and set(answered_while_stuck) == {"holds_busy"}, \
        "only the holds turned away answered while the queue was stuck"
    turned_away = outcomes.count("holds_busy")
    assert set(outcomes) <= {"held", "holds_busy"}, outcomes
    assert 0 < turned_away < len(patients), outcomes
    assert outcomes.count("held") == len(patients) - turned_away
    counters = slot_counters(store, open_slot)
    assert counters["held"] == counters["held_bookings"] == len(patients) - turned_away

    # Served in time again (nothing waits): the share falls back to nothing and everyone is admitted.
    time.sleep(1.2)
    others = [people.patient()[1] for _ in range(10)]
    assert [attempt(stub, md, open_slot) for md in others] == ["held"] * 10
    assert refuse_probability() == 0


@pytest.mark.parametrize("config", [0.0], indirect=True)
def test_without_a_target_a_stuck_queue_turns_nobody_away(stub, store, clinic, people):
    stuck_slot = clinic.slot(clinic.chen, local(tomorrow(), 9), capacity=5)
    open_slot = clinic.slot(clinic.wang, local(tomorrow(), 10), capacity=100)
    with ThreadPoolExecutor(max_workers=11) as pool:
        with store.db.transaction() as lock:
            lock.execute("SELECT 1 FROM slots WHERE id = %s FOR UPDATE", (stuck_slot,))
            first = pool.submit(attempt, stub, people.patient()[1], stuck_slot)
            time.sleep(0.3)
            crowd = [pool.submit(attempt, stub, people.patient()[1], open_slot) for _ in range(10)]
            time.sleep(0.3)
            assert not any(c.done() for c in crowd), "every hold waits its turn"
        outcomes = [c.result(timeout=10) for c in crowd]
    assert first.result(timeout=10) == "held"
    assert outcomes == ["held"] * 10


def test_holds_waiting_in_grpc_core_past_the_limit_turn_new_holds_away_though_each_hold_is_fast(
        database, verifier, store, clinic, people):
    """A busy api process takes calls from gRPC core more slowly than they come:
    the rest wait in core, where no hold's latency sees them (in the surge,
    40-50 ms in the handler while patients waited seconds). While a hold
    at the head of the queue has waited there longer than
    REGISTRATION_HOLD_CORE_WAIT_LIMIT_MS, holds are turned
    away as when they are slow, writing nothing; once none wait, all are admitted."""
    import threading

    from registration.api import register
    from tuoguan.registration.v1 import registration_pb2_grpc as pb_grpc
    from tuoguan_common import grpc_server
    from tuoguan_common.testing import free_port, wait_for

    # The latency's own rule out of the way: each hold here takes a few turns of 20 ms.
    config = RegistrationConfig(hold_latency_target=10, hold_core_wait_limit=0.25)
    server, port = grpc_server.build_server(
        service="registration", register=lambda srv: register(srv, None, database, config),
        verifier=verifier, port=free_port(), host="127.0.0.1")
    server.start()
    open_slot = clinic.slot(clinic.wang, local(tomorrow(), 10), capacity=100)
    busy = threading.Event()

    def other_work():
        # 20 ms of other work on every turn of the api's event loop: grpc.aio
        # takes a call from core only every few turns, a few dozen a second.
        if busy.is_set():
            time.sleep(0.02)
            server._loop.call_soon(other_work)

    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = pb_grpc.RegistrationServiceStub(channel)
            assert attempt(stub, people.patient()[1], open_slot) == "held"
            busy.set()
            server._loop.call_soon_threadsafe(other_work)
            with ThreadPoolExecutor(max_workers=60) as pool:
                crowd = [pool.submit(attempt, stub, people.patient()[1], open_slot) for _ in range(60)]
                outcomes = [c.result(timeout=60) for c in crowd]
            busy.clear()
            turned_away = outcomes.count("holds_busy")
            assert set(outcomes) <= {"held", "holds_busy"}, outcomes
            # Without the wait in core every one was held (each hold is fast); with it,
            # most are turned away while the head of the queue has waited past the limit.
            assert turned_away >= 20, outcomes
            counters = slot_counters(store, open_slot)
            assert counters["held"] == counters["held_bookings"] == 1 + outcomes.count("held")

            # Nothing waits any more: everyone is admitted.
            wait_for(lambda: grpc_server.calls_waiting("registration") == 0, message="no hold waiting in core")
            time.sleep(1.2)
            assert [attempt(stub, people.patient()[1], open_slot) for _ in range(10)] == ["held"] * 10
            assert refuse_probability() == 0
    finally:
        busy.clear()
        server.stop(0).wait(10)
