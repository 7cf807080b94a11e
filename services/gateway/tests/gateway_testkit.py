"""Helpers of the gateway's tests: signed-in callers, patients signed up with
the code texted to them, fresh phone numbers, idempotency keys, the error
envelope, JSON that can carry a lone surrogate, and a gateway served on a
free port."""
from __future__ import annotations

import contextlib
import json
import os
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
from fastapi import FastAPI

from gateway.app import server
from gateway.limits import ServerLimits
from identity.notifications import LogNotifier
from tuoguan_common.config import DEFAULT_REDIS_URL
from tuoguan_common.testing import free_port, wait_for

REDIS_URL = os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL
# The session secret of the gateways a test starts itself (conftest's own_gateway):
# known, so that a test may sign a session cookie of its making.
SESSION_SECRET = "test-session-secret-" + "s" * 16


class Caller:
    """A signed-in person: the headers to send and their account."""

    def __init__(self, http: httpx.Client, login: str, password: str):
        reply = http.post("/api/v1/auth/signin", json={"login": login, "password": password})
        assert reply.status_code == 200, reply.text
        self.token = reply.json()["access_token"]
        self.headers = {"Authorization": f"Bearer {self.token}"}
        self.account = reply.json()["account"]


class CodeBook(LogNotifier):
    """Identity's notifier in the gateway's tests: the development adapter (its
    log lines, which some tests read), remembering each phone's last code."""

    def __init__(self):
        super().__init__()
        self._last: dict[str, str] = {}
        self._lock = threading.Lock()

    def send_code(self, phone, code, message) -> None:
        super().send_code(phone, code, message)
        with self._lock:
            self._last[phone] = code

    def last_code(self, phone: str) -> str:
        with self._lock:
            return self._last[phone]


# The one identity of the test session texts through it.
CODES = CodeBook()


def sign_up(http: httpx.Client, phone: str, password: str = "Patient2026", display_name: str = "周文静",
            headers: dict[str, str] | None = None, key: str | None = None) -> httpx.Response:
    """A patient signs up as the API's users do: a code to the phone, then the
    account with it. Answers the sign-up's reply (the code's must be 202)."""
    asked = http.post("/api/v1/auth/signup/code", json={"phone": phone}, headers=headers)
    assert asked.status_code == 202, asked.text
    return http.post("/api/v1/auth/signup", headers={**(headers or {}), "Idempotency-Key": key or uuid.uuid4().hex},
                     json={"phone": phone, "code": CODES.last_code(phone), "password": password,
                           "display_name": display_name})


def fresh_phone() -> str:
    return f"139{uuid.uuid4().int % 10**8:08d}"


def new_key() -> dict[str, str]:
    return {"Idempotency-Key": uuid.uuid4().hex}


JSON_CONTENT = {"content-type": "application/json"}


def escaped_json(data: Any) -> bytes:
    """``data`` as JSON with every non-ASCII character escaped: how a lone UTF-16 surrogate
    travels ("\\ud800"), which httpx's ``json=`` cannot send. Post it with JSON_CONTENT."""
    return json.dumps(data).encode()


def error(reply: httpx.Response) -> tuple[int, str, str | None]:
    """(status, reason, field) of a refusal."""
    body = reply.json()["error"]
    return reply.status_code, body["reason"], body["field"]


@contextlib.contextmanager
def serve(app: FastAPI, trusted_proxies: str = "127.0.0.1", limits: ServerLimits | None = None) -> Iterator[str]:
    """Serves ``app`` with uvicorn (in a thread, on a free port) while the block runs; yields its URL."""
    port = free_port()
    uvicorn_server = server(app, host="127.0.0.1", port=port, trusted_proxies=trusted_proxies, limits=limits)
    thread = threading.Thread(target=uvicorn_server.run, name="gateway-under-test", daemon=True)
    thread.start()
    try:
        wait_for(lambda: uvicorn_server.started, timeout=20, message="the gateway to start")
        yield f"http://127.0.0.1:{port}"
    finally:
        uvicorn_server.should_exit = True
        thread.join(timeout=10)
