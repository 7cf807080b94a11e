"""A patient's journeys through the portal in Chromium, on a 360 px phone
screen: sign up, book, pay, print, cancel and see the refund; an expired hold;
a full slot; the rules' messages in Chinese and in English; a forgotten password."""
from __future__ import annotations

import io
import re

import pytest
from playwright.sync_api import expect
from pypdf import PdfReader

from tests.e2e import journey

from .portal_steps import wait_for_refund, PASSWORD, hold_first_free_slot, new_phone, open_doctor, pay, sign_in, sign_up

pytestmark = pytest.mark.integration


def no_horizontal_scroll(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def unlabelled_fields(page) -> list[str]:
    """Visible form fields without a label a screen reader can announce."""
    return page.evaluate("""() => [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
        .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label'))
        .map(el => el.name || el.id)""")


def test_sign_up_book_pay_print_cancel_and_see_the_refund(new_context, shots):
    page = new_context().new_page()
    sign_up(page)
    shots(page, "signed-up")
    assert no_horizontal_scroll(page)

    open_doctor(page, 0)
    expect(page.locator("li.slot .remaining").first).to_contain_text("剩余")
    assert no_horizontal_scroll(page) and not unlabelled_fields(page)
    shots(page, "slots")

    hold_first_free_slot(page)
    expect(page.get_by_role("timer")).to_contain_text("剩余")  # the hold's countdown is running
    shots(page, "held")

    pay(page)
    expect(page.locator("[data-status=confirmed]")).to_be_visible(timeout=20_000)
    number = page.locator("#booking-number").inner_text()
    assert re.fullmatch(r"\d{8}-\d{6}", number)
    expect(page.locator("#queue-number")).to_have_text(re.compile(r"^\d+$"))
    shots(page, "confirmed")

    with page.expect_download() as download:
        page.get_by_role("link", name="下载挂号凭条（PDF）").click()
    pdf = PdfReader(io.BytesIO(open(download.value.path(), "rb").read()))
    text = "".join(p.extract_text() for p in pdf.pages)
    assert number in text and "李*英" in text and "李秀英" not in text

    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="取消预约").click()
    expect(page.get_by_role("status").filter(has_text="预约已取消")).to_contain_text("¥50.00")
    expect(page.locator("[data-status=cancelled]")).to_be_visible()
    wait_for_refund(page)
    shots(page, "cancelled-refunded")

    page.get_by_role("link", name="我的全部预约").click()
    expect(page.locator(f"[data-booking='{number}']")).to_contain_text("已取消 · 已退款")
    shots(page, "my-bookings")


def test_an_unpaid_hold_expires_and_the_page_says_so(new_context, shots):
    page = new_context().new_page()
    sign_up(page)
    open_doctor(page, 1)
    hold_first_free_slot(page)
    shots(page, "held")
    # The platform's holds last 15 s in these tests; the countdown reloads the page when it runs out.
    expect(page.locator("[data-status=expired]")).to_be_visible(timeout=45_000)
    expect(page.get_by_role("status")).to_contain_text("锁号已超时未支付")
    shots(page, "expired")


def test_a_full_slot_is_visibly_full_and_a_late_click_gets_a_clear_message(new_context, shots, http):
    page = new_context().new_page()
    sign_up(page)
    open_doctor(page, 2)
    slot = page.locator("li.slot:not(.full)").first
    slot_id = slot.get_attribute("data-slot")
    # Other patients take every place left while this one is still looking at the page.
    while True:
        auth = journey.new_patient(http, "赵六")
        reply = http.post("/api/v1/bookings", json={"slot_id": slot_id}, headers={**auth, **journey.key()})
        if reply.status_code != 201:
            assert reply.json()["error"]["reason"] == "slot_full", reply.text
            break
    slot.get_by_role("button", name="预约").click()
    expect(page.get_by_role("alert")).to_have_text("该时段号源已满，请选择其他时段。")
    shots(page, "late-click")
    # After the refusal the page is fresh: the slot shows full, its button disabled.
    full = page.locator(f"li.slot[data-slot='{slot_id}']")
    expect(full).to_have_class(re.compile(r"\bfull\b"))
    expect(full.get_by_role("button", name="已满")).to_be_disabled()
    shots(page, "full")


def test_rules_speak_the_patients_language(new_context, shots):
    page = new_context().new_page()
    sign_up(page)
    open_doctor(page, 3)
    hold_first_free_slot(page)
    pay(page)
    expect(page.locator("[data-status=confirmed]")).to_be_visible(timeout=20_000)
    booked_slot = page.locator("[data-booking-id]").get_attribute("data-slot")
    # A second booking in the same department on the same day (another time): refused, in Chinese.
    open_doctor(page, 3)
    other = page.locator(f"li.slot:not(.full):not([data-slot='{booked_slot}'])").first
    other.get_by_role("button", name="预约").click()
    expect(page.get_by_role("alert")).to_have_text("您当天在该科室已有预约。")
    shots(page, "refused-zh")

    # The same in English, chosen from the header; the choice sticks.
    page.get_by_role("link", name="English").click()
    page.locator(f"li.slot:not(.full):not([data-slot='{booked_slot}'])").first.get_by_role(
        "button", name="Book").click()
    expect(page.get_by_role("alert")).to_have_text("You already have a booking in this department on that day.")
    page.goto("/bookings")
    expect(page.get_by_role("heading", name="My bookings")).to_be_visible()
    shots(page, "refused-en")


def test_keyboard_only_booking_reaches_the_payment_page(new_context, shots):
    page = new_context().new_page()
    sign_up(page)
    open_doctor(page, 4)
    button = page.locator("li.slot:not(.full)").first.get_by_role("button", name="预约")
    button.focus()
    page.keyboard.press("Enter")
    expect(page.locator("[data-status=held]")).to_be_visible()
    page.get_by_role("link", name=re.compile("^支付")).focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="支付挂号费")).to_be_visible()
    assert not unlabelled_fields(page)
    shots(page, "keyboard")


def test_a_forgotten_password_is_reset_with_a_code(new_context, shots, platform):
    page = new_context().new_page()
    phone = sign_up(page, "周敏")
    page.get_by_role("button", name="退出登录").click()
    page.goto("/reset")
    page.get_by_label("手机号码").fill(phone)
    page.get_by_role("button", name="获取验证码").click()
    expect(page.get_by_role("heading", name="输入验证码")).to_be_visible()
    shots(page, "code-sent")
    code = journey.texted_code(phone, "password reset code")
    page.get_by_label("验证码（6 位数字）").fill("000000" if code != "000000" else "111111")
    page.get_by_label("新密码（至少 8 位，包含字母和数字）").fill("NewSecret2026")
    page.get_by_role("button", name="修改密码").click()
    expect(page.get_by_role("alert")).to_have_text("验证码不正确，如有需要请重新获取。")
    page.get_by_label("验证码（6 位数字）").fill(code)
    page.get_by_label("新密码（至少 8 位，包含字母和数字）").fill("NewSecret2026")
    page.get_by_role("button", name="修改密码").click()
    expect(page.get_by_role("status").filter(has_text="密码已修改")).to_be_visible()
    sign_in(page, phone, PASSWORD)
    expect(page.get_by_role("alert")).to_have_text("手机号或密码不正确。")
    sign_in(page, phone, "NewSecret2026")
    expect(page.get_by_role("button", name="退出登录")).to_be_visible()
    shots(page, "signed-in-with-new-password")


def test_a_new_phone_number_is_not_signed_in(new_context):
    page = new_context().new_page()
    sign_in(page, new_phone(), PASSWORD)
    expect(page.get_by_role("alert")).to_have_text("手机号或密码不正确。")
