"""What every benchmark prints: progress lines, the machine, the figures as a
table and as one line of JSON."""
from __future__ import annotations

import json
import os
import platform as pyplatform
import subprocess
import time
from pathlib import Path


def progress(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def machine_note() -> str:
    cpu = "unknown cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    pg = subprocess.run(["psql", "--version"], capture_output=True, text=True).stdout.strip() or "psql ?"
    return f"{os.cpu_count()} cores ({cpu}), Python {pyplatform.python_version()}, {pg}"


def print_figures(figures: dict) -> None:
    """The figures as a table for people, then one line of JSON for tools."""
    print()
    print(f"{'figure':40} {'value':>12}")
    for k, v in figures.items():
        if k != "machine":
            print(f"{k:40} {v!s:>12}")
    print(json.dumps(figures, ensure_ascii=False))
