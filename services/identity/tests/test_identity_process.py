"""The real entrypoints as processes: ``python -m identity.seed`` (which
migrates first) and ``python -m identity.api``."""
from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator

import grpc
import psycopg
import pytest

from tuoguan.identity.v1 import identity_pb2 as pb
from tuoguan.identity.v1 import identity_pb2_grpc
from tuoguan_common.db import drop_database
from tuoguan_common.testing import free_port, unique_database_url, wait_for

pytestmark = pytest.mark.integration


@contextlib.contextmanager
def seeded_api(infra, token_keys, processes, **settings: str) -> Iterator[dict[str, str]]:
    """``python -m identity.api`` with ``settings`` on a fresh database that
    ``python -m identity.seed`` filled, on free ports; its environment while it
    runs. Stopped, and the database dropped, afterwards."""
    env = {
        "IDENTITY_DATABASE_URL": unique_database_url(infra, "identity"),
        "TUOGUAN_TOKEN_PRIVATE_KEY_FILE": token_keys["private"],
        "TUOGUAN_TOKEN_PUBLIC_KEY_FILE": token_keys["public"],
        "IDENTITY_GRPC_PORT": str(free_port()),
        "IDENTITY_METRICS_PORT": str(free_port()),
        **settings,
    }
    try:
        subprocess.run([sys.executable, "-m", "identity.seed"], env={**os.environ, **env}, check=True, timeout=120,
                       capture_output=True)
        processes.start("identity-api", [sys.executable, "-m", "identity.api"], env,
                        ready_port=int(env["IDENTITY_GRPC_PORT"]))
        yield env
    finally:
        processes.stop_all()
        drop_database(env["IDENTITY_DATABASE_URL"])


def test_seeded_api_process_signs_in_demo_staff(infra, token_keys, verifier, processes):
    with seeded_api(infra, token_keys, processes, IDENTITY_RESET_CODES_TO_LOG="true") as env:
        grpc_port, metrics_port = int(env["IDENTITY_GRPC_PORT"]), int(env["IDENTITY_METRICS_PORT"])
        with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            reply = identity_pb2_grpc.IdentityServiceStub(channel).SignIn(
                pb.SignInRequest(login="office", password="Office1234"), timeout=10)
        assert verifier.verify(reply.access_token).roles == {"registration_office"}
        exposition = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read().decode()
        assert 'tuoguan_identity_sign_ins_total{outcome="ok"} 1.0' in exposition
        # Logins (phone numbers, for patients) and passwords never reach the log.
        log = processes.log("identity-api")
        assert "sign-in" in log and "office" not in log and "Office1234" not in log
        # The seed graded the demo engineers: their tokens carry the grade that prices their worklogs.
        with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            engineer = identity_pb2_grpc.IdentityServiceStub(channel).SignIn(
                pb.SignInRequest(login="engineer", password="Engineer1234"), timeout=10)
        assert verifier.verify(engineer.access_token).grade == "senior"


def test_the_development_notifier_logs_the_code_with_the_phone_masked(infra, token_keys, processes):
    """``python -m identity.api`` wires the development adapter: a reset code
    is one log line with the phone number masked, never the full number."""
    phone, masked = "13800000001", "138****0001"
    with seeded_api(infra, token_keys, processes, IDENTITY_RESET_CODE_MINUTES="3",
                    IDENTITY_RESET_CODES_TO_LOG="true") as env:
        grpc_port = int(env["IDENTITY_GRPC_PORT"])
        with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            stub = identity_pb2_grpc.IdentityServiceStub(channel)
            asked = dt.datetime.now(dt.timezone.utc)
            reply = stub.RequestPasswordReset(pb.RequestPasswordResetRequest(phone=phone), timeout=10)
            expires = dt.datetime.fromisoformat(reply.expires_at.replace("Z", "+00:00"))
            assert dt.timedelta(minutes=2) < expires - asked <= dt.timedelta(minutes=3, seconds=5)
            stub.RequestPasswordReset(pb.RequestPasswordResetRequest(phone="13700000009"), timeout=10)
            log = processes.log("identity-api")
            lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
            # Chosen because IDENTITY_SMS_URL is unset, and said so at start-up.
            [warning] = [line for line in lines if "written to this log" in line["msg"]]
            assert warning["level"] == "warning" and "IDENTITY_SMS_URL" in warning["msg"]
            [sent] = [line for line in lines if line["msg"] == "password reset code"]
            assert sent["phone_masked"] == masked and len(sent["code"]) == 6 and sent["code"].isdigit()
            stub.ResetPassword(pb.ResetPasswordRequest(phone=phone, code=sent["code"], new_password="Renewed2027",
                                                      idempotency_key="process-test-reset"),
                               timeout=10)
            assert stub.SignIn(pb.SignInRequest(login=phone, password="Renewed2027"), timeout=10).access_token
        log = processes.log("identity-api")
        assert masked in log
        for secret in (phone, "13700000009", "Renewed2027"):
            assert secret not in log


def test_with_a_gateway_set_the_api_process_texts_the_code_and_logs_none(infra, token_keys, processes,
                                                                        sms_gateway):
    """``python -m identity.api`` with IDENTITY_SMS_URL: the code goes to the
    SMS gateway (the stand-in), never to the log."""
    phone = "13800000001"
    with seeded_api(infra, token_keys, processes, IDENTITY_SMS_URL=sms_gateway.url,
                    IDENTITY_SMS_API_KEY="sk-process-test", IDENTITY_SMS_SIGN_NAME="肿瘤医院") as env:
        grpc_port, metrics_port = int(env["IDENTITY_GRPC_PORT"]), int(env["IDENTITY_METRICS_PORT"])
        with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            stub = identity_pb2_grpc.IdentityServiceStub(channel)
            stub.RequestPasswordReset(pb.RequestPasswordResetRequest(phone=phone), timeout=10)
            [message] = sms_gateway.received
            assert message["headers"]["authorization"] == "Bearer sk-process-test"
            assert message["body"]["sign_name"] == "肿瘤医院" and message["body"]["phone"] == phone
            code = message["body"]["params"]["code"]
            stub.ResetPassword(pb.ResetPasswordRequest(phone=phone, code=code, new_password="Renewed2027",
                                                      idempotency_key="process-test-sms-reset"), timeout=10)
            assert stub.SignIn(pb.SignInRequest(login=phone, password="Renewed2027"), timeout=10).access_token
        exposition = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read().decode()
        assert 'tuoguan_identity_sms_sends_total{outcome="sent",template="password_reset"} 1.0' in exposition
        assert 'tuoguan_identity_sms_sends_total{outcome="timeout",template="password_reset"} 0.0' in exposition
        assert 'tuoguan_identity_sms_sends_total{outcome="sent",template="sign_up"} 0.0' in exposition
        log = processes.log("identity-api")
        lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
        assert [line["msg"] for line in lines if line["msg"].startswith("password reset code")] == \
            ["password reset code sent by SMS", "password reset code issued"]
        assert [line["msg"] for line in lines if "go by SMS" in line["msg"]] == \
            ["password reset and sign-up codes go by SMS"]
        assert "written to this log" not in log and "138****0001" in log
        for secret in (code, phone, "sk-process-test", "Renewed2027"):
            assert secret not in log


def test_the_api_process_purges_idempotency_keys_past_their_retention(infra, token_keys, processes):
    """Identity has no worker: ``python -m identity.api`` purges its own
    database every TUOGUAN_RETENTION_INTERVAL_SECONDS, in a thread, and stops
    with the api."""
    with seeded_api(infra, token_keys, processes, IDENTITY_RESET_CODES_TO_LOG="true",
                    TUOGUAN_RETENTION_INTERVAL_SECONDS="0.3") as env:
        with psycopg.connect(env["IDENTITY_DATABASE_URL"], autocommit=True) as conn:
            conn.execute("INSERT INTO idempotency_keys (scope, owner, key, request_hash, created_at) VALUES "
                         "('SignUpPatient', 'sign-up', 'old', 'h', now() - interval '8 days'), "
                         "('SignUpPatient', 'sign-up', 'new', 'h', now() - interval '6 days')")
            wait_for(lambda: conn.execute("SELECT array_agg(key) FROM idempotency_keys").fetchone()[0] == ["new"],
                     message="the week-old key purged")
        exposition = urllib.request.urlopen(f"http://127.0.0.1:{env['IDENTITY_METRICS_PORT']}/metrics",
                                            timeout=5).read().decode()
        assert ('tuoguan_retention_deleted_rows_total{service="identity",table="idempotency_keys"} 1.0'
                in exposition)
        assert 'tuoguan_timer_runs_total{outcome="error",service="identity",timer="purge_retention"} 0.0' \
            in exposition
        assert '"msg": "retention purge"' in processes.log("identity-api")
