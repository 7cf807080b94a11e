"""Bad input is INVALID_ARGUMENT naming the field, and writes nothing: never
INTERNAL (which says nothing useful to the caller, and logs a traceback)."""
from __future__ import annotations

import grpc
import pytest
from ticketing_testkit import refused
from tuoguan.ticketing.v1 import ticketing_pb2 as pb

pytestmark = pytest.mark.integration


def test_an_unknown_list_view_is_refused_naming_the_field(stub, people):
    dispatcher = people.dispatcher()
    r = refused(stub.ListTickets, pb.ListTicketsRequest(view=99), metadata=dispatcher.md)
    assert (r.code, r.field) == (grpc.StatusCode.INVALID_ARGUMENT, "view")

