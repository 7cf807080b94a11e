"""Ticketing's test fixtures: a migrated database with the seeded subsystem
catalogue, the api in-process on a free port with a clock the tests set and a
stand-in for identity's list of engineers, and people with tokens (helpers in
ticketing_testkit; the engineers they make are on that list)."""
from __future__ import annotations

import grpc
import pytest
from ticketing.api import register
from ticketing.config import TicketingConfig
from ticketing.migrate import MIGRATIONS_DIR
from ticketing.seed import seed
from ticketing.store import Store
from ticketing_testkit import Clock, FakeStaffDirectory, People
from tuoguan.ticketing.v1 import ticketing_pb2_grpc as pb_grpc
from tuoguan_common.grpc_server import build_server
from tuoguan_common.testing import free_port


@pytest.fixture
def database(make_database):
    db = make_database("ticketing", MIGRATIONS_DIR)
    seed(db)
    return db


@pytest.fixture
def config() -> TicketingConfig:
    return TicketingConfig()


@pytest.fixture
def store(database, config) -> Store:
    return Store(database, config)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def directory() -> FakeStaffDirectory:
    """Who identity lists as engineers, for the api in-process: the engineers of ``people``."""
    return FakeStaffDirectory()


@pytest.fixture
def stub(database, verifier, config, clock, directory):
    server, port = build_server(
        service="ticketing", register=lambda srv: register(srv, None, database, config, clock=clock,
                                                           staff=directory),
        verifier=verifier, port=free_port(), host="127.0.0.1", workers=16,
    )
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    yield pb_grpc.TicketingServiceStub(channel)
    channel.close()
    server.stop(0).wait()


@pytest.fixture
def people(issuer, directory) -> People:
    return People(issuer, directory)
