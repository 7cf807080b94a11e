"""The platform's gRPC clients spread calls over every address their target
resolves to (the chart gives them a headless Service's DNS name: one address
per replica), and carry the trace context."""
from __future__ import annotations

import asyncio

import grpc
import pytest
from tuoguan_common import grpc_client
from tuoguan_common.grpc_server import build_server


def replica(name: str, verifier):
    def whoami(request, context):
        return name.encode()

    def register(srv):
        handlers = {"Whoami": grpc.unary_unary_rpc_method_handler(whoami)}
        srv.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("test.Replica", handlers),))
        return ["test.Replica"]

    server, port = build_server(service=f"replica-{name}", register=register, verifier=verifier, port=0,
                                   host="127.0.0.1")
    server.start()
    return server, port


@pytest.fixture
def two_replicas(verifier):
    (a, port_a), (b, port_b) = replica("a", verifier), replica("b", verifier)
    # What a DNS name with two A records resolves to, written out.
    yield f"ipv4:127.0.0.1:{port_a},127.0.0.1:{port_b}"
    a.stop(0).wait(10)
    b.stop(0).wait(10)


def test_calls_from_one_channel_go_to_every_replica(two_replicas):
    async def calls():
        async with grpc_client.aio_channel(two_replicas) as channel:
            call = channel.unary_unary("/test.Replica/Whoami")
            return [await call(b"", timeout=5, wait_for_ready=True) for _ in range(20)]

    answers = asyncio.run(calls())
    assert answers.count(b"a") >= 5 and answers.count(b"b") >= 5
