"""Text-message codes counted per client address (the real identity, the real
Redis), against SMS pumping: an address gets its number of codes and then 429,
also when it asks for them all at once; requests identity refuses before any
text do not use up its allowance (those that fail or are cancelled, which may
have made a phone ring, do); other addresses, private ones
and the failed sign-ins' count are apart; without Redis codes go on; the
portal says why and for how long."""
from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import re
import time

import httpx
import pytest
import redis
from gateway_testkit import CODES, REDIS_URL, SESSION_SECRET, error, fresh_phone, serve
from prometheus_client import REGISTRY

from gateway.app import create_app
from gateway.portal.settings import PortalSettings
from gateway.send_guard import SendGuard, SendGuardSettings
from gateway.sign_in_guard import SignInGuardSettings
from identity.api import register as register_identity
from identity.config import IdentityConfig
from identity.domain.text_budget import TextBudget
from tuoguan_common.config import Settings
from tuoguan_common.grpc_server import build_server

pytestmark = pytest.mark.integration

RESET = "/api/v1/auth/password-reset"
# Public addresses (two carriers' networks): private and loopback ones are not counted.
PUMPER, NEIGHBOUR = "36.110.5.7", "117.136.1.2"
PATIENT_LOGIN, PATIENT_PASSWORD = "13800000001", "Patient1234"


def send_guard(namespace: str, **settings) -> SendGuardSettings:
    return SendGuardSettings(**{"max_sends": 3, "window_seconds": 60, "redis_url": REDIS_URL,
                                "namespace": f"{namespace}:sms-codes", **settings})


def ask_code(http: httpx.Client, phone: str, address: str | None) -> httpx.Response:
    headers = {"X-Forwarded-For": address} if address else {}
    return http.post(RESET, json={"phone": phone}, headers=headers)


def ask_codes(http: httpx.Client, address: str | None, times: int) -> None:
    """A code for each of ``times`` numbers no one asked a code for yet: identity's per-phone limits never see two."""
    for _ in range(times):
        reply = ask_code(http, fresh_phone(), address)
        assert reply.status_code == 202, reply.text


def stored_keys(namespace: str, what: str = "sms-codes") -> list[str]:
    stored = redis.Redis.from_url(REDIS_URL, socket_timeout=2)
    try:
        return [key.decode() for key in stored.scan_iter(match=f"{namespace}:{what}:*")]
    finally:
        stored.close()


def stored_counts(namespace: str) -> list[int]:
    stored = redis.Redis.from_url(REDIS_URL, socket_timeout=2)
    try:
        return [int(stored.get(key)) for key in stored_keys(namespace)]
    finally:
        stored.close()


def guard_count(outcome: str) -> float:
    return REGISTRY.get_sample_value("tuoguan_gateway_send_guard_total", {"outcome": outcome}) or 0.0


def test_an_address_gets_its_codes_then_is_refused_and_its_neighbours_are_not(own_gateway, namespace):
    with httpx.Client(base_url=own_gateway(send_guard=send_guard(namespace)), timeout=20) as http:
        # Served at 0 from the start, like the sign-in guard's outcomes.
        assert 'tuoguan_gateway_send_guard_total{outcome="refused"}' in http.get("/metrics").text
        counted, refused_before = guard_count("counted"), guard_count("refused")
        ask_codes(http, PUMPER, times=3)
        assert guard_count("counted") == counted + 3
        refused = ask_code(http, fresh_phone(), PUMPER)
        assert error(refused)[:2] == (429, "too_many_codes_from_address")
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
        assert "try again in 1 minute" in refused.json()["error"]["message"]
        assert guard_count("refused") == refused_before + 1
        # Another address, and the right-most untrusted one of a chain, are their own.
        ask_codes(http, NEIGHBOUR, times=1)
        ask_codes(http, f"{PUMPER}, {NEIGHBOUR}", times=1)
        assert error(ask_code(http, fresh_phone(), f"{NEIGHBOUR}, {PUMPER}"))[:2] == (
            429, "too_many_codes_from_address")
        # The failed sign-ins' count is another: signing in from the address goes on.
        assert http.post("/api/v1/auth/signin", json={"login": PATIENT_LOGIN, "password": PATIENT_PASSWORD},
                         headers={"X-Forwarded-For": PUMPER}).status_code == 200

    assert sorted(stored_counts(namespace)) == [2, 3]
    keys = stored_keys(namespace)
    assert not any(PUMPER in key or NEIGHBOUR in key for key in keys), "a keyed hash of the address, never itself"
    assert stored_keys(namespace, "sign-in-failures") == []
    stored = redis.Redis.from_url(REDIS_URL, socket_timeout=2)
    try:
        assert all(0 < stored.ttl(key) <= 60 for key in keys)
    finally:
        stored.close()


def test_requests_identity_refuses_do_not_use_up_the_allowance(own_gateway, namespace):
    with httpx.Client(base_url=own_gateway(send_guard=send_guard(namespace)), timeout=20) as http:
        phone = fresh_phone()
        assert ask_code(http, phone, PUMPER).status_code == 202
        # Too soon for this number: no code went out, the place is given back.
        for _ in range(5):
            assert error(ask_code(http, phone, PUMPER))[:2] == (429, "reset_too_soon")
        # Not a number at all.
        for _ in range(3):
            assert error(ask_code(http, "12345", PUMPER))[:2] == (422, "phone_format", "phone")[:2]
        assert stored_counts(namespace) == [1]
        ask_codes(http, PUMPER, times=2)
        assert error(ask_code(http, fresh_phone(), PUMPER))[:2] == (429, "too_many_codes_from_address")
    assert stored_counts(namespace) == [3]


async def _ask_at_once(url: str, address: str, requests: int) -> list[tuple[int, str]]:
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=httpx.Limits(max_connections=requests)) as http:
        replies = await asyncio.gather(*(
            http.post(RESET, json={"phone": fresh_phone()}, headers={"X-Forwarded-For": address})
            for _ in range(requests)))
    return [(reply.status_code, reply.json().get("error", {}).get("reason", "")) for reply in replies]


def test_codes_asked_for_all_at_once_reach_identity_at_most_the_limit(own_gateway, namespace):
    # Each request takes its place in the count before identity is asked:
    # reading the count, asking, then adding let every request of a burst through.
    url = own_gateway(send_guard=send_guard(namespace, max_sends=5))
    answers = asyncio.run(_ask_at_once(url, PUMPER, requests=40))
    # Identity itself turns some of a burst away (its send slots: sms_unavailable), which keep their places:
    # a send that failed may yet have gone out.
    assert set(answers) <= {(202, ""), (429, "too_many_codes_from_address"), (503, "sms_unavailable")}, answers
    accepted = answers.count((202, "")) + answers.count((503, "sms_unavailable"))
    assert 1 <= accepted <= 5 and answers.count((429, "too_many_codes_from_address")) == 40 - accepted, answers
    assert stored_counts(namespace) == [accepted]
    # What is left of the allowance, one at a time, and not one more.
    with httpx.Client(base_url=url, timeout=20) as http:
        ask_codes(http, PUMPER, times=5 - accepted)
        assert error(ask_code(http, fresh_phone(), PUMPER))[:2] == (429, "too_many_codes_from_address")
    assert stored_counts(namespace) == [5]


@pytest.mark.parametrize("address", ["10.20.0.7", "192.168.1.20", "fd00::7", "::ffff:10.20.0.7", "127.0.0.1"])
def test_a_private_address_is_not_counted_and_that_is_seen(own_gateway, namespace, address):
    with httpx.Client(base_url=own_gateway(send_guard=send_guard(namespace, max_sends=1)), timeout=20) as http:
        not_counted = guard_count("not_counted")
        ask_codes(http, address, times=3)
        assert guard_count("not_counted") == not_counted + 3
    assert stored_keys(namespace) == []


def test_without_redis_codes_go_on(own_gateway, namespace):
    down = send_guard(namespace, max_sends=1, redis_url="redis://127.0.0.1:1/0")
    with httpx.Client(base_url=own_gateway(send_guard=down), timeout=20) as http:
        unavailable = guard_count("unavailable")
        ask_codes(http, PUMPER, times=3)
        assert guard_count("unavailable") >= unavailable + 3


def test_switched_off_nothing_is_counted(own_gateway, namespace):
    with httpx.Client(base_url=own_gateway(send_guard=send_guard(namespace, max_sends=0)), timeout=20) as http:
        ask_codes(http, PUMPER, times=4)
    assert stored_keys(namespace) == []


def test_a_request_that_fails_or_is_cancelled_keeps_its_place(namespace):
    """Identity may have been sending when the call broke or the client went: the text may arrive."""
    async def scenario() -> None:
        guard = SendGuard(send_guard(namespace), "a-secret")
        asked = asyncio.Event()

        async def hangs() -> None:
            asked.set()
            await asyncio.Event().wait()

        async def breaks() -> None:
            raise RuntimeError("identity is not there")

        async def sends() -> str:
            return "sent"

        try:
            sending = asyncio.create_task(guard.attempt(PUMPER, hangs))
            await asked.wait()
            assert stored_counts(namespace) == [1], "the place is taken before identity is asked"
            sending.cancel()
            with pytest.raises(asyncio.CancelledError):
                await sending
            assert stored_counts(namespace) == [1]
            with pytest.raises(RuntimeError):
                await guard.attempt(PUMPER, breaks)
            assert stored_counts(namespace) == [2]
            assert await guard.attempt(PUMPER, sends) == "sent"
            assert stored_counts(namespace) == [3]
        finally:
            await guard.close()

    asyncio.run(scenario())


def test_the_portal_tells_the_patient_why_and_for_how_long(own_gateway, namespace):
    url = own_gateway(send_guard=send_guard(namespace, max_sends=1))
    with httpx.Client(base_url=url, timeout=20, headers={"X-Forwarded-For": PUMPER}) as browser:
        def ask(phone: str) -> httpx.Response:
            token = re.search(r'name="csrf" value="([^"]+)"', browser.get("/reset").text).group(1)
            return browser.post("/reset", data={"phone": phone, "csrf": token})

        assert ask(fresh_phone()).status_code == 200
        phone = fresh_phone()
        page = ask(phone)
        assert page.status_code == 429 and 1 <= int(page.headers["Retry-After"]) <= 60
        assert "您所在网络请求的验证码过多，请 1 分钟后再试。" in page.text, page.text[-1500:]
        assert f'value="{phone}"' in page.text, "the form again, with the number"


def test_sign_up_codes_count_in_the_same_allowance_through_the_api_and_the_portal(own_gateway, namespace):
    """Sign-up codes go to any number: the route most worth pumping."""
    url = own_gateway(send_guard=send_guard(namespace, max_sends=3))
    with httpx.Client(base_url=url, timeout=20, headers={"X-Forwarded-For": PUMPER}) as http:
        assert http.post("/api/v1/auth/signup/code", json={"phone": fresh_phone()}).status_code == 202
        token = re.search(r'name="csrf" value="([^"]+)"', http.get("/signup").text).group(1)
        assert http.post("/signup/code", data={"phone": fresh_phone(), "next": "/", "csrf": token}).status_code == 200
        assert ask_code(http, fresh_phone(), None).status_code == 202
        refused = http.post("/api/v1/auth/signup/code", json={"phone": fresh_phone()})
        assert error(refused)[:2] == (429, "too_many_codes_from_address") and int(refused.headers["Retry-After"]) > 0
        page = http.post("/signup/code", data={"phone": fresh_phone(), "next": "/", "csrf": token})
        assert page.status_code == 429 and "您所在网络请求的验证码过多" in page.text
    assert stored_counts(namespace) == [3]


@pytest.fixture
def identity_with_one_text_an_hour(grpc_servers, identity_database, issuer, verifier):
    """The real identity, allowed one text per clock hour, at a still clock of an hour
    nobody else texts in (the texts' count is in the database the gateway's identity shares)."""
    settings = Settings.from_env("identity", grpc_port=0, metrics_port=0)
    at = dt.datetime(2031, 3, 3, 10, 0, tzinfo=dt.timezone.utc)
    srv, port = build_server(
        service="identity", verifier=verifier, port=0, host="127.0.0.1",
        register=lambda s: register_identity(s, settings, identity_database, issuer=issuer, notifier=CODES,
                                             config=IdentityConfig(texts=TextBudget(per_hour=1)), clock=lambda: at))
    srv.start()
    yield dataclasses.replace(grpc_servers, identity=f"127.0.0.1:{port}")
    srv.stop(0)


def hourly_limit_refusals() -> float:
    return REGISTRY.get_sample_value("tuoguan_identity_sms_hourly_limit_refusals_total") or 0.0


def test_past_the_platforms_texts_for_the_hour_every_number_is_refused_and_keeps_no_place(
        identity_with_one_text_an_hour, namespace):
    settings = send_guard(namespace)
    app = create_app(identity_with_one_text_an_hour, PortalSettings(session_secret=SESSION_SECRET,
                                                                    waiting_room_namespace=namespace,
                                                                    redis_url=REDIS_URL),
                     SignInGuardSettings(redis_url=REDIS_URL, namespace=f"{namespace}:sign-in-failures"), settings)
    identity_refusals, repeated = hourly_limit_refusals(), guard_count("hourly_limit")
    with serve(app) as url, httpx.Client(base_url=url, timeout=20, headers={"X-Forwarded-For": PUMPER}) as http:
        assert http.post("/api/v1/auth/signup/code", json={"phone": fresh_phone()}).status_code == 202
        for route in ("/api/v1/auth/signup/code", RESET, RESET):
            refused = http.post(route, json={"phone": fresh_phone()})
            assert error(refused) == (503, "sms_hourly_limit_reached", None)
            assert refused.headers["Retry-After"] == "3600", "the rest of identity's clock hour"
        # Identity refused the first; the gateway repeated its refusal to the others without asking it.
        assert hourly_limit_refusals() - identity_refusals == 1
        assert guard_count("hourly_limit") - repeated == 2
        # No text went out for them: the address keeps the one place it used.
        assert stored_counts(namespace) == [1]
        token = re.search(r'name="csrf" value="([^"]+)"', http.get("/signup", headers={"Accept-Language": "zh-CN"})
                          .text).group(1)
        page = http.post("/signup/code", data={"phone": fresh_phone(), "next": "/", "csrf": token},
                         headers={"Accept-Language": "zh-CN"})
        # The form again (as for any refusal of identity's), saying why and until when; 503, as the API
        # answers it: the platform cannot text now, the patient did nothing wrong.
        assert page.status_code == 503
        assert "本小时内已无法再发送短信验证码，请在下一个整点后再试。" in page.text, page.text[-1500:]
        assert hourly_limit_refusals() - identity_refusals == 1, "the portal's request did not reach identity either"
    assert stored_counts(namespace) == [1]


def test_the_gateway_asks_identity_again_once_its_recheck_is_due(identity_with_one_text_an_hour, namespace):
    """A limit an operator raised (or an hour that ended) is seen within the recheck interval."""
    settings = send_guard(namespace, hourly_limit_recheck_seconds=0.5)
    app = create_app(identity_with_one_text_an_hour, PortalSettings(session_secret=SESSION_SECRET,
                                                                    waiting_room_namespace=namespace,
                                                                    redis_url=REDIS_URL),
                     SignInGuardSettings(redis_url=REDIS_URL, namespace=f"{namespace}:sign-in-failures"), settings)
    with serve(app) as url, httpx.Client(base_url=url, timeout=20, headers={"X-Forwarded-For": PUMPER}) as http:
        # The hour's one text (unless an earlier test spent it), then identity's refusal, which the gateway learns.
        http.post(RESET, json={"phone": fresh_phone()})
        assert error(http.post(RESET, json={"phone": fresh_phone()}))[1] == "sms_hourly_limit_reached"
        before = hourly_limit_refusals()
        assert error(http.post(RESET, json={"phone": fresh_phone()}))[1] == "sms_hourly_limit_reached"
        assert hourly_limit_refusals() == before, "the gateway repeats identity's refusal"
        time.sleep(0.6)
        assert error(http.post(RESET, json={"phone": fresh_phone()}))[1] == "sms_hourly_limit_reached"
        assert hourly_limit_refusals() == before + 1, "past the recheck, identity is asked again"
