"""Configuration from the environment, read once at start-up."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping
from urllib.parse import urlsplit, urlunsplit

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_AMQP_URI = "amqp://guest:guest@127.0.0.1:5672//"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


def amqp_tls(amqp_uri: str, env: Mapping[str, str] = os.environ) -> dict | None:
    """kombu's ``ssl=`` (nameko's AMQP_SSL) for a broker URI. For amqps://, the
    broker's certificate is checked, against TUOGUAN_AMQP_CA_FILE when set (a
    cluster's own CA) or the system's CAs, and so is its host name (kombu puts
    the URI's host in ``server_hostname``, which also sends it as SNI). kombu's
    own default for amqps:// checks neither the name nor sends SNI."""
    if not amqp_uri.startswith("amqps://"):
        return None
    import ssl

    options: dict = {"cert_reqs": ssl.CERT_REQUIRED, "server_hostname": None}
    if env.get("TUOGUAN_AMQP_CA_FILE"):
        options["ca_certs"] = env["TUOGUAN_AMQP_CA_FILE"]
    return options
# Where a process listens unless told otherwise: this machine only, so a
# developer's `make up` (demo accounts with well-known passwords) is not on
# the network. Containers must listen on every interface, and the Dockerfile,
# the chart and docker-compose.yml say 0.0.0.0 for them.
DEFAULT_LISTEN_HOST = "127.0.0.1"


def env_number(name: str, default, kind=int, env: Mapping[str, str] | None = None, *, minimum=None):
    """A number from the environment; a clear start-up error when it is not one."""
    env = os.environ if env is None else env
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        value = kind(raw)
    except ValueError as exc:
        raise SystemExit(f"{name} must be a {'whole ' if kind is int else ''}number, got {raw!r}") from exc
    if minimum is not None and value < minimum:
        raise SystemExit(f"{name} must be at least {minimum}, got {raw!r}")
    return value


def env_flag(name: str, default: bool = False, env: Mapping[str, str] | None = None) -> bool:
    """A switch from the environment: unset or empty is ``default``; an "off"
    switch turns on only with 1, true or yes, an "on" one off only with 0,
    false or no (any case)."""
    env = os.environ if env is None else env
    raw = (env.get(name) or "").strip().lower()
    if not raw:
        return default
    return raw not in ("0", "false", "no") if default else raw in ("1", "true", "yes")


def listen_host(name: str, env: Mapping[str, str] | None = None) -> str:
    """The address a server binds (``GATEWAY_HOST``, ``TUOGUAN_GRPC_HOST``,
    ``TUOGUAN_METRICS_HOST``): 127.0.0.1 when unset or empty."""
    env = os.environ if env is None else env
    return (env.get(name) or "").strip() or DEFAULT_LISTEN_HOST


def host_port(host: str, port: int) -> str:
    """``host:port``, an IPv6 host in brackets (``[::]:50051``)."""
    return f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"


def service_database_url(service: str, env: dict[str, str] | None = None) -> str:
    """One database per service on the server that DATABASE_URL names.

    ``<SERVICE>_DATABASE_URL`` wins when set; otherwise the database name is
    ``tuoguan_<service>`` (with ``TUOGUAN_DB_PREFIX`` replacing ``tuoguan`` so
    tests can use their own databases on the same server).
    """
    env = os.environ if env is None else env
    explicit = env.get(f"{service.upper()}_DATABASE_URL")
    if explicit:
        return explicit
    server = urlsplit(env.get("DATABASE_URL") or DEFAULT_DATABASE_URL)
    prefix = env.get("TUOGUAN_DB_PREFIX", "tuoguan")
    return urlunsplit(server._replace(path=f"/{prefix}_{service}"))


def migrations_database_url(service: str, env: dict[str, str] | None = None) -> str:
    """Where ``python -m <service>.migrate`` connects.

    Behind a transaction pooler, ``CREATE INDEX CONCURRENTLY`` (which cannot
    run in a transaction) may run on another server connection than the lock
    timeout set just before it: the migrate step can take a direct (or
    session-pooled) connection of its own. ``<SERVICE>_MIGRATIONS_DATABASE_URL``
    wins; a service with a database elsewhere (``<SERVICE>_DATABASE_URL``)
    migrates through that URL unless given its own; otherwise
    ``MIGRATIONS_DATABASE_URL`` names the server as ``DATABASE_URL`` does; with
    neither, the services' own URL (``service_database_url``).
    """
    env = os.environ if env is None else env
    own = env.get(f"{service.upper()}_MIGRATIONS_DATABASE_URL")
    if own:
        return own
    server = env.get("MIGRATIONS_DATABASE_URL")
    if server and not env.get(f"{service.upper()}_DATABASE_URL"):
        return service_database_url(service, {**env, "DATABASE_URL": server})
    return service_database_url(service, env)


# An api's calls in flight past which it answers RESOURCE_EXHAUSTED, unless
# TUOGUAN_GRPC_MAX_CONCURRENT_RPCS or the service says otherwise.
DEFAULT_MAX_IN_FLIGHT = 128


@dataclass(frozen=True)
class Settings:
    service: str
    database_url: str
    amqp_uri: str
    grpc_port: int
    metrics_port: int
    token_public_key_file: str | None
    token_private_key_file: str | None
    otlp_endpoint: str | None
    trace_file: str | None
    log_level: str
    grpc_workers: int
    grpc_max_concurrent_rpcs: int
    db_pool_size: int
    grpc_reuse_port: bool = False
    # How often the api reads identity's list of revoked tokens; 0 turns the check off.
    revocation_refresh_seconds: float = 30.0
    # Where the gRPC server and the /metrics endpoint listen (listen_host).
    grpc_host: str = DEFAULT_LISTEN_HOST
    metrics_host: str = DEFAULT_LISTEN_HOST

    @classmethod
    def from_env(cls, service: str, *, grpc_port: int, metrics_port: int,
                 max_in_flight: int = DEFAULT_MAX_IN_FLIGHT) -> "Settings":
        up = service.upper()
        return cls(
            service=service,
            database_url=service_database_url(service),
            amqp_uri=os.environ.get("AMQP_URI") or DEFAULT_AMQP_URI,
            grpc_port=env_number(f"{up}_GRPC_PORT", grpc_port),
            metrics_port=env_number(f"{up}_METRICS_PORT", metrics_port),
            token_public_key_file=os.environ.get("TUOGUAN_TOKEN_PUBLIC_KEY_FILE"),
            token_private_key_file=os.environ.get("TUOGUAN_TOKEN_PRIVATE_KEY_FILE"),
            otlp_endpoint=os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"),
            trace_file=os.environ.get("TUOGUAN_TRACE_FILE"),
            log_level=os.environ.get("LOG_LEVEL", "INFO"),
            grpc_workers=env_number("TUOGUAN_GRPC_WORKERS", 16),
            grpc_max_concurrent_rpcs=env_number("TUOGUAN_GRPC_MAX_CONCURRENT_RPCS", max_in_flight),
            db_pool_size=env_number("TUOGUAN_DB_POOL_SIZE", 8),
            grpc_reuse_port=env_flag("TUOGUAN_GRPC_REUSEPORT"),
            revocation_refresh_seconds=env_number("TUOGUAN_REVOCATION_REFRESH_SECONDS", 30.0, float, minimum=0),
            grpc_host=listen_host("TUOGUAN_GRPC_HOST"),
            metrics_host=listen_host("TUOGUAN_METRICS_HOST"),
        )


def service_address(service: str, default_port: int) -> str:
    """Where another service's gRPC API listens (``<SERVICE>_ADDR``)."""
    return os.environ.get(f"{service.upper()}_ADDR") or f"127.0.0.1:{default_port}"


# Default ports of the processes on one machine (make up, tests); the chart
# gives every process the same ports in its own pod.
PORTS = {
    "identity": {"grpc": 50051, "metrics": 9101, "worker_metrics": 9111},
    "registration": {"grpc": 50052, "metrics": 9102, "worker_metrics": 9112},
    "billing": {"grpc": 50053, "metrics": 9103, "worker_metrics": 9113},
    "ticketing": {"grpc": 50054, "metrics": 9104, "worker_metrics": 9114},
    "gateway": {"http": 8000},
}
