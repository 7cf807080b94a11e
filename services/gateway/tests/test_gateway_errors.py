"""The error envelope's edges: how long a 429 or 503 tells the client to wait,
and a body that is not JSON at all."""
from __future__ import annotations

import dataclasses
from concurrent import futures

import grpc
import httpx
import pytest
from gateway_testkit import error, new_key, serve

from gateway.app import create_app
from tuoguan.identity.v1 import identity_pb2_grpc
from tuoguan_common.grpc_server import REASON_KEY, RETRY_AFTER_KEY

pytestmark = pytest.mark.integration

SIGNIN = "/api/v1/auth/signin"


class RefusingIdentity(identity_pb2_grpc.IdentityServiceServicer):
    """An identity whose sign-in refuses as its login says: ``wait:<seconds>`` as a
    locked sign-in does, with the wait in the trailing metadata; ``shed`` as a
    server shedding load (no wait named); ``down`` as one briefly unavailable."""

    def SignIn(self, request, context):
        kind, _, wait = request.login.partition(":")
        if kind == "wait":
            context.set_trailing_metadata(((REASON_KEY, "too_many_attempts"), (RETRY_AFTER_KEY, wait)))
        context.abort(grpc.StatusCode.UNAVAILABLE if kind == "down" else grpc.StatusCode.RESOURCE_EXHAUSTED,
                      "refused")


@pytest.fixture(scope="module")
def refusing_gateway(grpc_servers):
    """A gateway of its own whose identity is a RefusingIdentity."""
    stand_in = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    identity_pb2_grpc.add_IdentityServiceServicer_to_server(RefusingIdentity(), stand_in)
    port = stand_in.add_insecure_port("127.0.0.1:0")
    stand_in.start()
    try:
        with serve(create_app(dataclasses.replace(grpc_servers, identity=f"127.0.0.1:{port}"))) as url:
            yield url
    finally:
        stand_in.stop(0)


@pytest.mark.parametrize("login,status,retry_after", [
    ("wait:300", 429, "300"), ("wait:51", 429, "51"), ("wait:007", 429, "7"),
    # Load shedding and a brief outage name no wait: the default.
    ("shed", 429, "2"), ("down", 503, "2"),
    # A wait that is no whole number of seconds is not passed on.
    ("wait:soon", 429, "2"), ("wait:0", 429, "2"), ("wait:-5", 429, "2"), ("wait:1.5", 429, "2"), ("wait:", 429, "2"),
])
def test_retry_after_is_the_wait_the_service_names_else_two_seconds(refusing_gateway, login, status, retry_after):
    with httpx.Client(base_url=refusing_gateway, timeout=20) as http:
        reply = http.post(SIGNIN, json={"login": login, "password": "x"})
    assert reply.status_code == status
    assert reply.headers["retry-after"] == retry_after


def test_a_locked_sign_in_says_to_wait_until_it_unlocks(http, patient):
    login = patient.account["login"]
    for _ in range(5):
        assert http.post(SIGNIN, json={"login": login, "password": "Wrong2026"}).status_code == 401
    locked = http.post(SIGNIN, json={"login": login, "password": "Patient2026"})
    assert error(locked) == (429, "too_many_attempts", None)
    assert 290 <= int(locked.headers["retry-after"]) <= 300


def test_a_reset_code_asked_again_too_soon_says_to_wait_for_the_resend(http, patient):
    phone = patient.account["login"]
    assert http.post("/api/v1/auth/password-reset", json={"phone": phone}).status_code == 202
    again = http.post("/api/v1/auth/password-reset", json={"phone": phone})
    assert error(again) == (429, "reset_too_soon", None)
    assert 50 <= int(again.headers["retry-after"]) <= 60


@pytest.mark.parametrize("body", [b'{"login": "x",', b"login=x", b'{"login": "x"}}', b"",
                                  b'{"login": "\xff"}', b"[" * 100_000 + b"]" * 100_000],
                         ids=["cut", "form", "trailing", "empty", "not-utf-8", "nested-100000-deep"])
def test_a_body_that_is_not_json_names_the_body_not_a_byte_offset(http, body):
    reply = http.post(SIGNIN, content=body, headers={"content-type": "application/json"})
    assert error(reply) == (422, "invalid_argument", "body")


def test_a_missing_body_field_is_still_named(http):
    reply = http.post("/api/v1/auth/signup", headers=new_key(),
                      json={"phone": "13800000001", "code": "123456", "password": "x1x1x1x1"})
    assert error(reply) == (422, "invalid_argument", "display_name")
