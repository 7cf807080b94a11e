"""A patient's journeys through the portal in Chromium, on a 360 px phone
screen: sign up, book, pay, print, cancel and see the refund; an expired hold;
a full slot; the rules' messages in Chinese and in English; a forgotten password."""
from __future__ import annotations

import base64
import io
import json
import re
import time

import pytest
from itsdangerous import TimestampSigner
from playwright.sync_api import expect
from pypdf import PdfReader

from gateway.portal.web import SESSION_COOKIE
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
    # On the cashier, paying stops when the countdown runs out (before, the button stayed, for a refusal
    # under a page still saying "待支付").
    page.get_by_role("link", name=re.compile("^支付")).click()
    expect(page.locator(".remaining-time")).to_have_text("剩余 0:00", timeout=45_000)
    expect(page.get_by_role("button", name=re.compile("^支付"))).to_be_disabled()
    # The platform's holds last 15 s in these tests; the countdown reloads the page when it runs out, and
    # the cashier sends it to the booking, shown ended even before the worker releases the hold.
    expect(page.locator("[data-status=expired]")).to_be_visible(timeout=45_000)
    expect(page.get_by_role("status")).to_contain_text("锁号已超时未支付")
    shots(page, "expired")


def test_a_card_without_enough_funds_says_so_and_the_booking_reads_payment_not_completed(new_context, shots):
    """Billing answers pending and the provider declines a moment later: before, the page kept "待支付" and its
    pay button with no error, then called the booking "已过期"."""
    page = new_context().new_page()
    sign_up(page)
    open_doctor(page, 1)
    hold_first_free_slot(page)
    pay(page, "测试卡：余额不足")
    expect(page.get_by_role("alert")).to_contain_text("支付未成功：银行卡余额不足", timeout=20_000)
    expect(page.get_by_role("alert")).to_contain_text("号源已释放")
    expect(page.locator("[data-status]")).to_have_text("支付未成功")
    expect(page.get_by_role("link", name=re.compile("^支付"))).to_have_count(0)
    shots(page, "payment-declined")
    number = page.locator("#booking-number").inner_text()
    page.get_by_role("link", name="我的全部预约").click()
    status = page.locator(f"[data-booking='{number}'] .status")
    for _ in range(20):  # registration releases the hold a moment after billing fails the payment
        if status.inner_text() == "支付未成功":
            break
        page.wait_for_timeout(1000)
        page.reload()
    expect(status).to_have_text("支付未成功")


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


def run_out_the_sign_in(context, session_secret: str) -> None:
    """The session's sign-in as it is 15 minutes on (the token's lifetime): the browser's signed
    session cookie re-signed with its token's expiry in the past, as the gateway would find it."""
    cookie = next(c for c in context.cookies() if c["name"] == SESSION_COOKIE)
    signer = TimestampSigner(session_secret)
    session = json.loads(base64.b64decode(signer.unsign(cookie["value"])))
    session["token_expires"] = time.time() - 60
    cookie["value"] = signer.sign(base64.b64encode(json.dumps(session).encode())).decode()
    context.add_cookies([cookie])


def test_cancelling_after_the_sign_in_ran_out_says_so_and_comes_back_to_the_booking(new_context, shots, platform):
    """It used to go to the sign-in page with no word, under a header still signed in, and then to
    GET /bookings/<id>/cancel: the 405 page, the booking not cancelled and nothing saying so."""
    context = new_context()
    page = context.new_page()
    phone = sign_up(page)
    open_doctor(page, 4)
    booking_id = hold_first_free_slot(page)
    pay(page)
    deadline = time.monotonic() + 20
    while not page.locator("[data-status=confirmed]").count() and time.monotonic() < deadline:
        page.wait_for_timeout(500)
        page.reload()
    expect(page.locator("[data-status=confirmed]")).to_be_visible()

    run_out_the_sign_in(context, platform.session_secret)
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="取消预约").click()
    expect(page).to_have_url(re.compile(r"/signin\?"))
    expect(page.get_by_role("alert")).to_have_text("登录已超时，您刚才的操作尚未完成。请重新登录后再试一次。")
    expect(page.get_by_role("button", name="退出登录")).to_have_count(0)
    shots(page, "asked-to-sign-in")
    page.get_by_label("手机号码（工作人员填工号）").fill(phone)
    page.get_by_label("密码").fill(PASSWORD)
    page.get_by_role("button", name="登录").click()
    expect(page).to_have_url(re.compile(rf"/bookings/{booking_id}$"))
    expect(page.get_by_text("此地址用于提交表单")).to_have_count(0)
    expect(page.locator("[data-status=confirmed]")).to_be_visible()  # not cancelled, as it said
    shots(page, "back-at-the-booking")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="取消预约").click()
    expect(page.locator("[data-status=cancelled]")).to_be_visible()


def test_switching_language_on_the_code_step_keeps_the_sign_up_going(new_context, shots):
    """The switch used to open GET /signup/code, a form's address: the 405 page, the flow lost. It opens
    the form, the number typed again (never carried in an address, where a kiosk's history keeps it)."""
    page = new_context().new_page()
    phone = new_phone()
    page.goto("/signup")
    page.get_by_label("手机号码").fill(phone)
    page.get_by_role("button", name="获取验证码").click()
    expect(page.get_by_role("heading", name="输入验证码").or_(page.get_by_label("验证码（6 位数字）"))).not_to_have_count(0)
    page.get_by_role("link", name="English").click()
    expect(page.get_by_text("This address is for sending a form")).to_have_count(0)
    assert phone not in page.url
    page.get_by_label("Mobile number").fill(phone)
    page.get_by_role("button", name="Send me a verification code").click()
    expect(page.get_by_label("Verification code (6 digits)")).to_be_visible()
    shots(page, "code-step-in-english")
