"""The portal's pages pass axe-core's WCAG 2.1 A/AA checks (contrast, labels,
names, landmarks, language) on a phone and, for the office, on a desktop."""
from __future__ import annotations

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import expect

from .conftest import DESKTOP
from .portal_steps import hold_first_free_slot, open_doctor, sign_in, sign_up

pytestmark = pytest.mark.integration

WCAG_AA = {"runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]},
           "resultTypes": ["violations"]}


def violations(page) -> list[str]:
    results = Axe().run(page, options=WCAG_AA)
    return [f"{page.url}: {v['id']} ({v['impact']}): {v['help']} -> "
            f"{[n['target'] for n in v['nodes']][:3]}" for v in results.response["violations"]]


def test_patient_pages_pass_wcag_aa(new_context):
    page = new_context().new_page()
    found = []
    for path in ("/", "/signin", "/signup", "/reset"):
        page.goto(path)
        found += violations(page)
    sign_up(page)
    open_doctor(page, 7)
    found += violations(page)
    hold_first_free_slot(page)
    found += violations(page)
    page.get_by_role("link", name="支付 ¥50.00").click()
    found += violations(page)
    page.goto("/bookings")
    found += violations(page)
    page.goto("/?lang=en")
    found += violations(page)
    assert not found, "\n".join(found)


def test_office_pages_pass_wcag_aa(new_context):
    page = new_context(viewport=DESKTOP).new_page()
    sign_in(page, "office", "Office1234")
    expect(page.locator("table.sessions")).to_be_visible()
    found = violations(page)
    page.goto("/office/templates")
    found += violations(page)
    assert not found, "\n".join(found)
