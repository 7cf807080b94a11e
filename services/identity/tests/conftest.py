from __future__ import annotations

import grpc
import pytest

from identity.api import register
from identity.migrate import MIGRATIONS_DIR
from tuoguan.identity.v1 import identity_pb2_grpc
from tuoguan_common.config import Settings
from tuoguan_common.grpc_server import build_server


@pytest.fixture
def identity_db(make_database):
    return make_database("identity", MIGRATIONS_DIR)


@pytest.fixture
def identity(identity_db, issuer, verifier):
    """A stub of the real identity api, in-process on a free port, on a fresh database."""
    settings = Settings.from_env("identity", grpc_port=0, metrics_port=0)
    server, port = build_server(
        service="identity", register=lambda srv: register(srv, settings, identity_db, issuer=issuer),
        verifier=verifier, port=0, host="127.0.0.1",
    )
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    yield identity_pb2_grpc.IdentityServiceStub(channel)
    channel.close()
    server.stop(0)
