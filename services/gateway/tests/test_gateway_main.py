"""``python -m gateway`` listens on GATEWAY_HOST, this machine only when unset:
a developer's `make up` (demo accounts with well-known passwords) is not on the network."""
from __future__ import annotations

import pytest

import gateway.__main__ as entry


class _Server:
    def __init__(self, calls: list, **kwargs):
        calls.append(kwargs)

    def run(self) -> None:
        pass


@pytest.fixture
def started(monkeypatch):
    calls: list[dict] = []
    monkeypatch.setattr(entry, "create_app", lambda **kwargs: object())
    monkeypatch.setattr(entry, "server", lambda app, **kwargs: _Server(calls, **kwargs))
    monkeypatch.setattr(entry, "setup_logging", lambda *a, **k: None)
    monkeypatch.setattr(entry, "setup_tracing", lambda *a, **k: None)
    monkeypatch.delenv("GATEWAY_PORT", raising=False)
    return calls


def test_the_gateway_listens_on_this_machine_only_by_default(started, monkeypatch):
    monkeypatch.delenv("GATEWAY_HOST", raising=False)
    entry.main()
    assert (started[0]["host"], started[0]["port"]) == ("127.0.0.1", 8000)


def test_the_gateway_listens_where_gateway_host_says(started, monkeypatch):
    monkeypatch.setenv("GATEWAY_HOST", "0.0.0.0")
    monkeypatch.setenv("GATEWAY_PORT", "8100")
    entry.main()
    assert (started[0]["host"], started[0]["port"]) == ("0.0.0.0", 8100)
