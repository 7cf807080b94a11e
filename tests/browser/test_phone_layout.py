"""The patient's pages on small phones as elderly patients set them up: large
text (Android's font scaling, which every rem of portal.css follows) on a
320 px screen, and fingers rather than a mouse pointer."""
from __future__ import annotations

import pytest
from playwright.sync_api import Page

from .conftest import PHONE
from .portal_steps import hold_first_free_slot, open_doctor, sign_up

pytestmark = pytest.mark.integration

NARROW = {"width": 320, "height": 740}
# The root font size doubled from the stylesheet's 112.5 %: "200 %" in a phone's text settings.
LARGE_TEXT = "225%"
# WCAG 2.5.5's target size, and what the stylesheet gives its buttons (2.75rem).
TAP_HEIGHT = 44


def patients_pages(page: Page) -> list[str]:
    """A new patient's home, a department, a doctor's slots and a booking just held: their addresses."""
    sign_up(page)
    page.goto("/")
    department = page.locator(".cards a.card").nth(7).get_attribute("href")
    page.goto(department)
    doctor = page.locator(".cards a.card.doctor").first.get_attribute("href")
    open_doctor(page, 7)
    hold_first_free_slot(page)
    return ["/", department, doctor, page.url]


def wider_than_the_screen(page: Page) -> list[str]:
    """What reaches past the right edge (the page then scrolls sideways and cuts text)."""
    return page.evaluate("""() => { const w = document.documentElement.clientWidth;
        return [...document.querySelectorAll('main *, header *')].filter(e => e.getClientRects().length
            && e.getBoundingClientRect().right > w + 0.5).slice(0, 5)
            .map(e => `${e.tagName.toLowerCase()}.${e.className} ends at ${Math.round(e.getBoundingClientRect().right)}`); }""")


def test_at_200_percent_text_a_320_px_phone_never_scrolls_sideways(new_context, shots):
    """Cards were 15rem (540 px at this size), a slot's time column would not shrink and a booking's
    facts kept their widest value on one line: 387 to 576 px on a 320 px screen."""
    page = new_context(viewport=NARROW).new_page()
    found = []
    for path in patients_pages(page):
        page.goto(path)
        # CSSOM, not a <style>: the portal's CSP takes no inline style sheet.
        page.evaluate(f"document.documentElement.style.fontSize = '{LARGE_TEXT}'")
        shots(page, "large-text")
        if page.evaluate("document.documentElement.scrollWidth > document.documentElement.clientWidth"):
            found.append(f"{path}: {wider_than_the_screen(page)}")
    assert not found, "\n".join(found)


# The header's links and "Sign out", the breadcrumb, and links that stand alone in a paragraph
# ("All my bookings", "Forgot your password?", "New patient? Create an account").
TAPPED = "header a, header button, .crumbs a, main p > a"


def too_small_to_tap(page: Page) -> list[str]:
    return page.evaluate("""(selector) => [...document.querySelectorAll(selector)]
        .filter(e => e.getClientRects().length && e.getBoundingClientRect().height < %d)
        .map(e => `${e.innerText.trim()}: ${Math.round(e.getBoundingClientRect().height)} px`)""" % TAP_HEIGHT, TAPPED)


def test_header_breadcrumb_and_lone_links_are_44_px_tall_on_a_phone(new_context, shots):
    """They were 20-29 px tall at 360 px ("Sign out", a button styled as a link, had no height at all),
    under the 44 px the stylesheet gives its buttons: elderly patients missed them, or hit the next one."""
    stranger = new_context(viewport=PHONE).new_page()
    stranger.goto("/signin")
    found = [f"/signin: {link}" for link in too_small_to_tap(stranger)]
    page = new_context(viewport=PHONE).new_page()
    for path in patients_pages(page):
        page.goto(path)
        found += [f"{path}: {link}" for link in too_small_to_tap(page)]
        assert page.evaluate("document.documentElement.scrollWidth <= document.documentElement.clientWidth"), path
    shots(page, "booking")
    assert not found, "\n".join(found)
