"""Where the processes listen: this machine only unless told otherwise, so a
developer's `make up` is not on the network; containers say 0.0.0.0."""
from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tuoguan_common import metrics
from tuoguan_common.config import Settings, host_port, listen_host
from tuoguan_common.grpc_server import build_server
from tuoguan_common.testing import free_port

HOST_VARS = ("GATEWAY_HOST", "TUOGUAN_GRPC_HOST", "TUOGUAN_METRICS_HOST")


def listening(port: int) -> set[str]:
    """The addresses a TCP port is listening on here (Linux's /proc/net/tcp{,6}):
    an IPv4-mapped one as IPv4 (grpcio listens on IPv6 sockets), any address as "*"."""
    found = set()
    for name, size in (("tcp", 4), ("tcp6", 16)):
        path = Path("/proc/net") / name
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state != "0A" or int(hex_port, 16) != port:  # 0A: LISTEN
                continue
            raw = bytes.fromhex(address)
            # Each 32-bit word is in the host's (little-endian) order.
            raw = b"".join(raw[i:i + 4][::-1] for i in range(0, size, 4))
            text = socket.inet_ntop(socket.AF_INET if size == 4 else socket.AF_INET6, raw).removeprefix("::ffff:")
            found.add("*" if text in ("0.0.0.0", "::") else text)
    return found


@pytest.mark.parametrize("name", HOST_VARS)
def test_a_listening_address_is_this_machine_unless_set(name):
    assert listen_host(name, {}) == "127.0.0.1"
    assert listen_host(name, {name: ""}) == "127.0.0.1"
    assert listen_host(name, {name: " 0.0.0.0 "}) == "0.0.0.0"
    assert listen_host(name, {name: "::"}) == "::"


def test_an_apis_settings_name_where_its_grpc_and_metrics_listen(monkeypatch):
    for name in HOST_VARS:
        monkeypatch.delenv(name, raising=False)
    local = Settings.from_env("probe", grpc_port=1, metrics_port=2)
    assert (local.grpc_host, local.metrics_host) == ("127.0.0.1", "127.0.0.1")
    monkeypatch.setenv("TUOGUAN_GRPC_HOST", "0.0.0.0")
    monkeypatch.setenv("TUOGUAN_METRICS_HOST", "::")
    pod = Settings.from_env("probe", grpc_port=1, metrics_port=2)
    assert (pod.grpc_host, pod.metrics_host) == ("0.0.0.0", "::")


def test_an_ipv6_host_is_bracketed():
    assert host_port("127.0.0.1", 50051) == "127.0.0.1:50051"
    assert host_port("::", 50051) == "[::]:50051"
    assert host_port("[::1]", 50051) == "[::1]:50051"


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads Linux's /proc/net/tcp")
def test_the_grpc_server_and_metrics_listen_on_loopback_by_default():
    server, port = build_server(service="probe-bind", register=lambda srv: [], verifier=None, port=free_port())
    try:
        assert listening(port) == {"127.0.0.1"}
    finally:
        server.stop(0).wait()
    metrics_port = free_port()
    metrics.serve_metrics(metrics_port)
    assert listening(metrics_port) == {"127.0.0.1"}


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads Linux's /proc/net/tcp")
def test_the_grpc_server_listens_where_it_is_told():
    server, port = build_server(service="probe-bind-all", register=lambda srv: [], verifier=None,
                                port=free_port(), host="0.0.0.0")
    try:
        assert listening(port) == {"*"}
    finally:
        server.stop(0).wait()


def test_an_apis_cap_on_calls_in_flight_is_the_platform_s_unless_its_service_or_the_operator_says_otherwise(
        monkeypatch):
    monkeypatch.delenv("TUOGUAN_GRPC_MAX_CONCURRENT_RPCS", raising=False)
    assert Settings.from_env("probe", grpc_port=1, metrics_port=2).grpc_max_concurrent_rpcs == 128
    assert Settings.from_env("probe", grpc_port=1, metrics_port=2, max_in_flight=512).grpc_max_concurrent_rpcs == 512
    monkeypatch.setenv("TUOGUAN_GRPC_MAX_CONCURRENT_RPCS", "64")
    assert Settings.from_env("probe", grpc_port=1, metrics_port=2, max_in_flight=512).grpc_max_concurrent_rpcs == 64
