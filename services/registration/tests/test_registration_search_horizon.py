"""A booking horizon longer than one search may cover: the search without a
to_date still answers (it was INVALID_ARGUMENT on to_date, a field the caller
never gave)."""
from __future__ import annotations

import datetime as dt

import pytest
from registration.api import MAX_SEARCH_DAYS
from registration.config import RegistrationConfig
from registration.domain.policy import ReleasePolicy
from registration_testkit import SHANGHAI
from tuoguan.registration.v1 import registration_pb2 as pb
from tuoguan_common.outbox import utcnow

pytestmark = pytest.mark.integration

HORIZON = 60


@pytest.fixture
def config() -> RegistrationConfig:
    return RegistrationConfig(release=ReleasePolicy(days_ahead=HORIZON), hold_latency_target=0)


def test_a_search_without_to_date_covers_what_one_search_may_when_the_horizon_is_longer(stub, clinic):
    today = SHANGHAI.local_date(utcnow())
    near = today + dt.timedelta(days=3)
    far = today + dt.timedelta(days=MAX_SEARCH_DAYS + 5)
    clinic.slot(clinic.chen, SHANGHAI.local_moment(near, dt.time(9)))
    clinic.slot(clinic.chen, SHANGHAI.local_moment(far, dt.time(9)))
    listed = stub.ListSlots(pb.ListSlotsRequest(doctor_id=clinic.chen)).slots
    assert [s.service_date for s in listed] == [near.isoformat()]
    # From a later day, the same: the search's span, not the horizon.
    later = stub.ListSlots(pb.ListSlotsRequest(doctor_id=clinic.chen, from_date=(far - dt.timedelta(days=1))
                                               .isoformat())).slots
    assert [s.service_date for s in later] == [far.isoformat()]
