"""Registration's test fixtures: a migrated database, the api in-process on a
free port, tokens, and a small clinic (helpers in registration_testkit)."""
from __future__ import annotations

import grpc
import pytest
from registration.api import register
from registration.config import RegistrationConfig
from registration.migrate import MIGRATIONS_DIR
from registration.store import Store
from registration_testkit import Clinic, People
from tuoguan.registration.v1 import registration_pb2_grpc as pb_grpc
from tuoguan_common.grpc_server import build_server
from tuoguan_common.testing import free_port


@pytest.fixture
def database(make_database):
    return make_database("registration", MIGRATIONS_DIR)


@pytest.fixture
def store(database) -> Store:
    return Store(database)


@pytest.fixture
def config() -> RegistrationConfig:
    # Admission at the hold off: a loaded test machine must not turn the races' holds away
    # (test_registration_hold_admission turns it on).
    return RegistrationConfig(hold_latency_target=0)


@pytest.fixture
def stub(database, verifier, config):
    server, port = build_server(
        service="registration", register=lambda srv: register(srv, None, database, config),
        verifier=verifier, port=free_port(), host="127.0.0.1", workers=16,
    )
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    yield pb_grpc.RegistrationServiceStub(channel)
    channel.close()
    server.stop(0).wait()


@pytest.fixture
def people(issuer) -> People:
    return People(issuer)


@pytest.fixture
def clinic(store) -> Clinic:
    return Clinic(store)
