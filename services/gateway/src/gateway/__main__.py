"""``python -m gateway``: the HTTP gateway on GATEWAY_HOST:GATEWAY_PORT (default
127.0.0.1:8000: this machine only; containers set GATEWAY_HOST=0.0.0.0)."""
from __future__ import annotations

import os

from tuoguan_common.config import PORTS, Settings, listen_host
from tuoguan_common.logs import setup_logging
from tuoguan_common.telemetry import setup_tracing

from .app import create_app, server
from .limits import ServerLimits


def main() -> None:
    # The gateway serves no gRPC; Settings gives it the platform's log and trace settings.
    settings = Settings.from_env("gateway", grpc_port=0, metrics_port=0)
    setup_logging("gateway", settings.log_level)
    setup_tracing("gateway", otlp_endpoint=settings.otlp_endpoint, trace_file=settings.trace_file)
    host = listen_host("GATEWAY_HOST")
    port = int(os.environ.get("GATEWAY_PORT") or PORTS["gateway"]["http"])
    trusted_proxies = os.environ.get("GATEWAY_TRUSTED_PROXIES") or "127.0.0.1"
    limits = ServerLimits.from_env()
    server(create_app(limits=limits), host=host, port=port, trusted_proxies=trusted_proxies,
           limits=limits).run()


if __name__ == "__main__":
    main()
