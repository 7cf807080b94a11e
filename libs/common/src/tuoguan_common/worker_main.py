"""Runs one nameko service class as a worker process: ``tuoguan-worker pkg.worker``.

eventlet must patch the standard library before anything else imports it, so
this is the process's entry point and imports the service module afterwards.
"""
from __future__ import annotations

import warnings

# nameko 3 runs on eventlet (STACK.md), and eventlet 0.41 announces its
# deprecation in a dozen lines from every worker at start: nothing an operator
# can act on, and it buries the start-up log of `make up`.
warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")

import eventlet  # noqa: E402

eventlet.monkey_patch()

import errno  # noqa: E402
import importlib  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402

os.environ.setdefault("PSYCOPG_WAIT_FUNC", "wait_select")

log = logging.getLogger("tuoguan.worker")


# Ten handlers at once keep two cores busy; each may hold a database connection.
DEFAULT_CONCURRENCY = 10


def nameko_config(service: str, concurrency: int = DEFAULT_CONCURRENCY) -> dict:
    """The worker's nameko settings. ``concurrency`` is the service's own
    default of handlers at once (and prefetch); ``<SERVICE>_WORKER_CONCURRENCY``,
    then ``TUOGUAN_WORKER_CONCURRENCY``, override it."""
    from .config import DEFAULT_AMQP_URI, amqp_tls, env_number, service_database_url
    from .nameko_support import MAX_ATTEMPTS, RETRY_MAX_SECONDS
    from .retention import settings_from_env as retention_settings

    concurrency = env_number(f"{service.upper()}_WORKER_CONCURRENCY",
                             env_number("TUOGUAN_WORKER_CONCURRENCY", concurrency, minimum=1), minimum=1)
    amqp_uri = os.environ.get("AMQP_URI") or DEFAULT_AMQP_URI
    return {
        "AMQP_URI": amqp_uri,
        # nameko's consumers and publishers check an amqps:// broker's certificate and name as the relay does.
        "AMQP_SSL": amqp_tls(amqp_uri),
        "DATABASE_URL": service_database_url(service),
        "max_workers": concurrency,
        "PREFETCH_COUNT": concurrency,
        # Up to the default's ten, every handler and timer may hold a
        # connection at once. Past it, more handlers are for batches
        # (nameko_support.EventBatch), whose waiting handlers hold none; the
        # worker's other handlers then share the pool, each for the few
        # milliseconds of its transaction.
        # How often the worker asks the broker how deep its event queues are.
        "QUEUE_WATCH_SECONDS": env_number("TUOGUAN_QUEUE_WATCH_SECONDS", 15.0, float, minimum=0.1),
        "DB_POOL_SIZE": env_number("TUOGUAN_WORKER_DB_POOL_SIZE", min(concurrency, DEFAULT_CONCURRENCY) + 4,
                                   minimum=1),
        # How long a handler waits for one of the pool's connections (PoolTimeout after).
        "DB_POOL_TIMEOUT": env_number("TUOGUAN_WORKER_DB_POOL_TIMEOUT", 30.0, float, minimum=0.1),
        # An event failing transiently: how many tries before it is dead-lettered, and the longest wait between two.
        "EVENT_MAX_ATTEMPTS": env_number("TUOGUAN_EVENT_MAX_ATTEMPTS", MAX_ATTEMPTS, minimum=1),
        "EVENT_RETRY_MAX_SECONDS": env_number("TUOGUAN_EVENT_RETRY_MAX_SECONDS", RETRY_MAX_SECONDS, float, minimum=0),
        # The purge of the outbox, inbox and idempotency keys (nameko_support.RetentionPurge): how often, how much.
        **retention_settings(),
    }


def run(service_cls, service: str, metrics_port: int, *, concurrency: int = DEFAULT_CONCURRENCY) -> None:
    from nameko import config as nameko_cfg
    from nameko.runners import ServiceRunner

    from . import metrics
    from .config import listen_host, service_database_url
    from .logs import setup_logging
    from .telemetry import setup_tracing

    metrics_port = int(os.environ.get(f"{service.upper()}_WORKER_METRICS_PORT") or metrics_port)
    metrics_host = listen_host("TUOGUAN_METRICS_HOST")
    setup_logging(f"{service}-worker", os.environ.get("LOG_LEVEL", "INFO"))
    setup_tracing(f"{service}-worker", otlp_endpoint=os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"),
                  trace_file=os.environ.get("TUOGUAN_TRACE_FILE"))
    nameko_cfg.update(nameko_config(service, concurrency))
    log.info("worker starting", extra={"database": service_database_url(service).rsplit("/", 1)[-1],
                                       "metrics_port": metrics_port})
    runner = ServiceRunner()
    runner.add_service(service_cls)

    stopping = []

    def shutdown(signum, frame):
        # Ctrl-C under a supervisor delivers SIGINT from the terminal and
        # SIGTERM from the supervisor: stop once.
        if stopping:
            return
        stopping.append(signum)
        log.info("worker stopping", extra={"signal": signum})
        eventlet.spawn_n(runner.stop)

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    runner.start()
    # Serving /metrics only once the consumers' queues are declared makes the
    # port a readiness signal: events published from then on are not lost.
    metrics.serve_metrics(metrics_port, metrics_host)
    waiter = eventlet.spawn(runner.wait)
    while True:
        try:
            waiter.wait()
            break
        except OSError as exc:
            if exc.errno != errno.EINTR:
                raise


def main() -> None:
    if len(sys.argv) != 2:
        raise SystemExit("usage: tuoguan-worker <service>   (registration, billing, ...)")
    module = importlib.import_module(f"{sys.argv[1]}.worker")
    module.main()


if __name__ == "__main__":
    main()
