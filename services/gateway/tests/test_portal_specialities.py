"""A doctor's speciality reads in the page's language: the catalogue carried
both in one field, and every Chinese page showed the English in brackets."""
from __future__ import annotations

import httpx
import pytest
from tuoguan.registration.v1 import registration_pb2 as reg

from gateway.portal import i18n

pytestmark = pytest.mark.integration


def test_a_doctors_speciality_is_in_the_pages_language(gateway_url):
    with httpx.Client(base_url=gateway_url, timeout=15, follow_redirects=True) as browser:
        for path in ("/departments/dep-cardio", "/departments/dep-cardio/doctors/doc-wang"):
            page = browser.get(path).text
            assert "心律失常" in page and "Arrhythmia" not in page, path
        browser.get("/language", params={"to": "en", "next": "/"})
        for path in ("/departments/dep-cardio", "/departments/dep-cardio/doctors/doc-wang"):
            page = browser.get(path).text
            assert "Arrhythmia" in page and "心律失常" not in page, path


def test_a_speciality_with_no_english_keeps_its_chinese_on_english_pages():
    doctor = reg.Doctor(speciality="淋巴瘤")
    assert (i18n.speciality(doctor, "en"), i18n.speciality(doctor, "zh_CN")) == ("淋巴瘤", "淋巴瘤")
