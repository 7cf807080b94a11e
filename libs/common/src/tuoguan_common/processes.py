"""Real service processes started by the end-to-end tests, the benchmark and
the services' worker tests: each logs to its own file, is ready when its port
answers, and is stopped with SIGTERM (then SIGKILL) when the group stops."""
from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import IO

from .net import answers


class ProcessFailed(RuntimeError):
    """A process exited, or did not listen, before it was ready."""


class ProcessGroup:
    def __init__(self, log_dir: Path, *, cwd: Path | None = None):
        self.log_dir = log_dir
        self.cwd = cwd
        self.procs: dict[str, subprocess.Popen] = {}
        self._logs: list[IO[bytes]] = []

    def start(self, name: str, argv: list[str], env: dict[str, str], *, ready_port: int | None = None,
              timeout: float = 60.0) -> subprocess.Popen:
        """Starts ``argv`` with ``env`` over this process's environment; waits for ``ready_port``."""
        log = open(self.log_dir / f"{name}.log", "ab")
        self._logs.append(log)
        proc = subprocess.Popen(argv, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT,
                                cwd=str(self.cwd) if self.cwd else None)
        self.procs[name] = proc
        if ready_port is None:
            return proc
        deadline = time.monotonic() + timeout
        while not answers("127.0.0.1", ready_port):
            if proc.poll() is not None:
                raise ProcessFailed(f"{name} exited with {proc.returncode}:\n{self.log(name)[-4000:]}")
            if time.monotonic() > deadline:
                raise ProcessFailed(f"{name} did not listen on {ready_port} within {timeout}s:\n"
                                    f"{self.log(name)[-4000:]}")
            time.sleep(0.1)
        return proc

    def log(self, name: str) -> str:
        path = self.log_dir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop_all(self, timeout: float = 20.0) -> None:
        # Every process gets SIGTERM first, so they wind down side by side.
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.procs.clear()
        for log in self._logs:
            log.close()
        self._logs.clear()
