"""The shared library's fixtures: a database with the outbox's tables on the
real PostgreSQL, and the relay and the queue watch driven in a process eventlet
has patched (``green_driver.py``)."""
from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
from pathlib import Path

import psycopg
import pytest

from tuoguan_common import outbox
from tuoguan_common.db import Database, drop_database, ensure_database
from tuoguan_common.testing import unique_database_url


@pytest.fixture
def outbox_db(infra):
    url = unique_database_url(infra, "outboxtest")
    ensure_database(url)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(outbox.DDL)
    db = Database(url).open()
    yield db
    db.close()
    drop_database(url)


class GreenDriver:
    """``green_driver.py`` in its own process: one command, one JSON answer."""

    def __init__(self, settings: dict):
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("green_driver.py")), json.dumps(settings)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1)
        self._lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self._lines.put(line)

    def send(self, command: str) -> None:
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()

    def answer(self, timeout: float, waiting_for: str) -> dict:
        try:
            return json.loads(self._lines.get(timeout=timeout))
        except queue.Empty:
            pytest.fail(f"no answer within {timeout}s: {waiting_for}\n{self.stop()[-3000:]}", pytrace=False)

    def ask(self, command: str, timeout: float = 30.0) -> dict:
        self.send(command)
        return self.answer(timeout, f"{command!r} still running")

    def stop(self) -> str:
        """Ends the process; its stderr."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        return self.proc.stderr.read()


@pytest.fixture
def green_driver():
    """Starts ``green_driver.py`` processes with the given settings; all stopped afterwards."""
    started: list[GreenDriver] = []

    def start(**settings) -> GreenDriver:
        started.append(GreenDriver(settings))
        return started[-1]

    yield start
    for driver in started:
        driver.stop()
