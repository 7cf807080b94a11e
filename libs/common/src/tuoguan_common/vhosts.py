"""RabbitMQ virtual hosts of a test run's or a test platform's own.

Two platforms on one broker (the end-to-end platform and a test's second one,
a test run beside `make up`, a bench beside either) would otherwise share
nameko's exchanges and queues, which are named after the services alone: one
platform's workers would take the other's events, and a platform's leftover
messages would reach the next one. Only on a local broker this user
administers (``rabbitmqctl``, as root or the broker's owner); anywhere else
the URI is kept as it is.
"""
from __future__ import annotations

import logging
import shutil
import subprocess
import uuid
from typing import Callable
from urllib.parse import urlsplit

import kombu

log = logging.getLogger(__name__)

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def private_vhost(amqp_uri: str, label: str) -> tuple[str, Callable[[], None]]:
    """A new virtual host for ``amqp_uri``'s user; returns (its URI, a
    function that deletes it), or (``amqp_uri``, a no-op) where it cannot."""
    parts = urlsplit(amqp_uri)
    if (parts.hostname or "127.0.0.1") not in LOCAL_HOSTS or not shutil.which("rabbitmqctl"):
        return amqp_uri, lambda: None
    vhost = f"tuoguan-{label}-{uuid.uuid4().hex[:8]}"
    ctl = ["rabbitmqctl", "-q"]

    def run(*args: str) -> bool:
        return subprocess.run(ctl + list(args), capture_output=True, timeout=60).returncode == 0

    def delete() -> None:
        run("delete_vhost", vhost)

    if not run("add_vhost", vhost):
        log.info("no virtual host of our own: rabbitmqctl refused; sharing %s", parts.path or "/")
        return amqp_uri, lambda: None
    if not run("set_permissions", "-p", vhost, parts.username or "guest", ".*", ".*", ".*"):
        delete()
        log.info("no virtual host of our own: rabbitmqctl refused the permissions; sharing %s", parts.path or "/")
        return amqp_uri, lambda: None
    private = parts._replace(path=f"/{vhost}").geturl()
    # rabbitmqctl speaks to this machine's node, which need not be the broker
    # at the URI's port (a container's beside it): use the host only if it opens.
    try:
        with kombu.Connection(private, connect_timeout=5) as conn:
            conn.connect()
    except Exception as exc:  # noqa: BLE001 - any failure: the broker there is not the one administered
        delete()
        log.info("no virtual host of our own: the broker at the URI does not have it (%s); sharing %s",
                 type(exc).__name__, parts.path or "/")
        return amqp_uri, lambda: None
    return private, delete
