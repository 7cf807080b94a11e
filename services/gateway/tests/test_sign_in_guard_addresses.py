"""What the sign-in guard counts a client address as, and how often it warns
that it cannot count: pure functions, no Redis, no server."""
from __future__ import annotations

import logging

import pytest

from gateway.address_guard import Unavailable
from gateway.sign_in_guard import counted_address
from tuoguan_common import metrics


@pytest.mark.parametrize(("host", "counted"), [
    ("36.110.5.7", "36.110.5.7"),
    # IPv4-mapped IPv6 (a dual-stack socket's view of an IPv4 client) is the IPv4 address.
    ("::ffff:36.110.5.7", "36.110.5.7"),
    ("::FFFF:246e:0507", "36.110.5.7"),
    # IPv6: the subscriber's /64, whichever of its addresses (and however written).
    ("2408:8000:1:2::7", "2408:8000:1:2::/64"),
    ("2408:8000:1:2:ffff:ffff:ffff:ffff", "2408:8000:1:2::/64"),
    ("2408:8000:0001:0002:0000:0000:0000:0007", "2408:8000:1:2::/64"),
    ("2408:8000:1:2::7%eth0", "2408:8000:1:2::/64"),
    ("2408:8000:1:3::7", "2408:8000:1:3::/64"),
])
def test_a_public_address_is_counted_ipv6_by_its_64(host, counted):
    assert counted_address(host) == counted


@pytest.mark.parametrize("host", [
    "10.20.0.7", "172.16.3.4", "192.168.1.20", "127.0.0.1", "100.64.0.1",  # private, loopback, carrier NAT
    "::ffff:10.20.0.7", "::ffff:127.0.0.1",  # mapped private ones stay private
    "fd00::7", "fe80::1%eth0", "::1", "::", "2001:db8::1",  # unique local, link-local, loopback, documentation
    "", None, "testclient", "36.110.5.7:443", "[2408:8000:1:2::7]", "2408:8000:1:2::/64",
])
def test_anything_else_is_not_counted(host):
    assert counted_address(host) is None


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_being_unavailable_warns_at_most_once_per_interval_and_says_how_often(caplog):
    clock = Clock()
    unavailable = Unavailable("sign-in guard", metrics.GATEWAY_SIGN_IN_GUARD, interval=10, clock=clock)
    caplog.set_level(logging.WARNING, logger="gateway.address_guard")
    for _ in range(50):
        unavailable("sign-ins go through unchecked", TimeoutError("Timeout reading from socket"))
        clock.now += 0.1  # 5 s in all
    assert len(caplog.records) == 1
    assert "sign-in guard unavailable (TimeoutError from Redis)" in caplog.records[0].getMessage()

    clock.now += 5  # 10 s after the first warning
    unavailable("sign-ins go through unchecked", ConnectionError())
    assert len(caplog.records) == 2
    assert caplog.records[1].getMessage().endswith("50 time(s) since the last such warning")
