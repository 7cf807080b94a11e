"""The gRPC bootstrap: errors map to status codes once, tokens are checked,
every call is counted, health and reflection answer."""
from __future__ import annotations

import datetime
import logging

import grpc
import psycopg
import psycopg_pool
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tuoguan_common import auth, metrics
from tuoguan_common.errors import FailedPrecondition, InvalidArgument, NotFound
from tuoguan_common.grpc_server import FIELD_KEY, REASON_KEY, build_server, core_queue
from tuoguan_common.outbox import IdempotencyConflict
from tuoguan_common.testing import wait_for


def _echo_principal(request, context):
    principal = auth.current_principal()
    return f"{principal.subject}:{','.join(sorted(principal.roles))}".encode()


def _office_only(request, context):
    auth.current_principal().require(auth.REGISTRATION_OFFICE)
    return b"ok"


def _raise(exc):
    def method(request, context):
        raise exc
    return method


def _boom(request, context):
    raise RuntimeError("patient 13800000001 leaked?")


async def _echo_principal_on_the_loop(request, context):
    return _echo_principal(request, context)


class _NotAnEngineer(FailedPrecondition):
    """A refusal about what a field refers to: it names the field, as InvalidArgument does."""

    reason = "assignee_not_an_engineer"

    def __init__(self):
        super().__init__("assignee_id: not an engineer's account")
        self.field = "assignee_id"


async def _refuse_on_the_loop(request, context):
    raise FailedPrecondition("the slot is full", reason="slot_full")


METHODS = {
    "Public": lambda request, context: b"open to all",
    "Whoami": _echo_principal,
    "WhoamiAsync": _echo_principal_on_the_loop,
    "FullAsync": _refuse_on_the_loop,
    "OfficeOnly": _office_only,
    "Invalid": _raise(InvalidArgument("slot_id", "is required")),
    "KeyReused": _raise(IdempotencyConflict("key-1")),
    "Missing": _raise(NotFound("no such booking")),
    "Full": _raise(FailedPrecondition("the slot is full", reason="slot_full")),
    "NotAnEngineer": _raise(_NotAnEngineer()),
    "Boom": _boom,
    "DatabaseDown": _raise(psycopg.OperationalError("connection failed: Connection refused")),
    "PoolEmpty": _raise(psycopg_pool.PoolTimeout("couldn't get a connection after 5.00 sec")),
    "Deadlock": _raise(psycopg.errors.DeadlockDetected("deadlock detected")),
}


@pytest.fixture
def server(verifier):
    def register(srv):
        handlers = {name: grpc.unary_unary_rpc_method_handler(fn) for name, fn in METHODS.items()}
        # A method taking a real message (one string field), read by the server as every service's are.
        handlers["Typed"] = grpc.unary_unary_rpc_method_handler(
            lambda request, context: f"service={request.service}".encode(),
            request_deserializer=health_pb2.HealthCheckRequest.FromString)
        srv.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("test.Probe", handlers),))
        return ["test.Probe"]

    srv, port = build_server(service="probe", register=register, verifier=verifier, port=0,
                                     host="127.0.0.1")
    srv.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    channel.server = srv
    yield channel
    channel.close()
    assert srv.stop(0).wait(10)


def call(channel, method, token=None):
    md = auth.bearer_metadata(token) if token else None
    return channel.unary_unary(f"/test.Probe/{method}")(b"", metadata=md, timeout=5)


def test_principal_comes_from_the_verified_token(server, issuer):
    token = issuer.issue("patient-1", [auth.PATIENT])
    assert call(server, "Whoami", token) == b"patient-1:patient"


def test_missing_or_forged_token_is_unauthenticated(server, issuer, tmp_path):
    with pytest.raises(grpc.RpcError) as missing:
        call(server, "Whoami")
    assert missing.value.code() == grpc.StatusCode.UNAUTHENTICATED
    other_private, _ = auth.generate_keypair(tmp_path)
    forged = auth.TokenIssuer(other_private.read_bytes()).issue("admin", [auth.ADMIN])
    with pytest.raises(grpc.RpcError) as bad:
        call(server, "Whoami", forged)
    assert bad.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_role_is_enforced(server, issuer):
    with pytest.raises(grpc.RpcError) as denied:
        call(server, "OfficeOnly", issuer.issue("patient-1", [auth.PATIENT]))
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert call(server, "OfficeOnly", issuer.issue("staff-1", [auth.REGISTRATION_OFFICE])) == b"ok"


@pytest.mark.parametrize("method,code,reason,field", [
    ("Invalid", grpc.StatusCode.INVALID_ARGUMENT, "invalid_argument", "slot_id"),
    # A key reused for another request: still INVALID_ARGUMENT on the key, with a reason of its own.
    ("KeyReused", grpc.StatusCode.INVALID_ARGUMENT, "idempotency_key_reused", "idempotency_key"),
    ("Missing", grpc.StatusCode.NOT_FOUND, "not_found", None),
    ("Full", grpc.StatusCode.FAILED_PRECONDITION, "slot_full", None),
    ("NotAnEngineer", grpc.StatusCode.FAILED_PRECONDITION, "assignee_not_an_engineer", "assignee_id"),
])
def test_domain_errors_map_to_status_with_reason(server, method, code, reason, field):
    with pytest.raises(grpc.RpcError) as err:
        call(server, method)
    assert err.value.code() == code
    trailing = dict(err.value.trailing_metadata() or ())
    assert trailing.get(REASON_KEY) == reason
    assert trailing.get(FIELD_KEY) == field


def test_unexpected_error_is_internal_without_details(server):
    with pytest.raises(grpc.RpcError) as err:
        call(server, "Boom")
    assert err.value.code() == grpc.StatusCode.INTERNAL
    assert "13800000001" not in (err.value.details() or "")


def test_a_request_that_is_not_its_message_is_invalid_argument_counted_and_not_logged(server, caplog):
    typed = server.unary_unary("/test.Probe/Typed")
    assert typed(health_pb2.HealthCheckRequest(service="pacs").SerializeToString(), timeout=5) == b"service=pacs"
    before = metrics.GRPC_HANDLED.labels("probe", "Typed", "INVALID_ARGUMENT")._value.get()
    # Field 1 (service), 2 bytes long, that are not UTF-8; then bytes that are no message at all.
    for garbage in (b"\x0a\x02\xc3\x28", b"\xff\xff\xff"):
        with pytest.raises(grpc.RpcError) as err:
            typed(garbage, timeout=5)
        # Before, grpcio failed to read it: UNKNOWN, no reason or field, a traceback logged, nothing counted.
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        trailing = dict(err.value.trailing_metadata() or ())
        assert (trailing.get(REASON_KEY), trailing.get(FIELD_KEY)) == ("invalid_argument", "request")
        assert "grpc.health.v1.HealthCheckRequest" in err.value.details()
    assert metrics.GRPC_HANDLED.labels("probe", "Typed", "INVALID_ARGUMENT")._value.get() == before + 2
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_calls_are_counted_by_method_and_code(server):
    before = metrics.GRPC_HANDLED.labels("probe", "Full", "FAILED_PRECONDITION")._value.get()
    with pytest.raises(grpc.RpcError):
        call(server, "Full")
    after = metrics.GRPC_HANDLED.labels("probe", "Full", "FAILED_PRECONDITION")._value.get()
    assert after == before + 1


def test_health_answers_serving(server):
    stub = health_pb2_grpc.HealthStub(server)
    assert stub.Check(health_pb2.HealthCheckRequest(service="test.Probe")).status == health_pb2.HealthCheckResponse.SERVING


def test_coroutine_methods_see_the_principal_and_map_errors_the_same_way(server, issuer):
    token = issuer.issue("patient-2", [auth.PATIENT])
    assert call(server, "WhoamiAsync", token) == b"patient-2:patient"
    with pytest.raises(grpc.RpcError) as err:
        call(server, "FullAsync", token)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert dict(err.value.trailing_metadata() or ()).get(REASON_KEY) == "slot_full"


def test_health_answers_not_serving_once_shutting_down(server):
    stub = health_pb2_grpc.HealthStub(server)
    server.server.enter_graceful_shutdown()
    assert stub.Check(health_pb2.HealthCheckRequest(service="test.Probe")).status == \
        health_pb2.HealthCheckResponse.NOT_SERVING


def test_calls_past_the_limit_in_flight_are_shed_counted_and_health_still_answers(verifier):
    """Past the cap a call is refused at once, with a reason, and counted (grpcio's own
    limit refused before any metric saw it, so the shedding alert never could). Health checks are never
    capped: under grpcio's limit a busy api answered the kubelet's probe RESOURCE_EXHAUSTED, was taken
    out of service and restarted in the very surge its shedding is for."""
    import asyncio
    import threading
    from concurrent.futures import ThreadPoolExecutor

    release = threading.Event()
    running: list[bool] = []

    async def slow(request, context):
        running.append(True)
        while not release.is_set():
            await asyncio.sleep(0.02)
        return b"done"

    def register(srv):
        handlers = {"Slow": grpc.unary_unary_rpc_method_handler(slow)}
        srv.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("test.Slow", handlers),))
        return ["test.Slow"]

    shed = metrics.GRPC_HANDLED.labels("probe-limit", "Slow", "RESOURCE_EXHAUSTED")
    shed_before = shed._value.get()
    srv, port = build_server(service="probe-limit", register=register, verifier=verifier, port=0,
                             host="127.0.0.1", max_concurrent_rpcs=2)
    srv.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            call = channel.unary_unary("/test.Slow/Slow")
            health = health_pb2_grpc.HealthStub(channel)

            def attempt(_):
                try:
                    return call(b"", timeout=10).decode()
                except grpc.RpcError as exc:
                    return exc.code().name, dict(exc.trailing_metadata() or ())

            with ThreadPoolExecutor(max_workers=2) as pool:
                admitted = [pool.submit(attempt, i) for i in range(2)]
                wait_for(lambda: len(running) == 2, message="two calls in flight")
                refusals = [attempt(i) for i in range(3)]
                checks = [health.Check(health_pb2.HealthCheckRequest(service=name), timeout=2).status
                          for name in ("", "test.Slow")]
                release.set()
                outcomes = [f.result(10) for f in admitted]
        assert outcomes == ["done", "done"]
        assert [code for code, _ in refusals] == ["RESOURCE_EXHAUSTED"] * 3
        assert {t[REASON_KEY] for _, t in refusals} == {"resource_exhausted"}
        assert checks == [health_pb2.HealthCheckResponse.SERVING] * 2
        assert shed._value.get() - shed_before == 3
    finally:
        srv.stop(0).wait(10)


def test_calls_waiting_in_grpc_core_for_a_busy_server_are_counted_until_it_takes_them(verifier):
    """A busy grpc.aio server takes calls from gRPC core more slowly than they
    come, and the rest wait in core, where no handler's duration sees them: a
    surge looked fast on the dashboards while the patients waited seconds. The
    wait is counted from core's own count of calls begun, and so are the calls
    taken (from the two, registration tells how long the call at the head of
    the queue has waited)."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from prometheus_client import REGISTRY

    def register(srv):
        handlers = {"Quick": grpc.unary_unary_rpc_method_handler(lambda request, context: b"done")}
        srv.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("test.Quick", handlers),))
        return ["test.Quick"]

    def waiting():
        return REGISTRY.get_sample_value("tuoguan_grpc_server_calls_waiting", {"service": "probe-waiting"})

    srv, port = build_server(service="probe-waiting", register=register, verifier=verifier, port=0,
                             host="127.0.0.1")
    srv.start()
    release = threading.Event()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            quick = channel.unary_unary("/test.Quick/Quick")
            assert quick(b"", timeout=5) == b"done"
            assert waiting() == 0
            assert core_queue("probe-waiting") == (0, 1)
            # The server's event loop busy with something else: nothing is taken from core.
            srv._loop.call_soon_threadsafe(release.wait, 10)
            with ThreadPoolExecutor(max_workers=5) as pool:
                calls = [pool.submit(quick, b"", timeout=10) for _ in range(5)]
                wait_for(lambda: waiting() == 5, message="five calls waiting in gRPC core")
                assert core_queue("probe-waiting") == (5, 1), "waiting, not taken"
                release.set()
                assert [c.result(10) for c in calls] == [b"done"] * 5
            wait_for(lambda: waiting() == 0, message="no call waiting once the server took them")
            assert core_queue("probe-waiting") == (0, 6)
    finally:
        release.set()
        srv.stop(0).wait(10)


def test_a_grpcio_without_the_channelz_read_still_serves_counting_nothing_waiting(verifier, monkeypatch, caplog):
    """Core's channelz is read through grpcio's private cygrpc, as grpcio-channelz
    reads it: a grpcio that moved it must leave the api serving, its calls in
    core uncounted (and registration never turning holds away for them), and say so."""
    from tuoguan_common import grpc_server

    monkeypatch.setattr(grpc_server, "_channelz_get_servers", None)

    def register(srv):
        handlers = {"Quick": grpc.unary_unary_rpc_method_handler(lambda request, context: b"done")}
        srv.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("test.Quick", handlers),))
        return ["test.Quick"]

    with caplog.at_level("WARNING", logger="tuoguan_common.grpc_server"):
        srv, port = build_server(service="probe-no-channelz", register=register, verifier=verifier, port=0,
                                 host="127.0.0.1")
    srv.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            assert channel.unary_unary("/test.Quick/Quick")(b"", timeout=5) == b"done"
        assert core_queue("probe-no-channelz") == (0, 0)
        assert any("channelz" in r.getMessage() for r in caplog.records)
    finally:
        srv.stop(0).wait(10)


def test_request_fields_refuse_control_characters_and_name_the_field():
    from tuoguan_common import errors

    assert errors.text("  脑外科 \n门诊 ", "name", 20) == "脑外科 \n门诊"
    assert errors.text("", "note", 20, required=False) == ""
    assert errors.idempotency_key(" 5f0c-key ") == "5f0c-key"
    assert errors.entity_id("5F0C8A0E-3E0B-4B8E-9D4E-6C3E9A1B2C3D", "slot_id") == "5f0c8a0e-3e0b-4b8e-9d4e-6c3e9a1b2c3d"
    assert errors.entity_id(" ", "slot_id", required=False) is None
    assert errors.calendar_date(" 2026-12-07 ", "day") == datetime.date(2026, 12, 7)
    assert errors.calendar_date("", "day") is None
    for call, field, problem in [
        (lambda: errors.text("a\x00b", "reason", 20), "reason", "control characters"),
        (lambda: errors.text("x" * 21, "reason", 20), "reason", "at most 20"),
        (lambda: errors.require("a\x1bb", "name"), "name", "control characters"),
        (lambda: errors.idempotency_key("k\x7f"), "idempotency_key", "control characters"),
        (lambda: errors.idempotency_key("k" * 201), "idempotency_key", "at most 200"),
        (lambda: errors.entity_id("slot-7", "slot_id"), "slot_id", "not a valid id"),
        (lambda: errors.entity_id("", "slot_id"), "slot_id", "required"),
        (lambda: errors.calendar_date("2026-W48-4", "day"), "day", "YYYY-MM-DD"),
        (lambda: errors.calendar_date("2026-02-30", "day"), "day", "YYYY-MM-DD"),
        (lambda: errors.calendar_date("9999-12-31", "day"), "day", "between 1900-01-01 and 2999-12-31"),
    ]:
        with pytest.raises(errors.InvalidArgument) as refused:
            call()
        assert refused.value.field == field and problem in refused.value.problem


def test_a_stale_token_stops_only_what_needs_a_caller(server, issuer, verifier):
    """Signing in again or searching must work for a client still sending its
    expired or revoked token; a method that needs the caller refuses it, saying why."""
    expired = issuer.issue("patient-1", [auth.PATIENT], ttl_seconds=-60)
    assert call(server, "Public", expired) == b"open to all"
    with pytest.raises(grpc.RpcError) as refused:
        call(server, "Whoami", expired)
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "expired" in refused.value.details()
    with pytest.raises(grpc.RpcError) as forged:
        call(server, "WhoamiAsync", "not-a-token")
    assert forged.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert call(server, "Public", "not-a-token") == b"open to all"


@pytest.mark.parametrize("method", ["DatabaseDown", "PoolEmpty"])
def test_a_database_out_of_reach_is_unavailable_worth_a_retry(server, method):
    with pytest.raises(grpc.RpcError) as err:
        call(server, method)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    assert dict(err.value.trailing_metadata() or ())[REASON_KEY] == "database_unavailable"


def test_an_error_the_database_answered_stays_internal(server):
    with pytest.raises(grpc.RpcError) as err:
        call(server, "Deadlock")
    assert err.value.code() == grpc.StatusCode.INTERNAL
