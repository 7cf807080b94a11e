"""The gateway, served by uvicorn on a free port, wired to the real identity
api (on its own PostgreSQL database, demo accounts seeded) and to stand-ins
for registration, billing and ticketing."""
from __future__ import annotations

import threading

import httpx
import pytest
from gateway_fakes import FakeBilling, FakeRegistration, FakeTicketing
from gateway_testkit import Caller, fresh_phone, new_key

from gateway.app import create_app, server
from gateway.clients import Addresses
from identity.api import register as register_identity
from identity.migrate import MIGRATIONS_DIR
from identity.seed import DEMO_PATIENTS, DEMO_STAFF, seed
from tuoguan.billing.v1 import billing_pb2_grpc
from tuoguan.registration.v1 import registration_pb2_grpc
from tuoguan.ticketing.v1 import ticketing_pb2_grpc
from tuoguan_common import telemetry
from tuoguan_common.config import Settings
from tuoguan_common.db import Database, drop_database, migrate
from tuoguan_common.grpc_server import build_server
from tuoguan_common.testing import free_port, unique_database_url, wait_for


@pytest.fixture(scope="session")
def identity_database(infra):
    url = unique_database_url(infra, "gateway_identity")
    migrate(url, MIGRATIONS_DIR)
    database = Database(url, name="gateway-test-identity").open()
    seed(database)
    yield database
    database.close()
    drop_database(url)


@pytest.fixture(scope="session")
def fakes():
    return {"registration": FakeRegistration(), "billing": FakeBilling(), "ticketing": FakeTicketing()}


@pytest.fixture(scope="session")
def grpc_servers(identity_database, fakes, issuer, verifier):
    """identity (real), registration, billing and ticketing (stand-ins); their addresses."""
    settings = Settings.from_env("identity", grpc_port=0, metrics_port=0)
    registrations = {
        "identity": lambda srv: register_identity(srv, settings, identity_database, issuer=issuer),
        "registration": lambda srv: _add(registration_pb2_grpc.add_RegistrationServiceServicer_to_server,
                                         fakes["registration"], srv, "tuoguan.registration.v1.RegistrationService"),
        "billing": lambda srv: _add(billing_pb2_grpc.add_BillingServiceServicer_to_server,
                                    fakes["billing"], srv, "tuoguan.billing.v1.BillingService"),
        "ticketing": lambda srv: _add(ticketing_pb2_grpc.add_TicketingServiceServicer_to_server,
                                      fakes["ticketing"], srv, "tuoguan.ticketing.v1.TicketingService"),
    }
    servers, addresses = [], {}
    for name, register in registrations.items():
        srv, port = build_server(service=name, register=register, verifier=verifier, port=0, host="127.0.0.1")
        srv.start()
        servers.append(srv)
        addresses[name] = f"127.0.0.1:{port}"
    yield Addresses(**addresses)
    for srv in servers:
        srv.stop(0)


def _add(add_servicer, servicer, srv, name):
    add_servicer(servicer, srv)
    return [name]


@pytest.fixture(scope="session")
def gateway_url(grpc_servers):
    # A real tracer provider, so the gateway's spans have ids to propagate.
    telemetry.setup_tracing("gateway-tests", record=True)
    port = free_port()
    uvicorn_server = server(create_app(grpc_servers), host="127.0.0.1", port=port)
    thread = threading.Thread(target=uvicorn_server.run, name="gateway-under-test", daemon=True)
    thread.start()
    wait_for(lambda: uvicorn_server.started, timeout=20, message="the gateway to start")
    yield f"http://127.0.0.1:{port}"
    uvicorn_server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def http(gateway_url):
    with httpx.Client(base_url=gateway_url, timeout=20) as client:
        yield client


@pytest.fixture
def patient(http) -> Caller:
    """A patient who has just signed up."""
    phone = fresh_phone()
    reply = http.post("/api/v1/auth/signup", headers=new_key(),
                      json={"phone": phone, "password": "Patient2026", "display_name": "周文静"})
    assert reply.status_code == 201, reply.text
    return Caller(http, phone, "Patient2026")


DEMO_PASSWORDS = {login: password for login, password, *_ in DEMO_PATIENTS + DEMO_STAFF}


@pytest.fixture
def demo(http):
    """Signs in one of identity.seed's demo accounts: demo("office"), demo("13800000001")."""
    return lambda login: Caller(http, login, DEMO_PASSWORDS[login])
