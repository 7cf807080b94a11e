"""Two registration api processes share one port (as the bench and a
one-machine deployment run them): connections spread over both, each serves
holds and its own /metrics, and holds through both never overbook."""
from __future__ import annotations

import re
import threading
import urllib.request
import uuid

import grpc
import pytest
from tuoguan.registration.v1 import registration_pb2 as pb
from tuoguan.registration.v1 import registration_pb2_grpc as pb_grpc
from tuoguan_common import auth
from tuoguan_common.launcher import Platform

pytestmark = pytest.mark.integration


def handled(metrics_port: int, method: str) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read().decode()
    pattern = re.compile(r'^tuoguan_grpc_server_handled_total\{(.*)\} (\S+)$')
    total = 0.0
    for line in text.splitlines():
        match = pattern.match(line)
        if match and f'method="{method}"' in match.group(1):
            total += float(match.group(2))
    return total


def test_two_registration_api_processes_share_the_port_and_the_holds(infra, tmp_path):
    plat = Platform(work_dir=tmp_path, database_url=infra["database_url"], amqp_uri=infra["amqp_uri"],
                    redis_url=infra["redis_url"], db_prefix=f"replicas_{uuid.uuid4().hex[:6]}",
                    extra_env={"LOG_LEVEL": "WARNING",
                               # What is under test is the count across replicas, not admission:
                               # on a slow machine 12 holds at once can wait past its 50 ms target.
                               "REGISTRATION_HOLD_LATENCY_TARGET_MS": "0"},
                    api_replicas={"registration": 2})
    plat.start(with_gateway=False)
    try:
        plat.seed()
        assert {"registration-api", "registration-api-2"} <= set(plat.procs)
        issuer = auth.TokenIssuer(plat.private_key.read_bytes())
        office = auth.bearer_metadata(issuer.issue(str(uuid.uuid4()), [auth.REGISTRATION_OFFICE]))
        channels = [grpc.insecure_channel(plat.address("registration"),
                                          options=[("grpc.use_local_subchannel_pool", 1)]) for _ in range(12)]
        stubs = [pb_grpc.RegistrationServiceStub(c) for c in channels]
        stubs[0].PublishSchedule(pb.PublishScheduleRequest(days_ahead=3, release_now=True), metadata=office)
        department = stubs[0].ListDepartments(pb.ListDepartmentsRequest()).departments[0]
        slot = next(s for s in stubs[0].ListSlots(pb.ListSlotsRequest(
            department_id=department.department_id, only_available=True)).slots)

        # Every connection asks for the same slot at once: exactly its capacity wins, whichever process answers.
        start = threading.Barrier(len(stubs) * 4)
        outcomes: list[str] = []

        def attempt(stub):
            patient = auth.bearer_metadata(issuer.issue(str(uuid.uuid4()), [auth.PATIENT]))
            start.wait()
            try:
                stub.HoldSlot(pb.HoldSlotRequest(slot_id=slot.slot_id, idempotency_key=str(uuid.uuid4())),
                              metadata=patient, timeout=30)
                outcomes.append("held")
            except grpc.RpcError as exc:
                outcomes.append(exc.code().name)

        threads = [threading.Thread(target=attempt, args=(stub,)) for stub in stubs * 4]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert outcomes.count("held") == min(slot.remaining, len(threads))
        assert set(outcomes) <= {"held", "FAILED_PRECONDITION"}

        # Both processes answered some of those connections, each on its own /metrics port.
        first = handled(plat.ports["registration_metrics"], "HoldSlot")
        second = handled(plat.ports["registration_metrics_2"], "HoldSlot")
        assert first > 0 and second > 0
        assert first + second == len(threads)
        for channel in channels:
            channel.close()
    finally:
        plat.stop()
