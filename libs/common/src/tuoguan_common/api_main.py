"""Start-up of an api process: settings, logs, traces, metrics, database,
token verifier (with the revoked tokens' list), the retention purge of a
service without a worker, then the grpcio server until SIGTERM."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable, Iterable

import grpc

from . import auth, metrics, retention, revocations
from .config import DEFAULT_MAX_IN_FLIGHT, PORTS, Settings, env_flag, service_address
from .db import Database, migrate
from .grpc_server import build_server, serve_forever
from .logs import setup_logging
from .telemetry import setup_tracing

log = logging.getLogger(__name__)

Register = Callable[[grpc.Server, Settings, Database], Iterable[str]]
# Identity's own: where its api reads the revoked tokens (its table, not a call to itself).
RevokedSource = Callable[[Database], Callable[[], "revocations.Revoked"]]


def run(service: str, register: Register, *, migrations_dir: Path | None = None,
        revoked_source: RevokedSource | None = None, purge_retention: bool = False,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT) -> None:
    """``purge_retention``: the api purges its database's outbox, inbox and
    idempotency keys past their retention in a thread (``retention.PeriodicPurge``),
    for a service that has no worker to do it (identity). ``max_in_flight``:
    the service's own default for TUOGUAN_GRPC_MAX_CONCURRENT_RPCS."""
    settings = Settings.from_env(service, grpc_port=PORTS[service]["grpc"], metrics_port=PORTS[service]["metrics"],
                                 max_in_flight=max_in_flight)
    setup_logging(f"{service}-api", settings.log_level)
    setup_tracing(f"{service}-api", otlp_endpoint=settings.otlp_endpoint, trace_file=settings.trace_file)
    if migrations_dir is not None and env_flag("TUOGUAN_MIGRATE_ON_START"):
        migrate(settings.database_url, migrations_dir)
    database = Database(settings.database_url, max_size=settings.db_pool_size, name=f"{service}-api").open()
    database.warn_without_autovacuum()
    metrics.serve_metrics(settings.metrics_port, settings.metrics_host)
    revoked = _revocation_list(service, settings, database, revoked_source)
    purger = None
    if purge_retention:
        config = retention.settings_from_env()
        purger = retention.PeriodicPurge(service, settings.database_url, retention.RetentionPolicy.from_settings(config),
                                         config["RETENTION_INTERVAL_SECONDS"]).start()
    verifier = auth.TokenVerifier.from_file(settings.token_public_key_file, revoked)
    server, port = build_server(
        service=service,
        register=lambda srv: register(srv, settings, database),
        verifier=verifier,
        port=settings.grpc_port,
        host=settings.grpc_host,
        workers=settings.grpc_workers,
        max_concurrent_rpcs=settings.grpc_max_concurrent_rpcs,
        reuse_port=settings.grpc_reuse_port,
    )
    log.info("api listening", extra={"grpc_host": settings.grpc_host, "grpc_port": port,
                                     "metrics_host": settings.metrics_host, "metrics_port": settings.metrics_port})
    try:
        serve_forever(server)
    finally:
        if purger is not None:
            purger.stop()
        if isinstance(revoked, revocations.RevocationList):
            revoked.stop()
        database.close()


def _revocation_list(service: str, settings: Settings, database: Database,
                     revoked_source: RevokedSource | None) -> revocations.RevocationList | frozenset:
    if settings.revocation_refresh_seconds <= 0:
        log.warning("token revocation check off (TUOGUAN_REVOCATION_REFRESH_SECONDS=0): revoked tokens work until they expire")
        return frozenset()
    if revoked_source is not None:
        return revocations.RevocationList(service, revoked_source(database), settings.revocation_refresh_seconds).start()
    return revocations.from_identity(service, service_address("identity", PORTS["identity"]["grpc"]),
                                     settings.revocation_refresh_seconds).start()

