"""The gateway's gRPC clients: the one seam between HTTP and the services.

Channels are opened in the app's lifespan (grpc.aio binds them to the running
event loop) from addresses tests can replace. Each request gets stubs bound to
its caller: every call carries the caller's bearer token, so the services,
not the gateway, decide who may do what.
"""
from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from typing import Any

from grpc import aio

from tuoguan.billing.v1 import billing_pb2_grpc
from tuoguan.identity.v1 import identity_pb2_grpc
from tuoguan.registration.v1 import registration_pb2_grpc
from tuoguan.ticketing.v1 import ticketing_pb2_grpc
from tuoguan_common.auth import bearer_metadata
from tuoguan_common.config import PORTS, service_address
from tuoguan_common.grpc_client import aio_channel

# Long enough for a payment provider's answer; short enough that a hung
# service becomes a 503 instead of a hung browser.
CALL_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class Addresses:
    identity: str
    registration: str
    billing: str
    ticketing: str

    @classmethod
    def from_env(cls) -> "Addresses":
        return cls(**{f.name: service_address(f.name, PORTS[f.name]["grpc"]) for f in dataclasses.fields(cls)})


class CallerStub:
    """A service stub whose every call carries one caller's token and a deadline."""

    def __init__(self, stub: Any, metadata: tuple[tuple[str, str], ...]):
        self._stub = stub
        self._metadata = metadata

    def __getattr__(self, method: str):
        return functools.partial(getattr(self._stub, method), metadata=self._metadata, timeout=CALL_TIMEOUT_SECONDS)


@dataclass(frozen=True)
class Services:
    """The services as one caller sees them."""

    identity: Any
    registration: Any
    billing: Any
    ticketing: Any


class Clients:
    def __init__(self, addresses: Addresses):
        self._channels: dict[str, aio.Channel] = {
            name: aio_channel(target) for name, target in dataclasses.asdict(addresses).items()
        }
        self._stubs = {
            "identity": identity_pb2_grpc.IdentityServiceStub(self._channels["identity"]),
            "registration": registration_pb2_grpc.RegistrationServiceStub(self._channels["registration"]),
            "billing": billing_pb2_grpc.BillingServiceStub(self._channels["billing"]),
            "ticketing": ticketing_pb2_grpc.TicketingServiceStub(self._channels["ticketing"]),
        }

    def for_caller(self, token: str | None) -> Services:
        metadata = bearer_metadata(token) if token else ()
        return Services(**{name: CallerStub(stub, metadata) for name, stub in self._stubs.items()})

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close()
