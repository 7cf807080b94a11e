"""The surge's waiting room in Chromium: a gateway that admits one patient at
a time to the booking pages; the others queue in arrival order, see their
place, and move on by themselves when a place frees."""
from __future__ import annotations


import pytest
from playwright.sync_api import expect

from tests.e2e.journey import start_narrow_gateway

from .portal_steps import hold_first_free_slot, open_doctor, pay, sign_up

pytestmark = pytest.mark.integration


@pytest.fixture
def narrow_gateway(platform):
    """A second gateway on the same services, admitting one patient at a time."""
    return start_narrow_gateway(platform, "gateway-waiting-room")


def test_patients_queue_in_arrival_order_and_move_on_when_a_place_frees(browser, narrow_gateway, shots):
    def patient():
        context = browser.new_context(base_url=narrow_gateway, viewport={"width": 360, "height": 740}, locale="zh-CN")
        context.set_default_timeout(15_000)
        return context, context.new_page()

    (ctx_a, first), (ctx_b, second), (ctx_c, third) = patient(), patient(), patient()
    try:
        for page in (first, second, third):
            sign_up(page)
        open_doctor(first, 6)  # admitted: the room was empty
        shots(first, "first-admitted")

        open_doctor_url = first.url.removeprefix(narrow_gateway)
        second.goto(open_doctor_url)
        expect(second).to_have_url(f"{narrow_gateway}/queue?next={open_doctor_url}")
        expect(second.locator("#queue-position")).to_have_text("1")
        third.goto(open_doctor_url)
        expect(third.locator("#queue-position")).to_have_text("2")
        # Reloading keeps one's place.
        third.reload()
        expect(third.locator("#queue-position")).to_have_text("2")
        shots(second, "second-waiting")
        shots(third, "third-waiting")

        # The first patient books and pays: done, their place goes to the next in line.
        hold_first_free_slot(first)
        pay(first)
        expect(first.locator("[data-status=confirmed]")).to_be_visible(timeout=20_000)

        # The second patient's page moves on by itself; the third moves up.
        expect(second.get_by_role("heading", name="选择日期")).to_be_visible(timeout=10_000)
        expect(third.locator("#queue-position")).to_have_text("1", timeout=10_000)
        shots(second, "second-admitted")
        shots(third, "third-moved-up")
    finally:
        for context in (ctx_a, ctx_b, ctx_c):
            context.close()
