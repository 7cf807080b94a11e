"""Cross-service tests run against the whole platform: every api, worker and
the gateway as real processes, on fresh databases, with the real PostgreSQL
and RabbitMQ."""
from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest

from tests.e2e import journey
from tuoguan_common.launcher import Platform

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"


def pytest_collection_modifyitems(config, items):
    """Tests marked after_journeys go last, whatever their file's name."""
    items.sort(key=lambda item: item.get_closest_marker("after_journeys") is not None)


@pytest.fixture(scope="session")
def platform(infra, tmp_path_factory):
    work = tmp_path_factory.mktemp("platform")
    plat = Platform(
        work_dir=work,
        database_url=infra["database_url"],
        amqp_uri=infra["amqp_uri"],
        redis_url=infra["redis_url"],
        extra_env={
            # Short enough for a test to watch a hold expire, long enough that
            # no other journey's payment races it on a loaded machine.
            "REGISTRATION_HOLD_MINUTES": os.environ.get("E2E_HOLD_MINUTES", "0.25"),
            "TUOGUAN_TRACE_FILE": str(work / "spans.jsonl"),
            # A revoked token is refused within this: a test waits seconds, not the default 30.
            "TUOGUAN_REVOCATION_REFRESH_SECONDS": "1",
        },
    )
    plat.start()
    journey.platform = plat
    try:
        plat.seed()
        yield plat
    finally:
        # Names first: stopping forgets the processes, not their log files.
        names = list(plat.procs)
        plat.stop()
        if os.environ.get("CI"):
            ARTIFACTS.mkdir(exist_ok=True)
            for name in names:
                (ARTIFACTS / f"{name}.log").write_text(plat.log(name))


@pytest.fixture
def http(platform):
    with httpx.Client(base_url=platform.gateway_url, timeout=15) as client:
        yield client
