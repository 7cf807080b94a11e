"""Slow or numerous clients cannot take the gateway: a body not whole within
its deadline is 408 request_timeout on ``body`` and its connection closed,
however it is trickled; connections past the cap are turned away with 503
while those under it are served. Against a real uvicorn, over raw sockets
(the client's pace is the point). Deadlines are short here; the margins
around them are wide, for a busy two-core machine."""
from __future__ import annotations

import dataclasses
import http.client
import json
import re
import select
import socket
import time
import uuid
from urllib.parse import urlsplit

import pytest
from prometheus_client import REGISTRY

from gateway.limits import GatewayHttpProtocol, ServerLimits
from gateway.observability import UNMATCHED
from tuoguan_common import auth
from tuoguan_common.testing import wait_for

pytestmark = pytest.mark.integration

DEADLINE = 0.5
TICKET = json.dumps({"kind": "incident", "subsystem_code": "PACS", "title": "阅片工作站无法调阅影像",
                    "impact": "high", "urgency": "medium"}).encode()


@pytest.fixture
def clinician_token(issuer) -> str:
    return issuer.issue(f"acc-{uuid.uuid4().hex[:12]}", [auth.CLINICIAN])


def address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname, parts.port


def head(length: int, path: str = "/api/v1/tickets") -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n"
            f"Content-Length: {length}\r\n\r\n").encode()


def answered(client: socket.socket, wait: float) -> bool:
    return bool(select.select([client], [], [], wait)[0])


def read_reply(client: socket.socket, timeout: float = 10) -> tuple[int, dict[str, str], bytes, bool]:
    """(status, headers, body, closed) of the one reply on ``client``; closed:
    the server closed the connection after it (rather than waiting for more)."""
    client.settimeout(timeout)
    data = b""
    closed = False
    while b"\r\n\r\n" not in data:
        chunk = client.recv(65536)
        if not chunk:
            closed = True
            break
        data += chunk
    header_block, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = header_block.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, value in (line.split(":", 1) for line in lines)}
    length = int(headers.get("content-length", "0"))
    while len(body) < length and not closed:
        chunk = client.recv(65536)
        closed = not chunk
        body += chunk
    if not closed:
        try:
            closed = client.recv(1) == b""
        except TimeoutError:
            closed = False
        except ConnectionResetError:
            closed = True
    return int(status_line.split()[1]), headers, body[:length], closed


def requests_counted(status: str) -> float:
    return REGISTRY.get_sample_value("tuoguan_gateway_http_requests_total",
                                     {"route": UNMATCHED, "method": "POST", "status": status}) or 0.0


def test_a_body_trickled_past_its_deadline_is_408_and_the_connection_is_closed(own_gateway, fakes):
    # A keep-alive longer than the test: only the 408 may close the connection.
    url = own_gateway(limits=ServerLimits(body_timeout_seconds=DEADLINE, keep_alive_seconds=60))
    before, timed_out = len(fakes["ticketing"].requests), requests_counted("408")
    body = b" " * (1000 - len(TICKET)) + TICKET
    with socket.create_connection(address(url), timeout=10) as client:
        client.sendall(head(len(body)))
        started = time.monotonic()
        # Ten bytes every 0.1 s: each piece well within the deadline (a deadline
        # per piece would never end), the whole body ten seconds long.
        sent = 0
        while sent < len(body) and not answered(client, 0.1):
            client.sendall(body[sent:sent + 10])
            sent += 10
        waited = time.monotonic() - started
        status, headers, reply, closed = read_reply(client)
    assert sent < len(body), "the whole body went through: no deadline stopped the trickle"
    assert DEADLINE <= waited < 8
    assert status == 408
    answer = json.loads(reply)["error"]
    assert (answer["reason"], answer["field"]) == ("request_timeout", "body")
    assert "0.5 seconds" in answer["message"]
    assert headers["connection"] == "close"
    assert closed, "the connection stayed open after the 408"
    assert len(fakes["ticketing"].requests) == before
    # Counted like any other reply, under no route (none was matched).
    assert requests_counted("408") == timed_out + 1


def test_a_body_declared_but_never_sent_is_408_too(own_gateway):
    # A keep-alive longer than the test: only the 408 may close the connection.
    url = own_gateway(limits=ServerLimits(body_timeout_seconds=DEADLINE, keep_alive_seconds=60))
    with socket.create_connection(address(url), timeout=10) as client:
        client.sendall(head(1000) + b'{"kind": ')
        assert answered(client, 8), "no answer to a body that stopped half-way"
        status, _, reply, closed = read_reply(client)
    assert (status, json.loads(reply)["error"]["reason"], closed) == (408, "request_timeout", True)


BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


@pytest.mark.parametrize(("accept_language", "html_lang", "told"), [
    ("zh-CN,zh;q=0.9", "zh-CN", "抱歉，表单提交用时过长（可能是网络较慢），未能送达，所填内容均未保存。请返回上一页后重新提交。"),
    ("en-US,en;q=0.9", "en", "The form took too long to reach us (the connection may be slow), and nothing was "
                             "saved. Please go back and try again."),
])
def test_a_browsers_form_past_its_deadline_is_a_portal_page_in_its_language(own_gateway, accept_language,
                                                                             html_lang, told):
    url = own_gateway(limits=ServerLimits(body_timeout_seconds=DEADLINE, keep_alive_seconds=60))
    with socket.create_connection(address(url), timeout=10) as client:
        client.sendall(b"POST /signin HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                       + f"Accept: {BROWSER_ACCEPT}\r\nAccept-Language: {accept_language}\r\n".encode()
                       + b"Content-Length: 1000\r\n\r\nlogin=138")
        assert answered(client, 8), "no answer to a form that stopped half-way"
        status, headers, reply, closed = read_reply(client)
    page = reply.decode()
    assert status == 408
    assert headers["content-type"].startswith("text/html")
    assert f'<html lang="{html_lang}">' in page and 'href="/static/portal.css"' in page
    assert told in page
    # As the JSON 408: the rest of the form may still be on its way.
    assert headers["connection"] == "close" and closed


def test_the_api_answers_json_past_the_deadline_even_to_a_browser(own_gateway):
    url = own_gateway(limits=ServerLimits(body_timeout_seconds=DEADLINE, keep_alive_seconds=60))
    with socket.create_connection(address(url), timeout=10) as client:
        client.sendall(head(1000).replace(b"\r\n\r\n", f"\r\nAccept: {BROWSER_ACCEPT}\r\n\r\n".encode())
                       + b'{"kind": ')
        assert answered(client, 8)
        status, headers, reply, closed = read_reply(client)
    assert (status, json.loads(reply)["error"]["reason"], closed) == (408, "request_timeout", True)


def test_a_body_sent_within_its_deadline_is_served_and_the_connection_kept(own_gateway, fakes, clinician_token):
    # The deadline is one request's, from its headers on: not the connection's,
    # so a second request after a pause longer than the deadline is served too.
    url = own_gateway(limits=ServerLimits(body_timeout_seconds=3, keep_alive_seconds=60))
    connection = http.client.HTTPConnection(*address(url), timeout=20)
    try:
        for attempt in range(2):
            def pieces():
                for start in range(0, len(TICKET), len(TICKET) // 3 + 1):
                    time.sleep(0.2)
                    yield TICKET[start:start + len(TICKET) // 3 + 1]

            connection.request("POST", "/api/v1/tickets", body=pieces(), encode_chunked=True, headers={
                "Authorization": f"Bearer {clinician_token}", "Content-Type": "application/json",
                "Idempotency-Key": uuid.uuid4().hex})
            reply = connection.getresponse()
            assert reply.status == 201, reply.read()
            reply.read()
            assert fakes["ticketing"].last("OpenTicket")[1].title == "阅片工作站无法调阅影像"
            if not attempt:
                time.sleep(4)
        # Both on one connection: the first answer did not close it.
        assert connection.sock is not None
    finally:
        connection.close()


def get(connection: http.client.HTTPConnection, path: str) -> int:
    connection.request("GET", path)
    reply = connection.getresponse()
    reply.read()
    return reply.status


def healthz(connection: http.client.HTTPConnection) -> int:
    return get(connection, "/healthz")


def refused_by_the_cap() -> float:
    return REGISTRY.get_sample_value("tuoguan_gateway_http_requests_total",
                                     {"route": UNMATCHED, "method": "GET", "status": "503"}) or 0.0


def open_connections() -> float:
    return REGISTRY.get_sample_value("tuoguan_gateway_open_connections")


def closed_for(reason: str) -> float:
    return REGISTRY.get_sample_value("tuoguan_gateway_connections_closed_total", {"reason": reason}) or 0.0


# A page that asks no service: 200 whenever the gateway serves it.
PAGE = "/docs"


def test_connections_past_the_cap_are_503_and_those_under_it_are_served(own_gateway, caplog):
    cap = 3
    # Idle connections count: kept open past the test, they hold their places.
    url = own_gateway(limits=ServerLimits(concurrency=cap, keep_alive_seconds=60))
    held = [http.client.HTTPConnection(*address(url), timeout=20) for _ in range(cap)]
    try:
        assert [get(connection, PAGE) for connection in held] == [200] * cap
        assert open_connections() == cap
        refused = refused_by_the_cap()
        extra = http.client.HTTPConnection(*address(url), timeout=20)
        extra.request("GET", PAGE)
        reply = extra.getresponse()
        assert reply.status == 503
        assert reply.getheader("connection") == "close"
        # The gateway's error shape, with the wait any client needs to try again.
        assert reply.getheader("content-type") == "application/json"
        refusal = json.loads(reply.read())["error"]
        assert (refusal["reason"], refusal["field"]) == ("server_busy", None)
        assert "try again" in refusal["message"]
        assert 1 <= int(reply.getheader("retry-after")) <= 5
        extra.close()
        # The line the runbook (TuoguanGateway5xxRatioHigh) tells operators to look for.
        assert "Exceeded concurrency limit." in caplog.messages
        # Counted with every other reply, for the 5xx ratio (uvicorn answers it, not the app).
        assert refused_by_the_cap() == refused + 1
        # The pod's own probes and scrape are served past the cap, then closed: a client
        # repeating them on kept-alive connections would otherwise hold places past the cap.
        for path in ("/healthz", "/metrics"):
            probe = http.client.HTTPConnection(*address(url), timeout=20)
            try:
                probe.request("GET", path)
                reply = probe.getresponse()
                reply.read()
                assert (reply.status, reply.getheader("connection")) == (200, "close"), path
            finally:
                probe.close()
        # Those already in are still served, once the server has seen the
        # others go (uvicorn counts every open connection at every request).
        wait_for(lambda: open_connections() == cap, timeout=10, message="the probes' connections to close")
        assert [get(connection, PAGE) for connection in held] == [200] * cap
        # One leaves: its place is free for a new connection.
        held.pop().close()
        deadline, status = time.monotonic() + 10, None
        while status != 200 and time.monotonic() < deadline:
            newcomer = http.client.HTTPConnection(*address(url), timeout=20)
            try:
                status = get(newcomer, PAGE)
            finally:
                newcomer.close()
            time.sleep(0.05)
        assert status == 200
    finally:
        for connection in held:
            connection.close()


def test_the_openapi_documents_the_408():
    from gateway.app import create_app

    spec = create_app().openapi()
    responses = spec["paths"]["/api/v1/tickets"]["post"]["responses"]
    assert "408" in responses and "413" in responses


@pytest.mark.parametrize(("env", "expected"), [
    ({}, ServerLimits(concurrency=1000, keep_alive_seconds=5, body_timeout_seconds=30.0, header_timeout_seconds=10.0,
                      write_timeout_seconds=30.0)),
    ({"GATEWAY_LIMIT_CONCURRENCY": "200", "GATEWAY_KEEP_ALIVE_SECONDS": "75", "GATEWAY_BODY_TIMEOUT_SECONDS": "2.5",
      "GATEWAY_HEADER_TIMEOUT_SECONDS": "4", "GATEWAY_WRITE_TIMEOUT_SECONDS": "12.5"},
     ServerLimits(concurrency=200, keep_alive_seconds=75, body_timeout_seconds=2.5, header_timeout_seconds=4.0,
                  write_timeout_seconds=12.5)),
    ({"GATEWAY_LIMIT_CONCURRENCY": "0", "GATEWAY_BODY_TIMEOUT_SECONDS": "0", "GATEWAY_HEADER_TIMEOUT_SECONDS": "0",
      "GATEWAY_WRITE_TIMEOUT_SECONDS": "0"},
     ServerLimits(concurrency=0, body_timeout_seconds=0.0, header_timeout_seconds=0.0, write_timeout_seconds=0.0)),
])
def test_limits_come_from_the_environment(monkeypatch, env, expected):
    for name in ("GATEWAY_LIMIT_CONCURRENCY", "GATEWAY_KEEP_ALIVE_SECONDS", "GATEWAY_BODY_TIMEOUT_SECONDS",
                 "GATEWAY_HEADER_TIMEOUT_SECONDS", "GATEWAY_WRITE_TIMEOUT_SECONDS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert ServerLimits.from_env() == expected


def test_a_limit_that_is_no_number_stops_the_start(monkeypatch):
    monkeypatch.setenv("GATEWAY_LIMIT_CONCURRENCY", "lots")
    with pytest.raises(SystemExit, match="GATEWAY_LIMIT_CONCURRENCY"):
        ServerLimits.from_env()


def test_the_server_gets_the_cap_and_the_keep_alive():
    from gateway.app import create_app, server

    config = server(create_app(), host="127.0.0.1", port=0,
                    limits=ServerLimits(concurrency=10, keep_alive_seconds=7, header_timeout_seconds=3,
                                        write_timeout_seconds=9)).config
    # uvicorn serves one connection fewer than its limit.
    assert (config.limit_concurrency, config.timeout_keep_alive) == (11, 7)
    assert issubclass(config.http, GatewayHttpProtocol) and config.http.header_timeout_seconds == 3
    assert config.http.write_timeout_seconds == 9
    unlimited = server(create_app(), host="127.0.0.1", port=0,
                       limits=ServerLimits(concurrency=0, header_timeout_seconds=0, write_timeout_seconds=0)).config
    assert (unlimited.limit_concurrency, unlimited.http.header_timeout_seconds,
            unlimited.http.write_timeout_seconds) == (None, 0, 0)


def closed_unanswered(client: socket.socket) -> bool:
    """The server closed ``client`` without a byte of reply. A byte the client
    sent as the server closed finds no socket there, and TCP answers it with a
    reset instead of the end of the stream: closed all the same."""
    try:
        return client.recv(1) == b""
    except ConnectionResetError:
        return True


def test_connections_that_never_finish_their_headers_are_closed_and_free_their_places(own_gateway):
    cap = 2
    url = own_gateway(limits=ServerLimits(concurrency=cap, header_timeout_seconds=DEADLINE, keep_alive_seconds=60))
    header_timeouts = closed_for("header_timeout")
    silent = socket.create_connection(address(url), timeout=10)
    trickler = socket.create_connection(address(url), timeout=10)
    try:
        # A byte every 0.1 s: each well within the deadline, the headers never whole.
        headers, sent, started = b"GET /healthz HTTP/1.1\r\nHost: gateway\r\nX-Padding: " + b"x" * 200, 0, time.monotonic()
        while sent < len(headers) and not answered(trickler, 0.1):
            trickler.sendall(headers[sent:sent + 1])
            sent += 1
        assert sent < len(headers), "the trickled headers were never cut off"
        assert DEADLINE <= time.monotonic() - started < 8
        assert closed_unanswered(trickler), "closed without a reply"
        assert answered(silent, 8) and closed_unanswered(silent), "a connection that sent nothing stayed open"
        # Counted, for the operators: stalled clients are why places in the cap were taken.
        assert closed_for("header_timeout") == header_timeouts + 2
        # Their places in the cap are free again.
        newcomers = [http.client.HTTPConnection(*address(url), timeout=20) for _ in range(cap)]
        try:
            assert [get(connection, PAGE) for connection in newcomers] == [200] * cap
        finally:
            for connection in newcomers:
                connection.close()
    finally:
        silent.close()
        trickler.close()


def test_the_header_deadline_spares_idle_keep_alive_and_slow_bodies(own_gateway, fakes, clinician_token):
    url = own_gateway(limits=ServerLimits(header_timeout_seconds=DEADLINE, body_timeout_seconds=10,
                                          keep_alive_seconds=60))
    connection = http.client.HTTPConnection(*address(url), timeout=20)
    try:
        assert healthz(connection) == 200
        # Idle between requests for longer than the header deadline: the keep-alive's to end, not it.
        time.sleep(2)
        assert healthz(connection) == 200

        def pieces():
            for start in range(0, len(TICKET), 16):
                time.sleep(0.1)
                yield TICKET[start:start + 16]

        # A body longer in coming than the header deadline: the body deadline's to judge.
        connection.request("POST", "/api/v1/tickets", body=pieces(), encode_chunked=True, headers={
            "Authorization": f"Bearer {clinician_token}", "Content-Type": "application/json",
            "Idempotency-Key": uuid.uuid4().hex})
        reply = connection.getresponse()
        assert reply.status == 201, reply.read()
    finally:
        connection.close()


# The largest answer needing no service: about 140 KB, more than a small
# receive window and the kernel's buffers take, so the server must wait for
# the client to read.
LARGE = "/openapi.json"
WRITE_DEADLINE = 1.5


@dataclasses.dataclass(frozen=True)
class SmallSendBuffers(ServerLimits):
    """The gateway's limits, its connections' kernel send buffers made as
    small as a remote client's path would keep them: on loopback Linux lets
    one grow to 4 MB, taking the whole of an answer nobody reads, and the
    server's own writing would never have to wait."""

    def http_protocol(self):
        class Protocol(super().http_protocol()):
            def connection_made(self, transport):
                transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8192)
                super().connection_made(transport)

        return Protocol


def small_window_client(url: str) -> socket.socket:
    """A client whose receive buffer (set before connecting: it sizes the TCP
    window) holds a few KB, so what it does not read stays on the server."""
    client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    client.settimeout(10)
    client.connect(address(url))
    return client


def get_request(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: gateway\r\n\r\n".encode()


def read_answer(client: socket.socket, size: int, *, pause: float) -> tuple[bytes, bytes]:
    """One answer's head and body, read ``size`` bytes at a time with ``pause`` seconds before each
    read of the body; fails if the server closes the connection mid-answer."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += client.recv(size)
    head_, _, body = data.partition(b"\r\n\r\n")
    length = int(re.search(rb"(?i)content-length: *(\d+)", head_).group(1))
    while len(body) < length:
        time.sleep(pause)
        chunk = client.recv(size)
        assert chunk, f"the connection was closed after {len(body)} of {length} bytes"
        body += chunk
    return head_, body


def test_a_client_that_stops_reading_is_cut_off_after_the_write_deadline(own_gateway):
    # A keep-alive longer than the test: only the write deadline may end the connection.
    url = own_gateway(limits=SmallSendBuffers(write_timeout_seconds=WRITE_DEADLINE, keep_alive_seconds=60))
    cut_off, header_timeouts = closed_for("write_timeout"), closed_for("header_timeout")
    client = small_window_client(url)
    try:
        client.sendall(get_request(LARGE))
        started = time.monotonic()
        wait_for(lambda: closed_for("write_timeout") == cut_off + 1, timeout=15,
                 message="the server to drop the connection that does not read")
        waited = time.monotonic() - started
        # Its place in the cap is free again.
        wait_for(lambda: open_connections() == 0, timeout=10, message="the connection to be gone")
        assert WRITE_DEADLINE <= waited < 10
        # The client, reading at last: part of the answer, then the connection is gone.
        received, gone = b"", False
        try:
            while chunk := client.recv(65536):
                received += chunk
            gone = True
        except ConnectionResetError:
            gone = True
        assert gone
        assert len(received) < 100_000, "the whole answer got through: the client was not holding it up"
    finally:
        client.close()
    assert closed_for("header_timeout") == header_timeouts


def test_a_client_that_reads_is_not_cut_off(own_gateway):
    url = own_gateway(limits=SmallSendBuffers(write_timeout_seconds=WRITE_DEADLINE, keep_alive_seconds=60))
    cut_off = closed_for("write_timeout")
    client = small_window_client(url)
    started, lengths = time.monotonic(), []
    try:
        # Several answers on one connection, each read 16 KB at a time at a
        # pace that keeps the server waiting on the client now and then, the
        # whole longer than the deadline: the deadline is a pause's, not the
        # connection's or an answer's.
        while time.monotonic() - started < 2 * WRITE_DEADLINE:
            client.sendall(get_request(LARGE))
            head_, body = read_answer(client, 16384, pause=0.02)
            assert head_.startswith(b"HTTP/1.1 200") and json.loads(body)["openapi"]
            lengths.append(len(body))
    finally:
        client.close()
    assert len(lengths) >= 2 and min(lengths) > 100_000
    assert closed_for("write_timeout") == cut_off


def test_a_slow_but_steady_reader_gets_the_whole_answer(own_gateway):
    """An answer is written at once, so writing stays paused until nearly all of it is read: at a poor
    link's pace that takes longer than the deadline, and the deadline must see the progress, not only
    the length of the pause."""
    url = own_gateway(limits=SmallSendBuffers(write_timeout_seconds=WRITE_DEADLINE, keep_alive_seconds=60))
    cut_off = closed_for("write_timeout")
    client = small_window_client(url)
    started = time.monotonic()
    try:
        client.sendall(get_request(LARGE))
        _, body = read_answer(client, 4096, pause=0.15)  # ~27 KB/s
    finally:
        client.close()
    assert time.monotonic() - started > 2 * WRITE_DEADLINE, "slower than the deadline, or it proves nothing"
    assert json.loads(body)["openapi"]
    assert closed_for("write_timeout") == cut_off


@pytest.mark.parametrize("method, path, accept_language, html_lang, told, reloads", [
    ("GET", "/", "zh-CN,zh;q=0.9", "zh-CN", "此刻使用预约挂号服务的人太多，未能受理您的请求，所填内容均未保存。", True),
    ("POST", "/signin", "en-US,en;q=0.9", "en", "Please go back and send the form again in a moment.", False),
])
def test_a_browser_past_the_cap_gets_a_portal_page_in_its_language(own_gateway, method, path, accept_language,
                                                                   html_lang, told, reloads):
    """A patient at the Monday surge is told, in their language, to wait a moment, not shown raw JSON;
    a page asked for reloads by itself, a form sent is never sent again behind the patient's back."""
    url = own_gateway(limits=ServerLimits(concurrency=1, keep_alive_seconds=60))
    held = http.client.HTTPConnection(*address(url), timeout=20)
    try:
        assert get(held, PAGE) == 200
        with socket.create_connection(address(url), timeout=10) as client:
            client.sendall(f"{method} {path} HTTP/1.1\r\nHost: gateway\r\nAccept: {BROWSER_ACCEPT}\r\n"
                           f"Accept-Language: {accept_language}\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                           f"Content-Length: 9\r\n\r\nlogin=138".encode())
            status, headers, reply, closed = read_reply(client)
        page = reply.decode()
        assert status == 503 and headers["content-type"].startswith("text/html")
        assert f'<html lang="{html_lang}">' in page and told in page
        assert ('<meta http-equiv="refresh" content="5">' in page) is reloads
        assert 1 <= int(headers["retry-after"]) <= 5 and headers["cache-control"] == "no-store"
        assert headers["connection"] == "close" and closed
        # The API answers its JSON, whoever asks.
        with socket.create_connection(address(url), timeout=10) as client:
            client.sendall(f"GET /api/v1/departments HTTP/1.1\r\nHost: gateway\r\nAccept: {BROWSER_ACCEPT}\r\n"
                           f"Accept-Language: {accept_language}\r\n\r\n".encode())
            status, headers, reply, closed = read_reply(client)
        assert (status, json.loads(reply)["error"]["reason"]) == (503, "server_busy")
    finally:
        held.close()
