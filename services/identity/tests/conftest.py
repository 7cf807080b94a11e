from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
import pytest

from identity.api import register
from identity_testkit import Clock, RecordingNotifier
from identity.migrate import MIGRATIONS_DIR
from tuoguan.identity.v1 import identity_pb2_grpc
from tuoguan_common.config import Settings
from tuoguan_common.grpc_server import build_server


@pytest.fixture
def identity_db(make_database):
    return make_database("identity", MIGRATIONS_DIR)


@pytest.fixture
def serve_identity(identity_db, issuer, verifier):
    """Starts the real identity api in-process on a free port, on the test's fresh database:
    ``serve_identity(verifier=..., notifier=..., config=..., clock=...)`` answers a stub; the
    keywords but ``verifier`` go to ``identity.api.register``. Without a notifier, codes are
    recorded (``RecordingNotifier``), and ``stub.notifier`` is the api's. Stopped after the test."""
    settings = Settings.from_env("identity", grpc_port=0, metrics_port=0)
    started = []

    def serve(verifier=verifier, **options):
        options.setdefault("notifier", RecordingNotifier())
        server, port = build_server(
            service="identity", register=lambda srv: register(srv, settings, identity_db, issuer=issuer, **options),
            verifier=verifier, port=0, host="127.0.0.1",
        )
        server.start()
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        started.append((server, channel))
        stub = identity_pb2_grpc.IdentityServiceStub(channel)
        stub.notifier = options["notifier"]
        return stub

    yield serve
    for server, channel in started:
        channel.close()
        server.stop(0)


@pytest.fixture
def clock():
    """Identity's clock, still unless the test moves it (a retry "at once" really is at once)."""
    return Clock()


@pytest.fixture
def notifier():
    """The reset codes identity sends, recorded instead of texted."""
    return RecordingNotifier()


@pytest.fixture
def identity(serve_identity):
    """A stub of the real identity api, in-process on a free port, on a fresh database."""
    return serve_identity()


class SmsGateway:
    """A stand-in for the SMS provider's HTTP gateway (an external provider,
    like the sandbox payment provider): a threaded ``http.server`` on a free
    local port that records every request it receives. ``fail`` makes it
    answer 500, redirect, hang past the client's timeout or go down; ``recover``
    brings it back as it was, on the same port."""

    PATH = "/v1/sms/messages"

    def __init__(self):
        self.received: list[dict] = []
        self.status = 200
        self.delay = 0.0
        # Templates the provider refuses (400), as one not approved yet is.
        self.refused_templates: set[str] = set()
        self.port = 0
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.PATH}"

    def start(self) -> SmsGateway:
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                gateway.received.append({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()},
                                         "body": json.loads(body)})
                time.sleep(gateway.delay)
                status = 400 if json.loads(body)["template"] in gateway.refused_templates else gateway.status
                self.send_response(status)
                if 300 <= gateway.status < 400:
                    self.send_header("Location", f"http://127.0.0.1:{gateway.port}/elsewhere")
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"accepted": true}' if status < 300 else b'{"error": "no"}')

            def log_message(self, *args):
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address):
                pass  # a client that gave up (the timeout case) closed its end

        self._server = Server(("127.0.0.1", self.port), Handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def fail(self, how: str) -> None:
        if how == "down":
            self.stop()
        elif how == "error":
            self.status = 500
        elif how == "redirect":
            self.status = 307
        elif how == "timeout":
            self.delay = 2.0
        else:
            raise ValueError(how)

    def recover(self) -> None:
        self.status, self.delay = 200, 0.0
        self.refused_templates.clear()
        if self._server is None:
            self.start()

    def codes(self, phone: str) -> list[str]:
        return [m["body"]["params"]["code"] for m in self.received if m["body"]["phone"] == phone]


@pytest.fixture
def sms_gateway():
    gateway = SmsGateway().start()
    yield gateway
    gateway.stop()
