"""The gateway, served by uvicorn on a free port, wired to the real identity
api (on its own PostgreSQL database, demo accounts seeded) and to stand-ins
for registration, billing and ticketing; gateways of a test's own, with portal
settings of its choosing; and waiting-room queues of a test's own in Redis."""
from __future__ import annotations

import contextlib
import dataclasses
import uuid

import httpx
import pytest
import redis
from gateway_fakes import FakeBilling, FakeRegistration, FakeTicketing
from gateway_testkit import CODES, REDIS_URL, SESSION_SECRET, Caller, fresh_phone, serve, sign_up

from gateway.app import create_app
from gateway.clients import Addresses
from gateway.limits import ServerLimits
from gateway.portal.settings import PortalSettings
from gateway.send_guard import SendGuardSettings
from gateway.sign_in_guard import SignInGuardSettings
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
from tuoguan_common.testing import unique_database_url


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
        "identity": lambda srv: register_identity(srv, settings, identity_database, issuer=issuer, notifier=CODES),
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
    # Failed sign-ins counted under a namespace of this run's own: every test
    # signs in from 127.0.0.1, and runs before it must not count.
    run = f"test:{uuid.uuid4().hex}"
    guard = SignInGuardSettings(redis_url=REDIS_URL, namespace=f"{run}:sign-in-failures")
    send_guard = SendGuardSettings(redis_url=REDIS_URL, namespace=f"{run}:sms-codes")
    # The waiting room too (the API's holds take places in it): not the queue of other runs sharing the Redis.
    portal = dataclasses.replace(PortalSettings.from_env(), waiting_room_namespace=f"{run}:waiting-room")
    with serve(create_app(grpc_servers, portal, guard_settings=guard, send_guard_settings=send_guard)) as url:
        yield url
    client = redis.Redis.from_url(REDIS_URL, socket_timeout=2)
    keys = list(client.scan_iter(match=f"{run}:*"))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
def namespace():
    """A waiting-room queue of the test's own in the real Redis; its keys are deleted afterwards."""
    client = redis.Redis.from_url(REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
    problem = None
    try:
        client.ping()
    except (redis.RedisError, OSError) as exc:
        problem = f"{type(exc).__name__}: {exc}"
    if problem:
        client.close()
        pytest.fail(f"the waiting-room tests need a real Redis at {REDIS_URL} and it did not answer ({problem}). "
                    "Start it (docker compose up -d redis) or set REDIS_URL.", pytrace=False)
    ns = f"test:{uuid.uuid4().hex}"
    try:
        yield ns
    finally:
        keys = list(client.scan_iter(match=f"{ns}:*"))
        if keys:
            client.delete(*keys)
        assert not list(client.scan_iter(match=f"{ns}:*"))
        client.close()


@pytest.fixture
def own_gateway(grpc_servers, namespace):
    """Starts a gateway of the test's own, on the same services, with these portal settings:
    ``own_gateway(waiting_room_capacity=1)`` answers its URL. Its session secret is SESSION_SECRET
    and its waiting room the test's namespace, unless the settings say otherwise; ``guard`` (its
    count of failed sign-ins, in the test's namespace too), ``send_guard`` (its count of text
    messages, likewise), ``trusted_proxies``, ``limits`` (its connections' and bodies' limits) and
    ``webhook_via_proxy`` likewise."""
    with contextlib.ExitStack() as running:
        def start(guard: SignInGuardSettings | None = None, trusted_proxies: str = "127.0.0.1",
                  send_guard: SendGuardSettings | None = None, limits: ServerLimits | None = None,
                  webhook_via_proxy: bool = False, **settings) -> str:
            portal = PortalSettings(**{"session_secret": SESSION_SECRET, "waiting_room_namespace": namespace,
                                       "redis_url": REDIS_URL, **settings})
            guard = guard or SignInGuardSettings(redis_url=REDIS_URL, namespace=f"{namespace}:sign-in-failures")
            send_guard = send_guard or SendGuardSettings(redis_url=REDIS_URL, namespace=f"{namespace}:sms-codes")
            limits = limits or ServerLimits()
            return running.enter_context(serve(create_app(grpc_servers, portal, guard, send_guard, limits,
                                                          webhook_via_proxy=webhook_via_proxy),
                                               trusted_proxies=trusted_proxies, limits=limits))

        yield start


@pytest.fixture
def http(gateway_url):
    with httpx.Client(base_url=gateway_url, timeout=20) as client:
        yield client


@pytest.fixture
def patient(http) -> Caller:
    """A patient who has just signed up."""
    phone = fresh_phone()
    reply = sign_up(http, phone)
    assert reply.status_code == 201, reply.text
    return Caller(http, phone, "Patient2026")


DEMO_PASSWORDS = {login: password for login, password, *_ in DEMO_PATIENTS + DEMO_STAFF}


@pytest.fixture
def demo(http):
    """Signs in one of identity.seed's demo accounts: demo("office"), demo("13800000001")."""
    return lambda login: Caller(http, login, DEMO_PASSWORDS[login])
