"""The gateway's memory of identity's hourly-limit refusal (pure: a still clock, errors made here)."""
from __future__ import annotations

import grpc
import pytest

from gateway.send_guard import HourlyTexts
from tuoguan_common.grpc_server import REASON_KEY, RETRY_AFTER_KEY


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def refused(reason: str, retry_after: str | None = "1800") -> grpc.aio.AioRpcError:
    trailing = [(REASON_KEY, reason)] + ([(RETRY_AFTER_KEY, retry_after)] if retry_after is not None else [])
    return grpc.aio.AioRpcError(grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata(*trailing),
                                "no more codes this hour: try again in 30 minutes")


def trailer(error: grpc.aio.AioRpcError, key: str) -> list[str]:
    return [value for k, value in error.trailing_metadata() if k == key]


@pytest.fixture
def clock() -> Clock:
    return Clock()


def test_nothing_learned_asks_identity(clock):
    assert HourlyTexts(60, clock).refusal() is None


def test_repeats_identitys_refusal_with_the_rest_of_its_hour(clock):
    texts = HourlyTexts(60, clock)
    texts.learn(refused("sms_hourly_limit_reached"))
    clock.now += 10.5
    again = texts.refusal()
    assert again.code() == grpc.StatusCode.UNAVAILABLE and "minutes" not in again.details()
    assert trailer(again, REASON_KEY) == ["sms_hourly_limit_reached"]
    assert trailer(again, RETRY_AFTER_KEY) == ["1790"], "rounded up, one value"


def test_asks_identity_again_once_the_recheck_is_due(clock):
    texts = HourlyTexts(60, clock)
    texts.learn(refused("sms_hourly_limit_reached"))
    clock.now += 59.9
    assert texts.refusal() is not None
    clock.now += 0.1
    assert texts.refusal() is None


def test_never_past_the_end_of_identitys_hour(clock):
    texts = HourlyTexts(60, clock)
    texts.learn(refused("sms_hourly_limit_reached", "20"))
    clock.now += 19.5
    assert trailer(texts.refusal(), RETRY_AFTER_KEY) == ["1"]
    clock.now += 0.5
    assert texts.refusal() is None


@pytest.mark.parametrize("error", [
    refused("reset_too_soon"),
    refused("sms_hourly_limit_reached", None),
    refused("sms_hourly_limit_reached", "soon"),
    ValueError("not a refusal of identity's"),
])
def test_other_refusals_teach_nothing(clock, error):
    texts = HourlyTexts(60, clock)
    texts.learn(error)
    assert texts.refusal() is None


def test_a_recheck_of_0_always_asks_identity(clock):
    texts = HourlyTexts(0, clock)
    texts.learn(refused("sms_hourly_limit_reached"))
    assert texts.refusal() is None
