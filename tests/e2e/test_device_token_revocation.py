"""A leaked device token stops working: an admin revokes Alertmanager's token
through the gateway and, within the apis' refresh interval (1 s here), the
webhook refuses it while a new token for the same device works. Every api
reads identity's revocation list on its own (identity from its own table), so
ticketing, registration and identity are each asked."""
from __future__ import annotations

import uuid

import pytest

from tuoguan_common.testing import wait_for

from .journey import key, sign_in

pytestmark = pytest.mark.integration

WEBHOOK = "/api/v1/alertmanager/webhook"
PROBE_FINGERPRINT = uuid.uuid4().hex[:16]
# A device token is no patient and has no account: before revocation these
# apis refuse it for what it is (403, 404), after it for being revoked (401).
PROBES = {"ticketing": WEBHOOK, "registration": "/api/v1/bookings", "identity": "/api/v1/me"}


def alert_body(fingerprint: str) -> dict:
    alert = {"status": "firing", "labels": {"alertname": "PacsStorageAlmostFull", "subsystem": "STORAGE",
                                            "severity": "critical"},
             "annotations": {"summary": "PACS archive volume 96% full"}, "startsAt": "2026-11-26T08:00:00Z",
             "endsAt": "0001-01-01T00:00:00Z", "fingerprint": fingerprint}
    return {"version": "4", "status": "firing", "receiver": "tuoguan", "groupKey": "{}:{}", "alerts": [alert]}


def issue(http, admin) -> tuple[dict[str, str], str]:
    issued = http.post("/api/v1/admin/device-tokens", headers={**admin, **key()},
                       json={"device_name": "alertmanager", "valid_days": 30})
    assert issued.status_code == 201, issued.text
    return {"Authorization": f"Bearer {issued.json()['access_token']}"}, issued.json()["token_id"]


def probe(http, service: str, device: dict[str, str]):
    if service == "ticketing":
        # One fingerprint for every try: an accepted one updates the same ticket.
        return http.post(WEBHOOK, json=alert_body(PROBE_FINGERPRINT), headers=device)
    return http.get(PROBES[service], headers=device)


def refused(http, service: str, device: dict[str, str]):
    """The api's answer once it is 401, else None (to poll with wait_for)."""
    reply = probe(http, service, device)
    return reply if reply.status_code == 401 else None


def test_a_revoked_device_token_is_refused_and_a_new_one_works(platform, http):
    admin = sign_in(http, "admin", "Admin1234")
    device, token_id = issue(http, admin)
    accepted = http.post(WEBHOOK, json=alert_body(uuid.uuid4().hex[:16]), headers=device)
    assert accepted.status_code == 200 and accepted.json()["opened"] == 1, accepted.text
    before = {service: probe(http, service, device).status_code for service in ("registration", "identity")}
    assert before == {"registration": 403, "identity": 404}

    revoked = http.post(f"/api/v1/admin/device-tokens/{token_id}/revoke", headers=admin,
                        json={"reason": "the token was pasted into a public ticket"})
    assert revoked.status_code == 200 and revoked.json()["revoked_at"], revoked.text

    for service in PROBES:
        reply = wait_for(lambda service=service: refused(http, service, device), timeout=15, interval=0.2,
                         message=f"{service} to refuse the revoked token")
        assert reply.json()["error"]["message"] == "the access token has been revoked", (service, reply.text)

    # The device itself is not banned: its new token opens tickets again.
    renewed, renewed_id = issue(http, admin)
    assert renewed_id != token_id
    fresh = http.post(WEBHOOK, json=alert_body(uuid.uuid4().hex[:16]), headers=renewed)
    assert fresh.status_code == 200 and fresh.json()["opened"] == 1, fresh.text
    listed = http.get("/api/v1/admin/device-tokens", params={"device_name": "alertmanager"}, headers=admin).json()
    states = {t["token_id"]: bool(t["revoked_at"]) for t in listed["tokens"]}
    assert states[token_id] is True and states[renewed_id] is False
