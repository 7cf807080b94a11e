"""Helpers of the gateway's tests: signed-in callers, fresh phone numbers,
idempotency keys, and the error envelope."""
from __future__ import annotations

import uuid

import httpx


class Caller:
    """A signed-in person: the headers to send and their account."""

    def __init__(self, http: httpx.Client, login: str, password: str):
        reply = http.post("/api/v1/auth/signin", json={"login": login, "password": password})
        assert reply.status_code == 200, reply.text
        self.token = reply.json()["access_token"]
        self.headers = {"Authorization": f"Bearer {self.token}"}
        self.account = reply.json()["account"]


def fresh_phone() -> str:
    return f"139{uuid.uuid4().int % 10**8:08d}"


def new_key() -> dict[str, str]:
    return {"Idempotency-Key": uuid.uuid4().hex}


def error(reply: httpx.Response) -> tuple[int, str, str | None]:
    """(status, reason, field) of a refusal."""
    body = reply.json()["error"]
    return reply.status_code, body["reason"], body["field"]
