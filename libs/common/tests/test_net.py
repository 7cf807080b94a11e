"""free_port gives ports below the ephemeral range, which outgoing connections
never take, and that are free to listen on."""
from __future__ import annotations

import socket

from tuoguan_common.net import _ephemeral_ports, free_port


def test_free_ports_are_below_the_ephemeral_range_and_can_be_listened_on():
    ephemeral = _ephemeral_ports()
    ports = [free_port() for _ in range(50)]
    assert len(set(ports)) == 50, "never the same port twice"
    if ephemeral.start > 10_001:  # else the kernel picks, from the ephemeral range
        assert all(1024 < p < ephemeral.start for p in ports)
    for port in list(ports)[:5]:
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))
            s.listen()
