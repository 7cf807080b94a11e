"""Every metric declared in the one registry is served by some process of the
running platform, and no label value carries personal data. Runs after the
journeys (marked after_journeys), so the platform has done real work."""
from __future__ import annotations

import re

import httpx
import pytest
from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.parser import text_string_to_metric_families

from tuoguan_common import metrics as registry

pytestmark = [pytest.mark.integration, pytest.mark.after_journeys]


def _declared() -> dict[str, object]:
    return {name: m for name, m in vars(registry).items() if isinstance(m, (Counter, Gauge, Histogram))}


def _scrape(platform) -> str:
    ports = [platform.ports[k] for k in platform.ports if k.endswith("metrics")]
    texts = [httpx.get(f"http://127.0.0.1:{p}/metrics", timeout=5).text for p in ports]
    texts.append(httpx.get(f"{platform.gateway_url}/metrics", timeout=5).text)
    return "\n".join(texts)


def _browse_the_portal(http: httpx.Client) -> None:
    """A patient's look at a doctor's slots: the waiting room and both portal caches at work."""
    home = http.get("/")
    department = re.search(r'href="(/departments/[^"/]+)"', home.text).group(1)
    doctor = re.search(r'href="(/departments/[^"/]+/doctors/[^"/]+)"', http.get(department).text).group(1)
    assert http.get(doctor, follow_redirects=True).status_code == 200


def test_every_declared_metric_is_emitted(platform, http):
    _browse_the_portal(http)
    text = _scrape(platform)
    families = {f.name for f in text_string_to_metric_families(text) if f.samples}
    missing = [name for name, m in _declared().items() if m._name not in families]
    assert not missing, f"declared in tuoguan_common.metrics but served by no process: {missing}"


def test_billing_took_the_journeys_bookings_from_their_payment_tickets(platform):
    """Registration and billing share the ticket key: the payments made with a
    hold's ticket did not ask registration about their booking."""
    learned = {s.labels["source"]: s.value for f in text_string_to_metric_families(_scrape(platform))
               if f.name == "tuoguan_billing_bookings_learned" for s in f.samples if s.name.endswith("_total")}
    assert learned.get("ticket", 0) >= 1, learned


def test_metric_labels_carry_no_personal_data(platform, http):
    text = _scrape(platform)
    labels = " ".join(re.findall(r"\{([^}]*)\}", text))
    assert not re.search(r"1[3-9]\d{9}", labels), "a phone number in a metric label"
    assert not re.search(r"[\u4e00-\u9fff]", labels), "Chinese text (a name?) in a metric label"
    assert not re.search(r"[0-9a-f]{8}-[0-9a-f]{4}-", labels), "an id in a metric label"
