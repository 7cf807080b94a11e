"""Small socket helpers: ports for processes started on this machine, and
waits on a peer that may stop answering."""
from __future__ import annotations

import random
import socket


_handed_out: set[int] = set()


def _ephemeral_ports() -> range:
    try:
        low, high = (int(n) for n in open("/proc/sys/net/ipv4/ip_local_port_range").read().split())
    except (OSError, ValueError):
        low, high = 32768, 60999  # Linux's default
    return range(low, high + 1)


def free_port() -> int:
    """A port nothing listens on, for a process started next to bind.

    Picked at random below the ephemeral range: a port the kernel handed out
    (bind to 0) is soon handed out again to some outgoing connection (the
    platform makes hundreds), and the process meant to listen there then
    fails with "Address already in use"."""
    ephemeral = _ephemeral_ports()
    for _ in range(200):
        port = random.randint(10_000, ephemeral.start - 1) if ephemeral.start > 10_001 else 0
        if port in _handed_out:  # not listened on yet, but promised
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            port = s.getsockname()[1]
        _handed_out.add(port)
        return port
    raise OSError("no free port below the ephemeral range")


def answers(host: str, port: int, timeout: float = 0.5) -> bool:
    """Something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def limit_amqp_waits(connection, seconds: float) -> None:
    """Every later read or write on a connected py-amqp ``connection`` gives
    up after ``seconds`` (``socket.timeout``, an ``OSError``).

    py-amqp's own read_timeout and write_timeout are socket options
    (SO_RCVTIMEO, SO_SNDTIMEO) that eventlet's green sockets ignore: in a
    worker, a broker that kept the connection open but stopped answering held
    its caller forever. The socket's own timeout is honoured by green and
    plain sockets alike. py-amqp waits with the socket's timeout unless a
    call names another, and puts it back afterwards."""
    connection.transport.sock.settimeout(seconds)
