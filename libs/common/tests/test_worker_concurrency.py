"""A worker's handlers at once: the service's default, overridden by the
environment. In a subprocess: importing worker_main patches the standard
library for eventlet, which the pytest process must never be."""
from __future__ import annotations

import json
import os
import subprocess
import sys


def config(service: str, default: int, **env: str) -> dict:
    environment = {k: v for k, v in os.environ.items() if not k.endswith("_WORKER_CONCURRENCY")
                   and k != "TUOGUAN_WORKER_DB_POOL_SIZE"}
    environment.update(env)
    out = subprocess.run(
        [sys.executable, "-c", "import json; from tuoguan_common.worker_main import nameko_config; "
                               f"print(json.dumps(nameko_config({service!r}, {default})))"],
        env=environment, capture_output=True, text=True, check=True, timeout=60)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_the_services_default_then_the_platforms_then_the_services_own_setting():
    assert [config("billing", 10)[k] for k in ("max_workers", "PREFETCH_COUNT", "DB_POOL_SIZE")] == [10, 10, 14]
    # Past ten, the extra handlers wait in a batch holding no connection: the pool stays.
    assert [config("registration", 32)[k] for k in ("max_workers", "PREFETCH_COUNT", "DB_POOL_SIZE")] == [32, 32, 14]
    assert config("registration", 32, TUOGUAN_WORKER_CONCURRENCY="4")["max_workers"] == 4
    assert config("registration", 32, TUOGUAN_WORKER_CONCURRENCY="4",
                  REGISTRATION_WORKER_CONCURRENCY="48")["max_workers"] == 48
    assert config("billing", 10, TUOGUAN_WORKER_DB_POOL_SIZE="30")["DB_POOL_SIZE"] == 30
