"""Starts the whole platform as real processes on fresh databases and free
ports: what the end-to-end tests and ``make bench`` run against.

Every process is the one `make up` and the chart run (the api's grpcio server,
the nameko worker, the gateway); only ports and database names differ.
"""
from __future__ import annotations

import os
import secrets
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable
from urllib.parse import urlsplit

from .auth import generate_keypair
from .config import DEFAULT_AMQP_URI, DEFAULT_DATABASE_URL, DEFAULT_REDIS_URL
from .db import drop_database, migrate, migrations_dir
from .net import free_port
from .processes import ProcessGroup
from .topology import declare_event_queues
from .vhosts import private_vhost

DOMAIN_SERVICES = ("identity", "registration", "billing", "ticketing")
WORKER_SERVICES = ("identity", "registration", "billing", "ticketing")


@dataclass
class Platform:
    """The running platform; ``start()`` then ``stop()`` (or use as a context manager)."""

    work_dir: Path
    database_url: str = field(default_factory=lambda: os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL)
    amqp_uri: str = field(default_factory=lambda: os.environ.get("AMQP_URI") or DEFAULT_AMQP_URI)
    redis_url: str = field(default_factory=lambda: os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL)
    db_prefix: str = field(default_factory=lambda: f"e2e_{uuid.uuid4().hex[:8]}")
    extra_env: dict[str, str] = field(default_factory=dict)
    # More than one api process of a service, as replicas behind one port
    # (SO_REUSEPORT: the kernel spreads connections over them), each with its
    # own /metrics port. One machine's stand-in for the chart's replicas.
    api_replicas: dict[str, int] = field(default_factory=dict)
    keep_databases: bool = False
    # Its own RabbitMQ virtual host where the broker is local (vhosts.py):
    # another platform on the broker then never takes this one's events.
    own_vhost: bool = True
    ports: dict[str, int] = field(default_factory=dict)
    session_secret: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    payment_ticket_key: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    processes: ProcessGroup = field(init=False)
    _drop_vhost: Callable[[], None] = field(init=False, default_factory=lambda: lambda: None, repr=False)

    def db_url(self, service: str) -> str:
        return urlsplit(self.database_url)._replace(path=f"/{self.db_prefix}_{service}").geturl()

    def address(self, service: str) -> str:
        return f"127.0.0.1:{self.ports[f'{service}_grpc']}"

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['gateway_http']}"

    def env(self) -> dict[str, str]:
        env = {
            **os.environ,
            "DATABASE_URL": self.database_url,
            "AMQP_URI": self.amqp_uri,
            "REDIS_URL": self.redis_url,
            "TUOGUAN_DB_PREFIX": self.db_prefix,
            "TUOGUAN_TOKEN_PRIVATE_KEY_FILE": str(self.private_key),
            "TUOGUAN_TOKEN_PUBLIC_KEY_FILE": str(self.public_key),
            "GATEWAY_PORT": str(self.ports["gateway_http"]),
            "GATEWAY_SESSION_SECRET": self.session_secret,
            # Its own waiting-room queue in a Redis other platforms may share.
            "WAITING_ROOM_NAMESPACE": f"tuoguan:{self.db_prefix}:waiting-room",
            "LOG_LEVEL": os.environ.get("LOG_LEVEL", "INFO"),
            "PYTHONUNBUFFERED": "1",
            # A developer's platform: password-reset codes in identity-api's log
            # (unless IDENTITY_SMS_URL names a gateway).
            "IDENTITY_RESET_CODES_TO_LOG": os.environ.get("IDENTITY_RESET_CODES_TO_LOG", "true"),
        }
        for service in DOMAIN_SERVICES:
            up = service.upper()
            env[f"{up}_GRPC_PORT"] = str(self.ports[f"{service}_grpc"])
            env[f"{up}_METRICS_PORT"] = str(self.ports[f"{service}_metrics"])
            env[f"{up}_ADDR"] = self.address(service)
        for service in WORKER_SERVICES:
            env[f"{service.upper()}_WORKER_METRICS_PORT"] = str(self.ports[f"{service}_worker_metrics"])
        env.update(self.extra_env)
        return env

    def _spawn(self, name: str, argv: list[str], ready_port: int, env: dict[str, str] | None = None) -> None:
        self.processes.start(name, argv, {**self.env(), **(env or {})}, ready_port=ready_port)

    def _spawn_api(self, service: str, replicas: int) -> None:
        argv = [sys.executable, "-m", f"{service}.api"]
        # Registration signs the payment tickets, billing checks them: nobody else holds the key.
        own = {"TUOGUAN_PAYMENT_TICKET_KEY": self.payment_ticket_key} if service in ("registration", "billing") else {}
        if replicas == 1:
            self._spawn(f"{service}-api", argv, self.ports[f"{service}_grpc"], own)
            return
        for i in range(replicas):
            if i > 0:
                self.ports[f"{service}_metrics_{i + 1}"] = free_port()
            metrics_port = self.ports[f"{service}_metrics" if i == 0 else f"{service}_metrics_{i + 1}"]
            self._spawn(f"{service}-api" if i == 0 else f"{service}-api-{i + 1}", argv, self.ports[f"{service}_grpc"],
                        {**own, "TUOGUAN_GRPC_REUSEPORT": "1", f"{service.upper()}_METRICS_PORT": str(metrics_port)})

    @property
    def procs(self) -> dict[str, subprocess.Popen]:
        return self.processes.procs

    def log(self, name: str) -> str:
        return self.processes.log(name)

    def start(self, *, with_gateway: bool = True) -> "Platform":
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.processes = ProcessGroup(self.work_dir)
        self.private_key, self.public_key = generate_keypair(self.work_dir / "keys")
        for service in DOMAIN_SERVICES:
            for kind in ("grpc", "metrics"):
                self.ports[f"{service}_{kind}"] = free_port()
        for service in WORKER_SERVICES:
            self.ports[f"{service}_worker_metrics"] = free_port()
        self.ports["gateway_http"] = free_port()
        py = sys.executable
        try:
            if self.own_vhost:
                self.amqp_uri, self._drop_vhost = private_vhost(self.amqp_uri, self.db_prefix.replace("_", "-"))
            for service in DOMAIN_SERVICES:
                migrate(self.db_url(service), migrations_dir(service))
                declare_event_queues(service, self.amqp_uri)
            for service in WORKER_SERVICES:
                self._spawn(f"{service}-worker", [py, "-m", "tuoguan_common.worker_main", service],
                            self.ports[f"{service}_worker_metrics"])
            for service in DOMAIN_SERVICES:
                self._spawn_api(service, self.api_replicas.get(service, 1))
            if with_gateway:
                self._spawn("gateway", [py, "-m", "gateway"], self.ports["gateway_http"])
        except Exception:
            self.stop()
            raise
        return self

    def seed(self) -> None:
        """Loads the demo data `make up` loads (accounts, departments, doctors, schedules)."""
        for module in ("identity.seed", "registration.seed", "ticketing.seed"):
            with open(self.work_dir / "seed.log", "ab") as log:
                subprocess.run([sys.executable, "-m", module], env=self.env(), check=True, stdout=log,
                               stderr=subprocess.STDOUT)

    def stop(self) -> None:
        self.processes.stop_all()
        self._drop_vhost()
        self._drop_vhost = lambda: None
        if not self.keep_databases:
            for service in DOMAIN_SERVICES:
                drop_database(self.db_url(service))

    def __enter__(self) -> "Platform":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
