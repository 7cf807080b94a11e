"""The gateway as a platform component: OpenAPI, error mapping, metrics,
traces, logs, health and the landing page."""
from __future__ import annotations

import logging
import re
import sys
import typing

import grpc
import httpx
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from pydantic import BaseModel, ValidationError
from opentelemetry import trace
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from fastapi.routing import iter_route_contexts
from gateway_testkit import fresh_phone, new_key, sign_up

from gateway.app import create_app
from gateway.convert import fill, message_model
from gateway.errors import http_status
from tuoguan_common.testing import free_port, wait_for

API = {
    ("post", "/api/v1/auth/signup/code"), ("post", "/api/v1/auth/signup"), ("post", "/api/v1/auth/signin"), ("post", "/api/v1/auth/signout"),
    ("get", "/api/v1/me"),
    ("post", "/api/v1/admin/staff-accounts"), ("get", "/api/v1/admin/staff-accounts"),
    ("put", "/api/v1/admin/staff-accounts/{account_id}/grade"),
    ("get", "/api/v1/departments"), ("get", "/api/v1/departments/{department_id}/doctors"), ("get", "/api/v1/slots"),
    ("post", "/api/v1/bookings"), ("get", "/api/v1/bookings"), ("get", "/api/v1/bookings/{booking_id}"),
    ("post", "/api/v1/bookings/{booking_id}/payment"), ("get", "/api/v1/bookings/{booking_id}/payments"), ("get", "/api/v1/payments"),
    ("post", "/api/v1/bookings/{booking_id}/cancel"), ("get", "/api/v1/bookings/{booking_id}/slip.pdf"),
    ("get", "/api/v1/office/sessions"), ("post", "/api/v1/office/session-templates"),
    ("get", "/api/v1/office/session-templates"), ("post", "/api/v1/office/schedule/publish"),
    ("post", "/api/v1/office/sessions/{session_id}/suspend"), ("post", "/api/v1/office/bookings/{booking_id}/check-in"),
    ("post", "/api/v1/office/bookings/{booking_id}/no-show"),
    ("get", "/api/v1/office/sessions/{session_id}/bookings"),
    ("get", "/api/v1/admin/calendar"), ("put", "/api/v1/admin/calendar/{day}"),
    ("delete", "/api/v1/admin/calendar/{day}"),
    ("post", "/api/v1/auth/password-reset"), ("post", "/api/v1/auth/password-reset/confirm"),
    ("get", "/api/v1/finance/ledger"), ("get", "/api/v1/finance/reconciliation"),
    ("post", "/api/v1/admin/device-tokens"), ("get", "/api/v1/admin/device-tokens"),
    ("post", "/api/v1/admin/device-tokens/{token_id}/revoke"),
    ("get", "/api/v1/subsystems"), ("put", "/api/v1/admin/subsystems"),
    ("post", "/api/v1/tickets"), ("get", "/api/v1/tickets"), ("get", "/api/v1/tickets/{ticket_id}"),
    ("post", "/api/v1/tickets/{ticket_id}/actions/{action}"),
    ("post", "/api/v1/tickets/{ticket_id}/comments"), ("post", "/api/v1/tickets/{ticket_id}/worklogs"),
    ("get", "/api/v1/tickets/{ticket_id}/worklogs"),
    ("post", "/api/v1/alertmanager/webhook"),
}


def test_openapi_lists_every_api_route():
    app = create_app()
    served = {(m.lower(), r.path) for r in iter_route_contexts(app.routes) for m in r.methods or ()
              if r.path.startswith("/api/")}
    documented = {(m, p) for p, ops in app.openapi()["paths"].items() for m in ops if p.startswith("/api/")}
    assert served == documented == API


def _request_bodies() -> dict[str, type[BaseModel]]:
    bodies = {}
    for route in iter_route_contexts(create_app().routes):
        body = getattr(route, "body_field", None)
        if body is not None and route.path.startswith("/api/"):
            # TicketChange | None: the model itself.
            [model] = [t for t in typing.get_args(body.field_info.annotation) or [body.field_info.annotation]
                       if isinstance(t, type) and issubclass(t, BaseModel)]
            bodies[route.path] = model
    return bodies


def test_no_request_body_takes_a_value_its_proto_field_could_not_hold():
    """Every field of every request body refuses a lone surrogate and a number past 64 bits: as a
    string or an integer a proto cannot hold it, and it must be 422 here, not a failure in protobuf."""
    bodies = _request_bodies()
    assert len(bodies) >= 15
    for path, model in bodies.items():
        for name in model.model_fields:
            for value in ("\ud800", "x\udfffy", 2**64):
                with pytest.raises(ValidationError) as refused:
                    model.model_validate({name: value})
                assert any(e["loc"][:1] == (name,) for e in refused.value.errors()), (path, name, value)


WIDTHS = {
    descriptor_pb2.FieldDescriptorProto.TYPE_INT32: (-(2**31), 2**31 - 1),
    descriptor_pb2.FieldDescriptorProto.TYPE_SINT32: (-(2**31), 2**31 - 1),
    descriptor_pb2.FieldDescriptorProto.TYPE_UINT32: (0, 2**32 - 1),
    descriptor_pb2.FieldDescriptorProto.TYPE_FIXED32: (0, 2**32 - 1),
    descriptor_pb2.FieldDescriptorProto.TYPE_INT64: (-(2**63), 2**63 - 1),
    descriptor_pb2.FieldDescriptorProto.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    descriptor_pb2.FieldDescriptorProto.TYPE_UINT64: (0, 2**64 - 1),
    descriptor_pb2.FieldDescriptorProto.TYPE_FIXED64: (0, 2**64 - 1),
}


def test_derived_models_take_exactly_the_integers_their_proto_fields_hold():
    file = descriptor_pb2.FileDescriptorProto(name="gateway_widths_test.proto", package="gateway_widths_test",
                                              syntax="proto3")
    message = file.message_type.add(name="GatewayWidthsTest")
    for number, kind in enumerate(WIDTHS, start=1):
        message.field.add(name=f"f{kind}", number=number, type=kind,
                          label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    descriptor = pool.FindMessageTypeByName("gateway_widths_test.GatewayWidthsTest")
    model, proto = message_model(descriptor), message_factory.GetMessageClass(descriptor)
    for kind, (low, high) in WIDTHS.items():
        for edge in (low, high):
            # What the model takes, protobuf takes.
            data = model.model_validate({f"f{kind}": edge}).model_dump(mode="json")
            assert getattr(fill(proto(), data), f"f{kind}") == edge
        for beyond in (low - 1, high + 1):
            with pytest.raises(ValidationError):
                model.model_validate({f"f{kind}": beyond})
            with pytest.raises(ValueError):
                setattr(proto(), f"f{kind}", beyond)


@pytest.mark.integration
def test_openapi_and_docs_are_served(http):
    spec = http.get("/openapi.json").json()
    assert spec["info"]["title"] == "Tuoguan API"
    assert spec["paths"]["/api/v1/bookings"]["post"]["responses"]["409"]["content"]["application/json"]["schema"] \
        == {"$ref": "#/components/schemas/ErrorReply"}
    assert "swagger" in http.get("/docs").text.lower()


@pytest.mark.integration
@pytest.mark.parametrize("page, script", [("/docs", "swagger-ui-bundle.js"), ("/redoc", "redoc.standalone.js")])
def test_the_api_documentation_pages_need_nothing_from_outside(http, page, script):
    """A hospital intranet reaches no CDN: every script, style and icon the pages load is the gateway's own."""
    html = http.get(page).text
    assets = re.findall(r'(?:src|href)="([^"]+)"', html) + re.findall(r"(?:url|href): ?'([^']+)'", html)
    assert any(asset.endswith(script) for asset in assets), assets
    for asset in assets:
        assert asset.startswith("/"), f"{page} loads {asset} from elsewhere"
        reply = http.get(asset)
        assert reply.status_code == 200 and reply.content, asset


@pytest.mark.parametrize("code,status", [
    (grpc.StatusCode.INVALID_ARGUMENT, 422), (grpc.StatusCode.NOT_FOUND, 404),
    (grpc.StatusCode.UNAUTHENTICATED, 401), (grpc.StatusCode.PERMISSION_DENIED, 403),
    (grpc.StatusCode.FAILED_PRECONDITION, 409), (grpc.StatusCode.ALREADY_EXISTS, 409),
    (grpc.StatusCode.RESOURCE_EXHAUSTED, 429), (grpc.StatusCode.UNAVAILABLE, 503),
    (grpc.StatusCode.DEADLINE_EXCEEDED, 503), (grpc.StatusCode.INTERNAL, 502), (grpc.StatusCode.UNKNOWN, 502),
])
def test_grpc_statuses_map_to_http(code, status):
    assert http_status(code) == status


@pytest.mark.integration
def test_unknown_paths_get_the_error_envelope(http):
    reply = http.get("/api/v1/no-such-thing")
    assert reply.status_code == 404 and reply.json()["error"]["reason"] == "not_found"


@pytest.mark.parametrize("proxied", [{"X-Forwarded-For": "203.0.113.7"}, {"Forwarded": "for=203.0.113.7"}],
                         ids=["x-forwarded-for", "forwarded"])
def test_metrics_are_not_served_through_a_proxy(http, proxied):
    """Prometheus scrapes the pod; through the ingress /metrics is not there (the sign-in guard's counts
    would pace a password sprayer), answered as any unknown path."""
    assert "tuoguan_gateway_http_requests_total" in http.get("/metrics").text
    refused = http.get("/metrics", headers=proxied)
    assert refused.status_code == 404 and refused.json()["error"]["reason"] == "not_found", refused.text
    assert "tuoguan_" not in refused.text
    # A browser gets the page any unknown address gets: the path cannot be told from one that does not exist.
    browser = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8", "Accept-Language": "en"} | proxied
    hidden, unknown = http.get("/metrics", headers=browser), http.get("/no-such-page", headers=browser)
    assert hidden.status_code == unknown.status_code == 404
    assert hidden.headers["content-type"] == unknown.headers["content-type"] == "text/html; charset=utf-8"
    assert "There is no page at this address." in hidden.text and "tuoguan_" not in hidden.text


@pytest.mark.integration
def test_metrics_are_labelled_by_route_template_never_the_raw_path(http, patient):
    booking = http.post("/api/v1/bookings", headers=patient.headers | new_key(), json={"slot_id": "slot-1"}).json()
    http.get(f"/api/v1/bookings/{booking['booking_id']}", headers=patient.headers)
    http.get("/api/v1/no-such-thing/13800000001")
    exposition = http.get("/metrics").text
    assert ('tuoguan_gateway_http_requests_total{method="GET",route="/api/v1/bookings/{booking_id}",status="200"}'
            in exposition)
    assert 'tuoguan_gateway_http_request_seconds_bucket{le="0.5",method="POST",route="/api/v1/bookings"}' in exposition
    assert 'route="unmatched"' in exposition
    assert booking["booking_id"] not in exposition and "13800000001" not in exposition


@pytest.mark.integration
def test_the_trace_continues_from_the_http_request_into_the_service(http, fakes):
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    http.get("/api/v1/departments", headers={"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"})
    metadata = fakes["registration"].last("ListDepartments")[2]
    _version, got_trace, parent_span, _flags = metadata["traceparent"].split("-")
    # Same trace; the parent is the gateway's own server span, not the caller's.
    assert got_trace == trace_id and parent_span != "00f067aa0ba902b7"


@pytest.mark.integration
def test_one_server_span_per_request_naming_only_the_route_template(http, patient):
    exporter = InMemorySpanExporter()
    trace.get_tracer_provider().add_span_processor(SimpleSpanProcessor(exporter))
    booking = http.post("/api/v1/bookings", headers=patient.headers | new_key(), json={"slot_id": "slot-1"}).json()
    http.get(f"/api/v1/bookings/{booking['booking_id']}?phone=13800000001", headers=patient.headers)

    def gateway_get_spans():
        return [s for s in exporter.get_finished_spans()
                if s.kind == SpanKind.SERVER and s.attributes.get("http.request.method") == "GET"]

    # The span ends just after the last byte is sent, in the server's thread.
    wait_for(gateway_get_spans, timeout=5, message="the gateway's server span")
    exporter.shutdown()
    [span] = gateway_get_spans()
    assert span.name == "GET /api/v1/bookings/{booking_id}"
    assert dict(span.attributes) == {"http.request.method": "GET", "http.route": "/api/v1/bookings/{booking_id}",
                                     "http.response.status_code": 200}


@pytest.mark.integration
def test_no_phone_number_or_password_reaches_the_gateway_logs(http, caplog):
    caplog.set_level(logging.DEBUG)
    phone = fresh_phone()
    sign_up(http, phone, password="Secret2026", display_name="吴思远")
    http.post("/api/v1/auth/signin", json={"login": phone, "password": "Wrong2026"})
    logged = " ".join(f"{r.getMessage()} {vars(r)}" for r in caplog.records)
    assert "/api/v1/auth/signin" in logged
    for secret in (phone, "Secret2026", "Wrong2026", "吴思远"):
        assert secret not in logged


@pytest.mark.integration
def test_health_and_landing_page(http):
    assert http.get("/healthz").json() == {"status": "ok"}
    landing = http.get("/")
    assert landing.status_code == 200 and "text/html" in landing.headers["content-type"]
    # The portal's home page, in Chinese by default, links developers to the API documentation.
    assert 'href="/docs"' in landing.text and "预约挂号" in landing.text and "API 文档" in landing.text
    english = http.get("/", params={"lang": "en"})
    assert "Book an appointment" in english.text and "API documentation" in english.text


@pytest.mark.integration
def test_python_m_gateway_serves_on_gateway_port_with_addresses_from_the_environment(grpc_servers, processes):
    port = free_port()
    env = {"GATEWAY_PORT": str(port), "IDENTITY_ADDR": grpc_servers.identity,
           "REGISTRATION_ADDR": grpc_servers.registration, "BILLING_ADDR": grpc_servers.billing}
    processes.start("gateway", [sys.executable, "-m", "gateway"], env, ready_port=port)
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=20) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        assert client.get("/api/v1/departments").status_code == 200
        signed_in = client.post("/api/v1/auth/signin", json={"login": "finance", "password": "Finance1234"})
        assert signed_in.json()["account"]["roles"] == ["finance"]
    # The request's log line is written once its answer has gone: it may land a moment after.
    wait_for(lambda: '"route": "/api/v1/auth/signin"' in processes.log("gateway"), timeout=10,
             message="the sign-in's request line in the gateway's log")


def test_a_request_that_fails_leaves_no_text_of_its_failure_in_its_span():
    from starlette.applications import Starlette
    from starlette.routing import Route
    from starlette.testclient import TestClient

    from gateway.observability import RequestTelemetry
    from tuoguan_common import telemetry

    async def failing(request):
        raise RuntimeError("patient 13800000001 not found")

    telemetry.setup_tracing("gateway-tests", record=True)
    exporter = InMemorySpanExporter()
    trace.get_tracer_provider().add_span_processor(SimpleSpanProcessor(exporter))
    app = RequestTelemetry(Starlette(routes=[Route("/api/v1/probe", failing)]))
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.get("/api/v1/probe").status_code == 500
    exporter.shutdown()
    [span] = [s for s in exporter.get_finished_spans() if s.attributes.get("http.route") == "/api/v1/probe"]
    assert span.attributes["http.response.status_code"] == 500
    # Before, OpenTelemetry recorded the exception: its text as an event and as the status's description.
    assert not span.events
    assert "13800000001" not in (span.status.description or "")
