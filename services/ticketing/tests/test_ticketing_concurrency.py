"""Many callers at once on a small connection pool: nothing in a call may need
a second connection while it holds one (the calendar is read through the
call's own transaction), or a busy api deadlocks until every call times out."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
from ticketing.api import register
from ticketing.config import TicketingConfig
from ticketing.seed import seed
from ticketing_testkit import ALWAYS, open_request
from tuoguan.ticketing.v1 import ticketing_pb2_grpc as pb_grpc
from tuoguan_common.db import Database
from tuoguan_common.grpc_server import build_server
from tuoguan_common.testing import free_port

pytestmark = pytest.mark.integration


def test_more_callers_than_connections_all_get_their_ticket(database, verifier, people):
    seed(database)
    small = Database(database.url, max_size=2, name="ticketing-small-pool").open()
    server, port = build_server(
        service="ticketing", register=lambda srv: register(srv, None, small, TicketingConfig()),
        verifier=verifier, port=free_port(), host="127.0.0.1", workers=12)
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        stub = pb_grpc.TicketingServiceStub(channel)
        clinician = people.clinician()
        with ThreadPoolExecutor(12) as pool:
            tickets = list(pool.map(lambda i: stub.OpenTicket(open_request(ALWAYS, title=f"#{i}"),
                                                              metadata=clinician.md, timeout=10).ticket, range(24)))
        assert len({t.ticket_id for t in tickets}) == 24
    finally:
        channel.close()
        server.stop(0).wait()
        small.close()
