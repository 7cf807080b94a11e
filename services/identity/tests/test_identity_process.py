"""The real entrypoints as processes: ``python -m identity.seed`` (which
migrates first) and ``python -m identity.api``."""
from __future__ import annotations

import os
import subprocess
import sys
import urllib.request

import grpc
import pytest

from tuoguan.identity.v1 import identity_pb2 as pb
from tuoguan.identity.v1 import identity_pb2_grpc
from tuoguan_common.db import drop_database
from tuoguan_common.testing import free_port, unique_database_url

pytestmark = pytest.mark.integration


def test_seeded_api_process_signs_in_demo_staff(infra, token_keys, verifier, processes):
    grpc_port, metrics_port = free_port(), free_port()
    env = {
        "IDENTITY_DATABASE_URL": unique_database_url(infra, "identity"),
        "TUOGUAN_TOKEN_PRIVATE_KEY_FILE": token_keys["private"],
        "TUOGUAN_TOKEN_PUBLIC_KEY_FILE": token_keys["public"],
        "IDENTITY_GRPC_PORT": str(grpc_port),
        "IDENTITY_METRICS_PORT": str(metrics_port),
    }
    try:
        subprocess.run([sys.executable, "-m", "identity.seed"], env={**os.environ, **env}, check=True, timeout=120,
                       capture_output=True)
        processes.start("identity-api", [sys.executable, "-m", "identity.api"], env, ready_port=grpc_port)
        with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            reply = identity_pb2_grpc.IdentityServiceStub(channel).SignIn(
                pb.SignInRequest(login="office", password="Office1234"), timeout=10)
        assert verifier.verify(reply.access_token).roles == {"registration_office"}
        exposition = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read().decode()
        assert 'tuoguan_identity_sign_ins_total{outcome="ok"} 1.0' in exposition
        # Logins (phone numbers, for patients) and passwords never reach the log.
        log = processes.log("identity-api")
        assert "sign-in" in log and "office" not in log and "Office1234" not in log
    finally:
        processes.stop_all()
        drop_database(env["IDENTITY_DATABASE_URL"])
