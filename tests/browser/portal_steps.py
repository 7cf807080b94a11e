"""Steps people take in the portal, in a real browser."""
from __future__ import annotations

import datetime as dt
import itertools
import random
import re
import time
from zoneinfo import ZoneInfo

from playwright.sync_api import Page, expect

from tests.e2e.journey import texted_code

_phones = itertools.count(random.randint(0, 10_000_000))
PASSWORD = "Secret1234"
HOSPITAL_TIME = ZoneInfo("Asia/Shanghai")


def new_phone() -> str:
    return f"137{next(_phones) % 100_000_000:08d}"


def sign_up(page: Page, name: str = "李秀英") -> str:
    """Signs up as a patient does: the number, the code texted to it, then name and password."""
    phone = new_phone()
    page.goto("/signup")
    page.get_by_label("手机号码").fill(phone)
    page.get_by_role("button", name="获取验证码").click()
    expect(page.get_by_role("status").filter(has_text="验证码已发送至该手机号")).to_be_visible()
    page.get_by_label("验证码（6 位数字）").fill(texted_code(phone))
    page.get_by_label("姓名（与身份证一致）").fill(name)
    page.get_by_label("密码（至少 8 位，包含字母和数字）").fill(PASSWORD)
    page.get_by_role("button", name="注册").click()
    expect(page.get_by_role("status").filter(has_text="账号已注册成功")).to_be_visible()
    return phone


def sign_in(page: Page, login: str, password: str) -> None:
    page.goto("/signin")
    page.get_by_label("手机号码（工作人员填工号）").fill(login)
    page.get_by_label("密码").fill(password)
    page.get_by_role("button", name="登录").click()


def open_doctor(page: Page, department_index: int) -> None:
    """Home, a department, its first doctor: the slot page."""
    page.goto("/")
    page.locator(".cards a.card").nth(department_index).click()
    page.locator(".cards a.card.doctor").first.click()
    expect(page.get_by_role("heading", name="选择日期")).to_be_visible()


def hold_first_free_slot(page: Page) -> str:
    """Books the first slot with places left; returns the booking page's booking id."""
    page.locator("li.slot:not(.full)").first.get_by_role("button", name="预约").click()
    expect(page.locator("[data-status=held]")).to_be_visible()
    return page.locator("[data-booking-id]").get_attribute("data-booking-id")


def pay(page: Page, card: str = "测试卡：支付成功") -> None:
    page.get_by_role("link", name=re.compile("^支付")).click()
    page.get_by_label(card).check()
    page.get_by_role("button", name=re.compile("^支付")).click()


def wait_for_refund(page: Page, timeout: float = 20.0) -> None:
    """The refund is billing's, after the cancellation event: reload until the page shows it."""
    deadline = time.monotonic() + timeout
    while "已退款" not in page.locator("main").inner_text() and time.monotonic() < deadline:
        page.wait_for_timeout(500)
        page.reload()
    expect(page.locator(".refund")).to_contain_text("已退款：¥50.00")


# ---- O&M tickets ---------------------------------------------------------------------------------

def report_problem(page: Page, system: str, title: str, description: str = "", impact: str = "中",
                   urgency: str = "中") -> str:
    """A problem reported from "我要报修"; returns the ticket's number (the detail page shows it)."""
    page.goto("/tickets/new")
    page.get_by_label("系统", exact=True).select_option(system)
    page.get_by_label(re.compile("^标题")).fill(title)
    if description:
        page.get_by_label(re.compile("^问题描述")).fill(description)
    page.get_by_role("group", name=re.compile("^影响范围")).get_by_role("radio", name=re.compile(f"^{impact}")).check()
    page.get_by_role("group", name=re.compile("^紧急程度")).get_by_role("radio", name=re.compile(f"^{urgency}")).check()
    page.get_by_role("button", name="提交报修").click()
    expect(page.get_by_role("status").filter(has_text="报修已受理")).to_be_visible()
    return page.locator("#ticket-number").inner_text()


def open_ticket(page: Page, number: str) -> None:
    """From a list of tickets (mine, the queue, the board), the ticket's own page."""
    page.locator(f"li.ticket[data-ticket='{number}'] a.ticket-title").click()
    expect(page.locator("#ticket-number")).to_have_text(number)


def log_work(page: Page, minutes: int, activity: str = "维修", note: str = "",
             started_minutes_ago: int | None = None, grade: str = "高级工程师") -> None:
    """The engineer logs time on the open ticket page (the start defaults to half an hour ago, or the minute
    the ticket was opened if later: no worklog starts before it), at the grade of their account, which the
    form shows and does not let them choose (the demo engineer is senior). One engineer's worklogs may not
    overlap: a second one in a session starts in another minute."""
    form = page.locator("#log-work")
    expect(form.locator("#wl-grade")).to_contain_text(f"您的人员级别：{grade}")
    expect(form.get_by_label("人员级别")).to_have_count(0)
    if started_minutes_ago is not None:
        started = dt.datetime.now(HOSPITAL_TIME) - dt.timedelta(minutes=started_minutes_ago)
        form.get_by_label("开始时间").fill(started.strftime("%Y-%m-%dT%H:%M"))
    form.get_by_label("工作内容").select_option(label=activity)
    form.get_by_label("工时（分钟）").fill(str(minutes))
    if note:
        form.get_by_label("工作记录").fill(note)
    form.get_by_role("button", name="登记工时").click()
    overlap = page.get_by_role("alert").filter(has_text="与您已登记的工时重叠")
    expect(page.get_by_role("status").or_(overlap)).to_be_visible()
    if overlap.count() and minutes == 1:
        # A fresh ticket's time is this minute, and another journey of the same engineer (the API's, run
        # first) took it: the next minute, on a page drawn in it (the form's latest start is its now).
        time.sleep(61 - dt.datetime.now(HOSPITAL_TIME).second)
        page.reload()
        log_work(page, minutes, activity, note, started_minutes_ago=0, grade=grade)
        return
    expect(page.get_by_role("status")).to_have_text(f"已登记 {minutes} 分钟工时。")
