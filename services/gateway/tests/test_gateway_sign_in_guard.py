"""Failed sign-ins counted per client address (the real identity, the real
Redis): password spraying from one address is refused past the limit, other
addresses and successful sign-ins are not held back, the address is never
stored as it is, and without Redis sign-in goes on."""
from __future__ import annotations

import re

import httpx
import pytest
import redis
from gateway_testkit import REDIS_URL, error, fresh_phone, new_key
from prometheus_client import REGISTRY

from gateway.sign_in_guard import SignInGuardSettings

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


def test_an_address_spraying_passwords_is_refused_and_its_neighbours_are_not(own_gateway, namespace):
    with httpx.Client(base_url=own_gateway(guard=guard(namespace)), timeout=20) as http:
        refused_before = guard_count("refused")
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


@pytest.mark.parametrize("address", ["10.20.0.7", "192.168.1.20", "fd00::7", "127.0.0.1"])
def test_a_private_address_is_not_counted(own_gateway, namespace, address):
    with httpx.Client(base_url=own_gateway(guard=guard(namespace)), timeout=20) as http:
        spray(http, address, times=4)
        assert sign_in(http, PATIENT_LOGIN, PATIENT_PASSWORD, address).status_code == 200
    assert stored_keys(namespace) == []


def test_without_redis_signing_in_goes_on(own_gateway, namespace):
    down = guard(namespace, redis_url="redis://127.0.0.1:1/0")
    with httpx.Client(base_url=own_gateway(guard=down), timeout=20) as http:
        unavailable = guard_count("unavailable")
        spray(http, SPRAYER, times=4)
        assert sign_in(http, PATIENT_LOGIN, PATIENT_PASSWORD, SPRAYER).status_code == 200
        assert guard_count("unavailable") >= unavailable + 5


def test_switched_off_nothing_is_counted(own_gateway, namespace):
    with httpx.Client(base_url=own_gateway(guard=guard(namespace, max_failures=0)), timeout=20) as http:
        spray(http, SPRAYER, times=4)
        assert sign_in(http, PATIENT_LOGIN, PATIENT_PASSWORD, SPRAYER).status_code == 200
    assert stored_keys(namespace) == []


def test_sign_up_and_sign_in_of_a_new_patient_are_unaffected(own_gateway, namespace):
    with httpx.Client(base_url=own_gateway(guard=guard(namespace)), timeout=20) as http:
        phone = fresh_phone()
        assert http.post("/api/v1/auth/signup", headers=new_key(),
                         json={"phone": phone, "password": "Patient2026", "display_name": "周文静"}).status_code == 201
        assert sign_in(http, phone, "Patient2026", SPRAYER).status_code == 200
