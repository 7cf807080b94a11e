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


def test_a_network_past_its_new_tickets_is_told_to_wait_a_moment(browser, platform, shots):
    """Cookie-less visits each took a place in the queue, so a script could push patients back. Past the
    address's new tickets in the minute, a visitor from that network gets no place yet: the waiting page
    says why, in Chinese, and when it will try again by itself; a visitor elsewhere queues as ever."""
    url = start_narrow_gateway(platform, "gateway-waiting-room-tickets-browser",
                               WAITING_ROOM_NEW_TICKETS_PER_ADDRESS="1")

    def visitor(address: str):
        # As the gateway sees a client behind its trusted proxy (127.0.0.1).
        context = browser.new_context(base_url=url, viewport={"width": 360, "height": 740}, locale="zh-CN",
                                      extra_http_headers={"X-Forwarded-For": address})
        context.set_default_timeout(15_000)
        return context, context.new_page()

    (ctx_a, first), (ctx_b, second), (ctx_c, elsewhere) = visitor("101.6.6.6"), visitor("101.6.6.6"), \
        visitor("101.7.7.7")
    try:
        open_doctor(first, 6)  # the network's one new ticket this minute: admitted
        doctor_url = first.url.removeprefix(url)

        second.goto(doctor_url)
        expect(second).to_have_url(f"{url}/queue?next={doctor_url}")
        expect(second.get_by_role("heading", name="请稍候再加入排队")).to_be_visible()
        expect(second.get_by_role("status")).to_contain_text("同一 Wi-Fi 或移动网络")
        expect(second.locator("#queue-position")).to_have_count(0)
        shots(second, "network-told-to-wait")

        elsewhere.goto(doctor_url)
        expect(elsewhere.locator("#queue-position")).to_have_text("1")
    finally:
        for context in (ctx_a, ctx_b, ctx_c):
            context.close()
