"""The shared library's fixtures: a database with the outbox's tables on the
real PostgreSQL, a real PgBouncer in front of it, and the relay and the queue
watch driven in a process eventlet has patched (``green_driver.py``)."""
from __future__ import annotations

import json
import os
import pwd
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

import psycopg
import pytest

from tuoguan_common import outbox
from tuoguan_common.db import Database, drop_database, ensure_database
from tuoguan_common.net import answers, free_port
from tuoguan_common.testing import unique_database_url

# Debian's package (bash .ci/run installs it).
PGBOUNCER = "/usr/sbin/pgbouncer"
# Server connections per database: few, so that a second client's transaction
# sends the next one to another server connection, as production's load does.
PGBOUNCER_POOL_SIZE = 2


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


@dataclass
class PgBouncer:
    port: int
    log: Path

    def url(self, direct_url: str) -> str:
        """``direct_url``'s database, user and password through this PgBouncer."""
        parts = urlsplit(direct_url)
        credentials = parts.netloc.rpartition("@")[0]
        return parts._replace(netloc=f"{credentials}@127.0.0.1:{self.port}" if credentials
                              else f"127.0.0.1:{self.port}").geturl()

    def server_connections(self, direct_url: str) -> list[psycopg.Connection]:
        """One client for each of the pool's server connections of ``direct_url``'s
        database, each in a transaction (so each holds its own): what any later
        client of the pool gets. The caller closes them."""
        clients = [psycopg.connect(self.url(direct_url)) for _ in range(PGBOUNCER_POOL_SIZE)]
        pids = {c.execute("SELECT pg_backend_pid()").fetchone()[0] for c in clients}
        assert len(pids) == PGBOUNCER_POOL_SIZE, pids
        return clients


@pytest.fixture
def pgbouncer(infra):
    """A real PgBouncer in transaction mode in front of the test PostgreSQL,
    ``PGBOUNCER_POOL_SIZE`` server connections per database, on a free port.
    Fails when it is not installed: nothing is skipped."""
    if not os.access(PGBOUNCER, os.X_OK):
        pytest.fail(f"{PGBOUNCER} is missing: install Debian's pgbouncer (bash .ci/run does)", pytrace=False)
    server = urlsplit(infra["database_url"])
    # PgBouncer will not run as root: as root (CI's container), it runs as
    # nobody, in a directory of its own that nobody may write.
    as_root = os.geteuid() == 0
    home = Path(tempfile.mkdtemp(prefix="tuoguan-pgbouncer-"))
    port, log = free_port(), home / "pgbouncer.log"
    # Clients are trusted; PgBouncer logs in to PostgreSQL with the test URL's password.
    (home / "users.txt").write_text(
        f'"{unquote(server.username or "postgres")}" "{unquote(server.password or "")}"\n')
    ini = home / "pgbouncer.ini"
    ini.write_text(f"""[databases]
* = host={server.hostname or "127.0.0.1"} port={server.port or 5432}
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {home / "users.txt"}
pool_mode = transaction
default_pool_size = {PGBOUNCER_POOL_SIZE}
logfile = {log}
pidfile = {home / "pgbouncer.pid"}
""")
    if as_root:
        nobody = pwd.getpwnam("nobody")
        for path in (home, *home.iterdir()):
            os.chown(path, nobody.pw_uid, nobody.pw_gid)
    proc = subprocess.Popen([PGBOUNCER, *(["-u", "nobody"] if as_root else []), str(ini)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 10
        while not answers("127.0.0.1", port):
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"PgBouncer did not start: {proc.communicate()[1][-2000:]}"
                            f"{log.read_text()[-2000:] if log.exists() else ''}", pytrace=False)
            time.sleep(0.05)
        yield PgBouncer(port, log)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        shutil.rmtree(home, ignore_errors=True)
