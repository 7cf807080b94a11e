"""Signing out ends the token everywhere, not just in the browser: through the
HTTP API and through the portal, the token (and a copy of the portal's cookie)
stops working at every api within its revocation refresh (1 s here), while the
same person's other sign-ins keep working."""
from __future__ import annotations

import re
import uuid

import httpx
import pytest

from tuoguan_common.testing import wait_for

from .journey import new_patient, sign_in

pytestmark = pytest.mark.integration

# A patient's own data at three apis: identity, registration, billing.
PROBES = ("/api/v1/me", "/api/v1/bookings", f"/api/v1/bookings/{uuid.uuid4()}/payments")


def refused(http, path, caller):
    reply = http.get(path, headers=caller)
    return reply if reply.status_code == 401 else None


def test_a_signed_out_token_is_refused_by_every_api_and_other_sign_ins_go_on(platform, http):
    caller = new_patient(http)
    me = http.get("/api/v1/me", headers=caller).json()
    other_device = sign_in(http, me["login"], "Secret1234")
    assert [http.get(path, headers=caller).status_code != 401 for path in PROBES] == [True] * len(PROBES)

    assert http.post("/api/v1/auth/signout", headers=caller).status_code == 204
    for path in PROBES:
        reply = wait_for(lambda path=path: refused(http, path, caller), timeout=15, interval=0.2,
                         message=f"{path} to refuse the signed-out token")
        assert reply.json()["error"]["message"] == "the access token has been revoked", reply.text
    again = http.post("/api/v1/auth/signout", headers=caller)
    assert again.status_code == 204, "signing out twice is no error"
    assert http.get("/api/v1/me", headers=other_device).json()["account_id"] == me["account_id"]


def test_without_a_token_sign_out_is_401(platform, http):
    assert http.post("/api/v1/auth/signout").status_code == 401


def csrf(page: httpx.Response) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)


def test_a_copy_of_the_portal_cookie_is_worth_nothing_after_signing_out(platform):
    with httpx.Client(base_url=platform.gateway_url, timeout=15) as api:
        caller = new_patient(api)
        login = api.get("/api/v1/me", headers=caller).json()["login"]
    with httpx.Client(base_url=platform.gateway_url, timeout=15, follow_redirects=True) as browser:
        signed_in = browser.post("/signin", data={"login": login, "password": "Secret1234", "next": "/bookings",
                                                   "csrf": csrf(browser.get("/signin"))})
        assert signed_in.url.path == "/bookings", signed_in.url
        copied = dict(browser.cookies)
        browser.post("/signout", data={"csrf": csrf(browser.get("/bookings"))})
    with httpx.Client(base_url=platform.gateway_url, timeout=15, cookies=copied) as thief:
        def sent_to_sign_in():
            page = thief.get("/bookings")
            return page if page.status_code in (302, 303, 307) and "/signin" in page.headers["location"] else None

        page = wait_for(sent_to_sign_in, timeout=15, interval=0.2, message="the copied cookie to be refused")
        assert page.headers["location"].startswith("/signin")
        told = thief.get(page.headers["location"])
        assert "您的登录已结束，请重新登录。" in told.text, "the sign-in page says why it is shown"
