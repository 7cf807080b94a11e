"""Request bodies have a size limit: a larger body, declared or streamed, is
413 payload_too_large on ``body`` and reaches no service; the largest body a
route takes for real still passes."""
from __future__ import annotations

import json
import socket
import time
import uuid
from urllib.parse import urlsplit

import pytest
from gateway_testkit import JSON_CONTENT, error, escaped_json, new_key
from prometheus_client import REGISTRY

from gateway.body_limit import MAX_BODY_BYTES
from tuoguan_common.json_nesting import MAX_NESTING
from gateway.observability import UNMATCHED
from tuoguan_common import auth
from tuoguan_common.testing import wait_for

pytestmark = pytest.mark.integration

TICKET = {"kind": "incident", "subsystem_code": "PACS", "title": "阅片工作站无法调阅影像",
          "impact": "high", "urgency": "medium"}


@pytest.fixture
def clinician(issuer) -> dict[str, str]:
    return {"Authorization": f"Bearer {issuer.issue(f'acc-{uuid.uuid4().hex[:12]}', [auth.CLINICIAN])}"}


def chunked(body: bytes, size: int = 16 * 1024):
    """The body without a Content-Length: httpx sends a generator chunked."""
    for start in range(0, len(body), size):
        yield body[start:start + size]


def refused_413() -> float:
    return REGISTRY.get_sample_value("tuoguan_gateway_http_requests_total",
                                     {"route": UNMATCHED, "method": "POST", "status": "413"}) or 0.0


def test_a_json_body_over_the_limit_is_413_and_reaches_no_service(http, fakes, clinician):
    # Before the limit, a 10 MB field came back 429 "try again" from gRPC's 4 MiB message limit.
    body = json.dumps(TICKET | {"description": "x" * MAX_BODY_BYTES}).encode()
    before, refused = len(fakes["ticketing"].requests), refused_413()
    for content in (body, chunked(body), json.dumps(TICKET | {"description": "x" * 10_000_000}).encode()):
        reply = http.post("/api/v1/tickets", headers=clinician | new_key() | JSON_CONTENT, content=content)
        assert error(reply) == (413, "payload_too_large", "body")
        assert str(MAX_BODY_BYTES) in reply.json()["error"]["message"]
    assert len(fakes["ticketing"].requests) == before
    # Counted like any other reply, under no route (none was matched): once its answer is sent,
    # which the client may read first.
    wait_for(lambda: refused_413() == refused + 3, timeout=10, message="the 413s to be counted")


def test_a_body_of_exactly_the_limit_passes(http, fakes, clinician):
    padding = json.dumps(TICKET | {"description": ""}).encode()
    body = json.dumps(TICKET | {"description": "x" * (MAX_BODY_BYTES - len(padding))}).encode()
    assert len(body) == MAX_BODY_BYTES
    for content in (body, chunked(body)):
        reply = http.post("/api/v1/tickets", headers=clinician | new_key() | JSON_CONTENT, content=content)
        # Past the gateway: the service answers (its own limit on a description is its to state).
        assert reply.status_code == 201, reply.text
        assert len(fakes["ticketing"].last("OpenTicket")[1].description) == MAX_BODY_BYTES - len(padding)


def test_the_longest_text_a_service_takes_fits_even_fully_escaped(http, fakes, clinician):
    # Ticketing's longest field: a 10,000-character description, every character a \\u escape.
    description = "医" * 10_000
    reply = http.post("/api/v1/tickets", headers=clinician | new_key() | JSON_CONTENT,
                      content=escaped_json(TICKET | {"description": description}))
    assert reply.status_code == 201, reply.text
    assert fakes["ticketing"].last("OpenTicket")[1].description == description


def test_a_portal_form_over_the_limit_is_413(http):
    reply = http.post("/signin", data={"login": "x" * MAX_BODY_BYTES, "password": "p"})
    assert error(reply) == (413, "payload_too_large", "body")
    # A form of a normal size is the portal's to answer (here: a form without its CSRF token).
    assert http.post("/signin", data={"login": "13800000001", "password": "p"}).status_code != 413


# What a browser sends with a form's POST.
BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,*/*;q=0.8"


@pytest.mark.parametrize(("accept_language", "html_lang", "hospital", "told"), [
    ("zh-CN,zh;q=0.9", "zh-CN", "托管肿瘤医院", "表单内容过多，无法提交，所填内容均未保存。请返回上一页"),
    ("en-GB,en;q=0.8", "en", "Tuoguan Cancer Hospital",
     "The form was too large to send, and nothing was saved. Please go back"),
])
def test_a_browsers_form_over_the_limit_is_a_portal_page_in_its_language(http, accept_language, html_lang,
                                                                          hospital, told):
    form = f"login={'x' * MAX_BODY_BYTES}&password=p".encode()
    refused = refused_413()
    for content in (form, chunked(form)):
        reply = http.post("/signin", content=content, headers={
            "Accept": BROWSER_ACCEPT, "Accept-Language": accept_language,
            "Content-Type": "application/x-www-form-urlencoded"})
        assert reply.status_code == 413
        assert reply.headers["content-type"].startswith("text/html")
        # The portal's layout (its stylesheet, the hospital's name, the way back), in the visitor's language.
        assert f'<html lang="{html_lang}">' in reply.text
        assert 'href="/static/portal.css"' in reply.text and hospital in reply.text
        assert told in reply.text
        assert "payload_too_large" not in reply.text
    # Counted as the JSON refusal is.
    wait_for(lambda: refused_413() == refused + 2, timeout=10, message="the 413s to be counted")


def test_the_api_answers_json_over_the_limit_even_to_a_browser(http, fakes, clinician):
    body = json.dumps(TICKET | {"description": "x" * MAX_BODY_BYTES}).encode()
    reply = http.post("/api/v1/tickets", content=body, headers=clinician | new_key() | JSON_CONTENT | {
        "Accept": BROWSER_ACCEPT, "Accept-Language": "en"})
    assert error(reply) == (413, "payload_too_large", "body")


def test_reads_without_a_body_are_untouched(http, clinician):
    assert http.get("/api/v1/subsystems", headers=clinician).status_code == 200
    assert http.get("/healthz").json() == {"status": "ok"}


def test_a_client_that_leaves_before_its_body_is_whole_is_499_not_a_server_error(gateway_url):
    def count(status: str) -> float:
        return REGISTRY.get_sample_value("tuoguan_gateway_http_requests_total",
                                         {"route": UNMATCHED, "method": "POST", "status": status}) or 0.0

    left, failed = count("499"), count("500")
    host, port = urlsplit(gateway_url).hostname, urlsplit(gateway_url).port
    for _ in range(3):
        with socket.create_connection((host, port), timeout=5) as client:
            client.sendall(b"POST /api/v1/tickets HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n"
                           b"Content-Length: 1000\r\n\r\n{\"kind\": ")
    deadline = time.monotonic() + 10
    while count("499") < left + 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert count("499") == left + 3
    # Nothing for TuoguanGateway5xxRatioHigh: anyone could trip it by hanging up.
    assert count("500") == failed


@pytest.mark.parametrize("accept", ["application/json", "text/html"], ids=["api-client", "browser"])
def test_a_body_refused_as_too_large_closes_its_connection(gateway_url, accept):
    """The rest of the body is never read: kept open, the connection would go on taking it with no
    deadline left (each chunk restarting the keep-alive timer) and keep its place in the cap."""
    host, port = urlsplit(gateway_url).hostname, urlsplit(gateway_url).port
    path = b"/api/v1/tickets" if accept == "application/json" else b"/signin"
    with socket.create_connection((host, port), timeout=5) as client:
        client.sendall(b"POST " + path + b" HTTP/1.1\r\nHost: gateway\r\nAccept: " + accept.encode()
                       + b"\r\nContent-Type: application/json\r\nContent-Length: 10000000\r\n\r\n{")
        answer = b""
        while chunk := client.recv(4096):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"connection: close" in answer.lower()


def nested(depth: int) -> bytes:
    """A sign-in whose login is ``depth`` arrays deep (the body itself one more)."""
    return b'{"password": "p", "login": ' + b"[" * (depth - 1) + b"]" * (depth - 1) + b"}"


@pytest.mark.parametrize("headers", [JSON_CONTENT, {"Content-Type": "application/problem+json"}, {}],
                         ids=["json", "+json", "no-content-type"])
def test_json_nested_past_the_limit_is_refused_before_anything_decodes_it(http, fakes, clinician, headers):
    # Before, the decoder met it: 33 deep was decoded (and refused as a login that is not text), 100,000
    # deep ran it to the interpreter's recursion limit.
    for content in (nested(MAX_NESTING + 1), chunked(nested(MAX_NESTING + 1)), nested(100_000)):
        reply = http.post("/api/v1/auth/signin", headers=headers, content=content)
        assert error(reply) == (422, "invalid_argument", "body")
        assert f"more than {MAX_NESTING} deep" in reply.json()["error"]["message"]
    before = len(fakes["ticketing"].requests)
    deep_ticket = json.dumps(TICKET).encode()[:-1] + b', "tags": ' + b"[" * 40 + b"]" * 40 + b"}"
    reply = http.post("/api/v1/tickets", headers=clinician | new_key() | JSON_CONTENT, content=deep_ticket)
    assert error(reply) == (422, "invalid_argument", "body")
    assert len(fakes["ticketing"].requests) == before


def test_json_nested_to_the_limit_is_the_routes_to_judge(http):
    # Read by the route, which names the field at fault: the login is an array, not text.
    reply = http.post("/api/v1/auth/signin", headers=JSON_CONTENT, content=nested(MAX_NESTING))
    assert error(reply) == (422, "invalid_argument", "login")


def test_json_labelled_twice_is_measured_as_starlette_reads_it(http):
    # FastAPI reads the first Content-Type; the check read the last, and let a deep JSON body past it.
    reply = http.post("/api/v1/auth/signin", content=nested(100_000), headers=[
        ("content-type", "application/json"), ("content-type", "application/x-www-form-urlencoded")])
    assert error(reply) == (422, "invalid_argument", "body")
    assert "deep" in reply.json()["error"]["message"]


def test_a_browsers_form_is_never_nesting_and_multipart_is_not_measured(http):
    # A browser percent-encodes a form's brackets: 100 of them typed in a field are text.
    reply = http.post("/signin", data={"login": "[" * 100, "password": "p"})
    assert "deep" not in reply.text
    reply = http.post("/signin", files={"login": (None, "[" * 100)}, data={"password": "p"})
    assert "deep" not in reply.text
