"""The texts to patients about their bookings, and when a failed one is tried again (pure)."""
from __future__ import annotations

import datetime as dt

from identity.domain.notices import NoticeRetry, PatientNotice

NOW = dt.datetime(2026, 12, 1, 0, 0, tzinfo=dt.timezone.utc)


def test_a_suspension_names_the_day_period_department_and_doctor_and_the_refund_when_one_is_due():
    paid = PatientNotice("b-1", "2026-12-01", "morning", "消化内科", "张建国", refund_due=True)
    assert paid.text() == "【医院】您预约的12月1日上午 消化内科 张建国医生 门诊已停诊，挂号费将原路退回。如需就诊请重新预约。"
    unpaid = PatientNotice("b-2", "2027-01-09", "afternoon", "乳腺外科", "李红", refund_due=False)
    assert unpaid.text("肿瘤医院") == "【肿瘤医院】您预约的1月9日下午 乳腺外科 李红医生 门诊已停诊，如需就诊请重新预约。"
    # An event that did not carry the names still says which day.
    assert PatientNotice("b-3", "2026-12-01").text() == "【医院】您预约的12月1日 门诊已停诊，如需就诊请重新预约。"


def test_a_notice_keeps_its_parameters_and_one_request_id_for_every_try():
    notice = PatientNotice("b-1", "2026-12-01", "evening", "消化内科", "张建国", refund_due=True)
    again = PatientNotice.from_params("b-1", notice.kind, notice.params())
    assert again == notice and again.request_id == notice.request_id
    assert PatientNotice("b-2", "2026-12-01").request_id != notice.request_id


def test_a_failed_send_waits_twice_as_long_each_time_up_to_the_longest_then_is_given_up():
    retry = NoticeRetry(first=dt.timedelta(seconds=30), longest=dt.timedelta(minutes=2), max_attempts=5)
    waits = [retry.after_failure(n, NOW) - NOW for n in range(1, 5)]
    assert [w.total_seconds() for w in waits] == [30, 60, 120, 120]
    assert retry.after_failure(5, NOW) is None
