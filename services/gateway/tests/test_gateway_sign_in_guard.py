"""Failed sign-ins counted per client address (the real identity, the real
Redis): password spraying from one address is refused past the limit, also
when the guesses arrive all at once, an IPv6 network is one address, other
addresses and successful sign-ins are not held back, the address is never
stored as it is, an address not counted is seen in the metric, and without
Redis sign-in goes on with one warning now and then."""
from __future__ import annotations

import asyncio
import logging
import re
import socket

import httpx
import pytest
import redis
from gateway_testkit import REDIS_URL, error, fresh_phone, new_key
from gateway_testkit import sign_up as sign_up_with_code
from prometheus_client import REGISTRY

from gateway import sign_in_guard
from gateway.address_guard import Unavailable
from gateway.sign_in_guard import SignInGuard, SignInGuardSettings
from tuoguan_common import metrics

pytestmark = pytest.mark.integration

# Public addresses (two carriers' networks): private and loopback ones are not counted.
SPRAYER, NEIGHBOUR = "36.110.5.7", "117.136.1.2"
PATIENT_LOGIN, PATIENT_PASSWORD = "13800000001", "Patient1234"


def guard(namespace: str, **settings) -> SignInGuardSettings:
    return SignInGuardSettings(**{"max_failures": 3, "window_seconds": 60, "redis_url": REDIS_URL,
                                  "namespace": f"{namespace}:sign-in-failures", **settings})


def sign_in(http: httpx.Client, login: str, password: str, address: str | None = None) -> httpx.Response:
    headers = {"X-Forwarded-For": address} if address else {}
    return http.post("/api/v1/auth/signin", json={"login": login, "password": password}, headers=headers)


def spray(http: httpx.Client, address: str | None, times: int = 3) -> None:
    """One wrong guess at each of ``times`` phone numbers: the per-login throttle never sees two."""
    for _ in range(times):
        assert error(sign_in(http, fresh_phone(), "Guess2026", address))[:2] == (401, "bad_credentials")


def stored_keys(namespace: str) -> list[str]:
    stored = redis.Redis.from_url(REDIS_URL, socket_timeout=2)
    try:
        return [key.decode() for key in stored.scan_iter(match=f"{namespace}:sign-in-failures:*")]
    finally:
        stored.close()


def guard_count(outcome: str) -> float:
    return REGISTRY.get_sample_value("tuoguan_gateway_sign_in_guard_total", {"outcome": outcome}) or 0.0


def stored_counts(namespace: str) -> list[int]:
    stored = redis.Redis.from_url(REDIS_URL, socket_timeout=2)
    try:
        return [int(stored.get(key)) for key in stored_keys(namespace)]
    finally:
        stored.close()


def test_an_address_spraying_passwords_is_refused_and_its_neighbours_are_not(own_gateway, namespace):
    with httpx.Client(base_url=own_gateway(guard=guard(namespace)), timeout=20) as http:
        refused_before, not_counted_before = guard_count("refused"), guard_count("not_counted")
        spray(http, SPRAYER)
        refused = sign_in(http, PATIENT_LOGIN, PATIENT_PASSWORD, SPRAYER)
        assert error(refused)[:2] == (429, "too_many_attempts_from_address")
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
        assert "try again in 1 minute" in refused.json()["error"]["message"]
        assert guard_count("refused") == refused_before + 1
        # Another address, and the right-most untrusted one of a chain, are their own.
        assert sign_in(http, PATIENT_LOGIN, PATIENT_PASSWORD, NEIGHBOUR).status_code == 200
        assert sign_in(http, PATIENT_LOGIN, PATIENT_PASSWORD, f"{SPRAYER}, {NEIGHBOUR}").status_code == 200
        assert sign_in(http, PATIENT_LOGIN, PATIENT_PASSWORD, f"{NEIGHBOUR}, {SPRAYER}").status_code == 429
        assert guard_count("not_counted") == not_counted_before

    keys = stored_keys(namespace)
    assert len(keys) == 1 and SPRAYER not in keys[0], "a keyed hash of the address, never the address"
    stored = redis.Redis.from_url(REDIS_URL, socket_timeout=2)
    try:
        assert 0 < stored.ttl(keys[0]) <= 60 and stored.get(keys[0]) == b"3"
    finally:
        stored.close()


def test_only_wrong_passwords_count_not_signing_in_nor_other_refusals(own_gateway, namespace):
    with httpx.Client(base_url=own_gateway(guard=guard(namespace)), timeout=20) as http:
        for _ in range(5):
            assert sign_in(http, PATIENT_LOGIN, PATIENT_PASSWORD, SPRAYER).status_code == 200
        for _ in range(5):  # no login at all: identity refuses it before any check of a password
            assert error(sign_in(http, "x" * 65, "Guess2026", SPRAYER))[0] == 422
        spray(http, SPRAYER, times=2)
        assert sign_in(http, PATIENT_LOGIN, PATIENT_PASSWORD, SPRAYER).status_code == 200


def test_the_portal_tells_the_patient_why_and_for_how_long(own_gateway, namespace):
    url = own_gateway(guard=guard(namespace))
    with httpx.Client(base_url=url, timeout=20) as http:
        spray(http, SPRAYER)
    with httpx.Client(base_url=url, timeout=20, headers={"X-Forwarded-For": SPRAYER}) as browser:
        form = browser.get("/signin")
        token = re.search(r'name="csrf" value="([^"]+)"', form.text).group(1)
        page = browser.post("/signin", data={"login": PATIENT_LOGIN, "password": PATIENT_PASSWORD, "next": "/",
                                             "csrf": token})
        assert page.status_code == 429 and 1 <= int(page.headers["Retry-After"]) <= 60
        assert "您所在网络的登录失败次数过多" in page.text, page.text[-1500:]


def test_forwarded_addresses_from_an_untrusted_peer_are_not_believed(own_gateway, namespace):
    # Only 10.9.9.9 may say who the client is; this test's requests come from
    # 127.0.0.1, so the client is 127.0.0.1 whatever they say, and a loopback
    # (or private) address, behind which anyone may be, is not counted.
    with httpx.Client(base_url=own_gateway(guard=guard(namespace), trusted_proxies="10.9.9.9"), timeout=20) as http:
        spray(http, SPRAYER, times=4)
        assert sign_in(http, PATIENT_LOGIN, PATIENT_PASSWORD, SPRAYER).status_code == 200
    assert stored_keys(namespace) == []


@pytest.mark.parametrize("address", ["10.20.0.7", "192.168.1.20", "fd00::7", "::ffff:10.20.0.7", "127.0.0.1"])
def test_a_private_address_is_not_counted_and_that_is_seen(own_gateway, namespace, address):
    with httpx.Client(base_url=own_gateway(guard=guard(namespace)), timeout=20) as http:
        # Served at 0 from the start, like the other outcomes.
        assert 'tuoguan_gateway_sign_in_guard_total{outcome="not_counted"}' in http.get("/metrics").text
        not_counted = guard_count("not_counted")
        spray(http, address, times=4)
        assert sign_in(http, PATIENT_LOGIN, PATIENT_PASSWORD, address).status_code == 200
        assert guard_count("not_counted") == not_counted + 5
    assert stored_keys(namespace) == []


async def _guess_at_once(url: str, address: str, guesses: int) -> list[int]:
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=httpx.Limits(max_connections=guesses)) as http:
        replies = await asyncio.gather(*(
            http.post("/api/v1/auth/signin", json={"login": fresh_phone(), "password": "Guess2026"},
                      headers={"X-Forwarded-For": address})
            for _ in range(guesses)))
    return [reply.status_code for reply in replies]


def test_guesses_sent_all_at_once_reach_identity_at_most_the_limit(own_gateway, namespace):
    # Each guess takes its place in the count before identity is asked: reading
    # the count, asking, then adding let every guess of a burst through.
    url = own_gateway(guard=guard(namespace, max_failures=5))
    statuses = asyncio.run(_guess_at_once(url, SPRAYER, guesses=40))
    reached_identity = [status for status in statuses if status != 429]
    assert len(reached_identity) <= 5, statuses
    assert statuses.count(401) == 5 and statuses.count(429) == 35, statuses
    assert stored_counts(namespace) == [5]


def test_an_ipv6_network_is_one_address_and_a_mapped_ipv4_address_is_the_address(own_gateway, namespace):
    with httpx.Client(base_url=own_gateway(guard=guard(namespace)), timeout=20) as http:
        # Three addresses of one /64: one subscriber's, one count.
        spray(http, "2408:8000:1:2::7", times=2)
        spray(http, "2408:8000:1:2:ffff::1", times=1)
        assert error(sign_in(http, PATIENT_LOGIN, PATIENT_PASSWORD, "2408:8000:1:2::99"))[:2] == (
            429, "too_many_attempts_from_address")
        assert sign_in(http, PATIENT_LOGIN, PATIENT_PASSWORD, "2408:8000:1:3::7").status_code == 200
        # An IPv4 client seen through an IPv6 socket is that IPv4 client.
        spray(http, f"::ffff:{NEIGHBOUR}", times=3)
        assert sign_in(http, PATIENT_LOGIN, PATIENT_PASSWORD, NEIGHBOUR).status_code == 429
    assert sorted(stored_counts(namespace)) == [3, 3]
    assert not any("2408" in key or NEIGHBOUR in key for key in stored_keys(namespace))


def test_a_sign_in_that_ends_otherwise_gives_its_place_back(namespace):
    """Cancelled while identity is asked, or failing for another reason: the
    place it took in the count is given back."""
    async def scenario() -> None:
        guard_ = SignInGuard(guard(namespace), "a-secret")
        asked = asyncio.Event()

        async def hangs() -> None:
            asked.set()
            await asyncio.Event().wait()

        async def breaks() -> None:
            raise RuntimeError("identity is not there")

        try:
            signing_in = asyncio.create_task(guard_.attempt(SPRAYER, hangs))
            await asked.wait()
            assert stored_counts(namespace) == [1], "the place is taken before identity is asked"
            signing_in.cancel()
            with pytest.raises(asyncio.CancelledError):
                await signing_in
            assert stored_keys(namespace) == []
            with pytest.raises(RuntimeError):
                await guard_.attempt(SPRAYER, breaks)
            assert stored_keys(namespace) == []
        finally:
            await guard_.close()

    asyncio.run(scenario())


def test_without_redis_signing_in_goes_on(own_gateway, namespace):
    down = guard(namespace, redis_url="redis://127.0.0.1:1/0")
    with httpx.Client(base_url=own_gateway(guard=down), timeout=20) as http:
        unavailable = guard_count("unavailable")
        spray(http, SPRAYER, times=4)
        assert sign_in(http, PATIENT_LOGIN, PATIENT_PASSWORD, SPRAYER).status_code == 200
        assert guard_count("unavailable") >= unavailable + 5


def test_redis_timing_out_in_a_burst_warns_once_and_counts_every_sign_in(own_gateway, namespace, monkeypatch, caplog):
    # A Redis that takes connections and never answers: every call times out.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(100)
    monkeypatch.setattr(sign_in_guard, "unavailable", Unavailable("sign-in guard", metrics.GATEWAY_SIGN_IN_GUARD))
    caplog.set_level(logging.WARNING, logger="gateway.address_guard")
    try:
        hanging = guard(namespace, redis_url=f"redis://127.0.0.1:{silent.getsockname()[1]}/0")
        url = own_gateway(guard=hanging)
        unavailable = guard_count("unavailable")
        statuses = asyncio.run(_guess_at_once(url, SPRAYER, guesses=20))
    finally:
        silent.close()
    assert statuses == [401] * 20, "failing open: the guesses go through"
    assert guard_count("unavailable") == unavailable + 20
    warnings = [record.getMessage() for record in caplog.records if "sign-in guard unavailable" in record.getMessage()]
    assert len(warnings) == 1, warnings
    assert SPRAYER not in warnings[0]


def test_switched_off_nothing_is_counted(own_gateway, namespace):
    with httpx.Client(base_url=own_gateway(guard=guard(namespace, max_failures=0)), timeout=20) as http:
        spray(http, SPRAYER, times=4)
        assert sign_in(http, PATIENT_LOGIN, PATIENT_PASSWORD, SPRAYER).status_code == 200
    assert stored_keys(namespace) == []


def test_sign_up_and_sign_in_of_a_new_patient_are_unaffected(own_gateway, namespace):
    with httpx.Client(base_url=own_gateway(guard=guard(namespace)), timeout=20) as http:
        phone = fresh_phone()
        assert sign_up(http, phone, SPRAYER).status_code == 201
        assert sign_in(http, phone, "Patient2026", SPRAYER).status_code == 200


def sign_up(http: httpx.Client, phone: str, address: str) -> httpx.Response:
    return sign_up_with_code(http, phone, headers={"X-Forwarded-For": address})


def guess_sign_up_code(http: httpx.Client, phone: str, address: str) -> httpx.Response:
    return http.post("/api/v1/auth/signup", headers=new_key() | {"X-Forwarded-For": address},
                     json={"phone": phone, "code": "123456", "password": "Patient2026", "display_name": "周文静"})


def guess_reset_code(http: httpx.Client, phone: str, address: str) -> httpx.Response:
    return http.post("/api/v1/auth/password-reset/confirm", headers=new_key() | {"X-Forwarded-For": address},
                     json={"phone": phone, "code": "123456", "new_password": "Taken2026x"})


def test_wrong_sign_up_and_reset_codes_count_as_wrong_passwords_do(own_gateway, namespace):
    with httpx.Client(base_url=own_gateway(guard=guard(namespace)), timeout=20) as http:
        # Signing up is no miss, nor is a sign-up refused for its own fields.
        for _ in range(4):
            assert sign_up(http, fresh_phone(), SPRAYER).status_code == 201
        assert error(http.post("/api/v1/auth/signup", headers=new_key() | {"X-Forwarded-For": SPRAYER},
                               json={"phone": "123", "code": "123456", "password": "Patient2026",
                                     "display_name": "周"}))[0] == 422
        # A guess at a sign-up code is (a number that asked for none: no code can match)...
        assert error(guess_sign_up_code(http, fresh_phone(), SPRAYER))[:2] == (422, "sign_up_code_invalid")
        # ...and so is one at a reset code.
        assert error(guess_reset_code(http, fresh_phone(), SPRAYER))[:2] == (422, "reset_code_invalid")
        spray(http, SPRAYER, times=1)
        # One count for all three: the address is refused each of them now.
        for refused in (guess_sign_up_code(http, fresh_phone(), SPRAYER), guess_reset_code(http, fresh_phone(), SPRAYER),
                        sign_in(http, PATIENT_LOGIN, PATIENT_PASSWORD, SPRAYER)):
            assert error(refused)[:2] == (429, "too_many_attempts_from_address")
        assert sign_up(http, fresh_phone(), NEIGHBOUR).status_code == 201
    assert stored_counts(namespace) == [3]


def test_the_portal_sign_up_and_reset_say_why_and_for_how_long(own_gateway, namespace):
    url = own_gateway(guard=guard(namespace))
    with httpx.Client(base_url=url, timeout=20) as http:
        spray(http, SPRAYER)
    with httpx.Client(base_url=url, timeout=20, headers={"X-Forwarded-For": SPRAYER}) as browser:
        for path, data in (("/signup", {"phone": fresh_phone(), "code": "123456", "password": "Patient2026",
                                        "display_name": "周文静", "key": "k1", "next": "/"}),
                           ("/reset/confirm", {"phone": fresh_phone(), "code": "123456",
                                               "new_password": "Taken2026x", "key": "k2"})):
            form = browser.get("/signup")
            token = re.search(r'name="csrf" value="([^"]+)"', form.text).group(1)
            page = browser.post(path, data=data | {"csrf": token})
            assert page.status_code == 429 and 1 <= int(page.headers["Retry-After"]) <= 60, path
            assert "您所在网络的失败尝试次数过多" in page.text, page.text[-1500:]
