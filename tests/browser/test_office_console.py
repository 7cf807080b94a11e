"""The registration office's console in Chromium on a desktop screen: the day
view, a session's bookings, suspending a session (the patient sees the
cancellation and the refund), templates; and a patient kept out."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from .conftest import DESKTOP
from .portal_steps import wait_for_refund, hold_first_free_slot, open_doctor, pay, sign_in, sign_up

pytestmark = pytest.mark.integration


def test_office_suspends_a_session_and_the_patient_sees_the_cancellation(new_context, shots):
    patient = new_context().new_page()
    sign_up(patient, "钱学敏")
    open_doctor(patient, 5)
    hold_first_free_slot(patient)
    pay(patient)
    expect(patient.locator("[data-status=confirmed]")).to_be_visible(timeout=20_000)
    facts = patient.locator("[data-booking-id]")
    session_id = facts.get_attribute("data-session")
    number = patient.locator("#booking-number").inner_text()
    service_date = f"{number[:4]}-{number[4:6]}-{number[6:8]}"

    office = new_context(viewport=DESKTOP).new_page()
    sign_in(office, "office", "Office1234")
    expect(office.get_by_role("heading", name=re.compile("^挂号处："))).to_be_visible()
    office.goto(f"/office?date={service_date}")
    row = office.locator(f"tr[data-session='{session_id}']")
    expect(row).to_be_visible()
    assert int(row.locator("td.booked").inner_text()) >= 1
    shots(office, "day-view")

    row.get_by_role("link").click()
    booking_row = office.locator(f"tr[data-booking='{number}']")
    expect(booking_row.locator("td.status")).to_have_text("预约成功")
    # Check-in opens on the visit's day only, and a no-show once the visit has started: a later day's
    # booking offers neither (registration would refuse both), only the cancel.
    expect(booking_row.get_by_role("button", name="签到")).to_have_count(0)
    expect(booking_row.get_by_role("button", name="爽约")).to_have_count(0)
    expect(booking_row.get_by_role("button", name=re.compile("^取消"))).to_be_visible()
    shots(office, "session")

    office.get_by_label("停诊原因（患者可见）").fill("医生临时外出会诊")
    office.once("dialog", lambda dialog: dialog.accept())
    office.get_by_role("button", name="停诊").click()
    # The patient paid: the flash counts the paid bookings being refunded apart from the others.
    expect(office.get_by_role("status").filter(has_text="已停诊")).to_contain_text(
        re.compile(r"已取消 \d+ 个预约，其中 [1-9]\d* 个已付费，挂号费正在退回"))
    expect(office.locator("[data-status=suspended]")).to_contain_text("医生临时外出会诊")
    expect(office.locator(f"tr[data-booking='{number}'] td.status")).to_have_text("已取消")
    shots(office, "suspended")

    # The patient's side: cancelled, with the office's reason, and refunded once billing is done.
    patient.goto("/bookings")
    expect(patient.locator(f"[data-booking='{number}']")).to_contain_text("已取消")
    patient.locator(f"[data-booking='{number}'] a").click()
    expect(patient.locator(".end-reason")).to_have_text("该医生本时段已停诊。")
    expect(patient.locator(".suspend-reason")).to_have_text("医院说明：医生临时外出会诊")
    wait_for_refund(patient)
    shots(patient, "patient-sees-cancellation")

    office.reload()
    expect(office.locator(f"tr[data-booking='{number}'] td.refund")).to_contain_text("已退款")
    shots(office, "refund-shown")


def test_office_edits_templates_and_publishes(new_context, shots):
    office = new_context(viewport=DESKTOP).new_page()
    sign_in(office, "office", "Office1234")
    office.goto("/office/templates")
    expect(office.get_by_role("heading", name="出诊模板", exact=True)).to_be_visible()
    form = office.locator("form#new")
    doctor_id = form.get_by_label("医生").input_value()
    form.get_by_label("星期").select_option("7")
    form.get_by_label("时段", exact=True).select_option("3")
    form.get_by_label("开始时间").fill("18:00")
    form.get_by_label("结束时间").fill("20:00")
    form.get_by_label("时段长度（分钟）").fill("20")
    form.get_by_label("每时段号数").fill("2")
    form.get_by_role("button", name="保存").click()
    expect(office.get_by_role("status")).to_contain_text("出诊模板已保存")
    row = office.locator(f"tr[data-doctor='{doctor_id}'][data-weekday='7'][data-period='3']")
    expect(row.locator("td.hours")).to_have_text("18:00–20:00")
    shots(office, "template-saved")

    # Edit it (whoever made it first): new hours and 3 patients per slot.
    row.locator("summary").click()
    row.get_by_label("结束时间").fill("20:40")
    row.get_by_label("每时段号数").fill("3")
    row.get_by_role("button", name="保存").click()
    expect(office.get_by_role("status")).to_contain_text("出诊模板已保存")
    expect(row.locator("td.hours")).to_have_text("18:00–20:40")
    expect(row.locator("td.capacity")).to_have_text("3")

    office.get_by_label("立即开放新号源（而不是等到 07:00）").check()
    office.get_by_role("button", name="发布").click()
    expect(office.get_by_role("status")).to_contain_text("已发布")
    shots(office, "published")


def test_a_patient_is_kept_out_of_the_office(new_context, shots):
    page = new_context().new_page()
    sign_up(page)
    page.goto("/office")
    expect(page.get_by_role("alert")).to_have_text("此页面仅供挂号处使用。")
    shots(page, "kept-out")
