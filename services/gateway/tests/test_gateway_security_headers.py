"""Every reply keeps the portal out of other pages' frames and tells browsers
not to guess types nor to send the portal's addresses elsewhere; portal pages
allow scripts, styles and form posts from the gateway itself only."""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("path, status", [
    ("/signin", 200), ("/", 200), ("/api/v1/departments", 200), ("/api/v1/me", 401),
    ("/no-such-page", 404), ("/docs", 200),
])
def test_every_reply_refuses_to_be_framed(http, path, status):
    reply = http.get(path)
    assert reply.status_code == status
    assert reply.headers["x-frame-options"] == "DENY"
    assert reply.headers["x-content-type-options"] == "nosniff"
    assert reply.headers["referrer-policy"] == "same-origin"
    policy = reply.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in policy and "form-action 'self'" in policy
    assert reply.headers.get_list("x-frame-options") == ["DENY"]


def test_portal_pages_run_only_the_gateways_own_script(http):
    policy = http.get("/signin").headers["content-security-policy"]
    assert "default-src 'self'" in policy
    # Swagger UI starts itself with an inline script: its page keeps the frame rules only.
    docs = http.get("/docs")
    assert "default-src" not in docs.headers["content-security-policy"]
    assert "<script" in docs.text
