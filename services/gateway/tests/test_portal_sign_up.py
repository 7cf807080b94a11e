"""The portal's sign-up, as a browser does it: a code to the phone first, then
the account with it; against the real identity api."""
from __future__ import annotations

import html
import re

import httpx
import pytest
from gateway_testkit import CODES, fresh_phone

from gateway.portal.web import DEVICE_COOKIE

pytestmark = pytest.mark.integration


def csrf(page: httpx.Response) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)


def hidden(page: httpx.Response, name: str) -> str:
    return re.search(rf'name="{name}" value="([^"]*)"', page.text).group(1)


def test_a_patient_proves_the_phone_then_opens_the_account_and_is_signed_in(gateway_url):
    phone = fresh_phone()
    with httpx.Client(base_url=gateway_url, timeout=20, headers={"Accept-Language": "zh-CN"}) as browser:
        first = browser.get("/signup?next=/bookings")
        assert first.status_code == 200 and 'action="/signup/code"' in first.text and 'name="password"' not in first.text
        asked = browser.post("/signup/code", data={"phone": phone, "next": "/bookings", "csrf": csrf(first)})
        assert asked.status_code == 200 and "验证码已发送至该手机号" in asked.text
        assert hidden(asked, "phone") == phone and 'name="code"' in asked.text
        form = {"phone": phone, "next": "/bookings", "key": hidden(asked, "key"), "csrf": csrf(asked),
                "display_name": "周文静", "password": "Patient2026"}
        wrong = browser.post("/signup", data=form | {"code": f"{(int(CODES.last_code(phone)) + 1) % 10**6:06d}"})
        assert wrong.status_code == 400 and 'id="code"' in wrong.text and 'aria-invalid="true"' in wrong.text
        assert "验证码不正确" in wrong.text
        # The form comes back with what was typed, but no password, and the same key.
        assert hidden(wrong, "key") == form["key"] and "周文静" in wrong.text and "Patient2026" not in wrong.text
        done = browser.post("/signup", data=form | {"code": CODES.last_code(phone), "csrf": csrf(wrong)})
        assert done.status_code == 303 and done.headers["location"] == "/bookings"
        assert any(v.startswith(DEVICE_COOKIE + "=") for v in done.headers.get_list("set-cookie"))
        assert "退出登录" in browser.get("/").text  # signed in


@pytest.mark.parametrize("language, password, says", [
    ("zh-CN", "woaini1314", "该密码过于常见，容易被猜中，请换一个。"),
    ("en", "Password1", "This password is one of the most commonly used, so it is easy to guess."),
    ("zh-CN", "phone", "密码不能包含您的手机号。"),
    ("en", "phone", "The password must not contain your phone number."),
])
def test_a_common_password_or_one_holding_the_phone_is_explained_at_the_password(gateway_url, language, password,
                                                                                 says):
    phone = fresh_phone()
    password = f"Zx{phone}" if password == "phone" else password
    with httpx.Client(base_url=gateway_url, timeout=20, headers={"Accept-Language": language}) as browser:
        asked = browser.post("/signup/code", data={"phone": phone, "next": "/", "csrf": csrf(browser.get("/signup"))})
        # The rule is told before anyone types.
        assert 'id="password-hint"' in asked.text and 'aria-describedby="password-hint"' in asked.text
        form = {"phone": phone, "next": "/", "key": hidden(asked, "key"), "csrf": csrf(asked),
                "display_name": "周文静", "code": CODES.last_code(phone)}
        refused = browser.post("/signup", data=form | {"password": password})
        assert refused.status_code == 400 and says in html.unescape(refused.text)
        assert re.search(r'id="password"[^>]*aria-invalid="true" aria-describedby="form-error password-hint"',
                         refused.text)
        assert password not in refused.text
        # The code was not spent on it.
        done = browser.post("/signup", data=form | {"password": "Patient2026", "csrf": csrf(refused)})
        assert done.status_code == 303


def test_a_number_that_is_not_one_is_refused_on_the_first_step(gateway_url):
    with httpx.Client(base_url=gateway_url, timeout=20) as browser:
        page = browser.get("/signup")
        refused = browser.post("/signup/code", data={"phone": "12345", "next": "/", "csrf": csrf(page)})
        assert refused.status_code == 400 and 'action="/signup/code"' in refused.text
        assert 'id="phone"' in refused.text and 'aria-invalid="true"' in refused.text


def test_asking_again_at_once_goes_on_to_the_code_sent_a_moment_ago(gateway_url):
    phone = fresh_phone()
    with httpx.Client(base_url=gateway_url, timeout=20, headers={"Accept-Language": "zh-CN"}) as browser:
        token = csrf(browser.get("/signup"))
        assert browser.post("/signup/code", data={"phone": phone, "next": "/", "csrf": token}).status_code == 200
        code = CODES.last_code(phone)
        # A second click, or the page sent again: no new code, and the form for the one sent.
        again = browser.post("/signup/code", data={"phone": phone, "next": "/", "csrf": token})
        assert again.status_code == 200 and "刚才已向该手机号发送验证码" in again.text and 'name="code"' in again.text
        assert CODES.last_code(phone) == code
        done = browser.post("/signup", data={"phone": phone, "code": code, "next": "/", "key": hidden(again, "key"),
                                             "csrf": csrf(again), "display_name": "周文静", "password": "Patient2026"})
        assert done.status_code == 303


def test_a_number_with_an_account_is_led_to_set_a_new_password_with_its_code(gateway_url, patient):
    phone = patient.account["login"]
    with httpx.Client(base_url=gateway_url, timeout=20, headers={"Accept-Language": "zh-CN"}) as browser:
        asked = browser.post("/signup/code", data={"phone": phone, "next": "/", "csrf": csrf(browser.get("/signup"))})
        # The same page as for any number: the text tells the holder the number has an account.
        assert asked.status_code == 200 and "验证码已发送至该手机号" in asked.text
        code = CODES.last_code(phone)
        taken = browser.post("/signup", data={"phone": phone, "code": code, "next": "/", "key": hidden(asked, "key"),
                                              "csrf": csrf(asked), "display_name": "别人", "password": "Other2026x"})
        assert taken.status_code == 200 and 'action="/reset/confirm"' in taken.text
        assert "该手机号已注册账户" in taken.text and f'value="{code}"' in taken.text
        reset = browser.post("/reset/confirm", data={"phone": phone, "code": code, "new_password": "Renewed2027",
                                                     "key": hidden(taken, "key"), "csrf": csrf(taken)})
        assert reset.status_code == 303
    patient_again = httpx.post(f"{gateway_url}/api/v1/auth/signin", json={"login": phone, "password": "Renewed2027"})
    assert patient_again.status_code == 200


def language_link(page: httpx.Response) -> str:
    return html.unescape(re.search(r'<a href="(/language\?to=en[^"]*)"', page.text).group(1))


def sign_in_links(page: httpx.Response) -> str:
    return " ".join(re.findall(r'href="(/signin[^"]*)"', page.text))


@pytest.mark.parametrize("form_page, asks, code_page", [
    ("/signup?next=/bookings", "/signup/code", "signup"), ("/reset", "/reset", "reset")])

def test_switching_language_on_the_code_step_returns_to_the_form_not_a_form_address(
        gateway_url, form_page, asks, code_page):
    """The code step is a page a POST rendered: the switch used to lead to GET /signup/code (the
    405 page, the flow lost). It leads to the form, the number typed again: a phone number in an
    address stays in the browser's history (a kiosk's) and in proxies' access logs."""
    phone = fresh_phone()
    with httpx.Client(base_url=gateway_url, timeout=20, headers={"Accept-Language": "zh-CN"}) as browser:
        first = browser.get(form_page)
        asked = browser.post(asks, data={"phone": phone, "next": "/bookings", "csrf": csrf(first)})
        assert asked.status_code == 200 and 'name="code"' in asked.text
        assert phone not in language_link(asked) and phone not in sign_in_links(asked)
        switched = browser.get(language_link(asked), follow_redirects=True)
        assert switched.status_code == 200 and '<html lang="en">' in switched.text
        assert switched.url.path == asks.removesuffix("/code") and phone not in str(switched.url)
        if code_page == "signup":
            assert hidden(switched, "next") == "/bookings"
        # Sent again, the number goes on to the code already on its way (the same code), now in English.
        code = CODES.last_code(phone) if code_page == "signup" else None
        again = browser.post(asks, data={"phone": phone, "next": "/bookings", "csrf": csrf(switched)})
        assert again.status_code == 200 and 'name="code"' in again.text and "a moment ago" in again.text
        if code:
            assert CODES.last_code(phone) == code


def alert_text(page: httpx.Response) -> str:
    return html.unescape(re.search(r'role="alert"[^>]*>([^<]*)<', page.text).group(1))


@pytest.mark.parametrize("language, says", [
    ("zh-CN", "姓名过长（最多 40 个字）。"),
    ("en", "The name is too long (at most 40 characters)."),
])
def test_a_name_longer_than_identity_takes_is_explained_in_the_patients_language(gateway_url, language, says):
    """Identity refuses a name over 40 characters (display_name_length): the page says so in words,
    not "please check the field: display_name" (an identifier, in English, on a Chinese page)."""
    phone = fresh_phone()
    with httpx.Client(base_url=gateway_url, timeout=20, headers={"Accept-Language": language}) as browser:
        asked = browser.post("/signup/code", data={"phone": phone, "next": "/", "csrf": csrf(browser.get("/signup"))})
        form = {"phone": phone, "next": "/", "key": hidden(asked, "key"), "csrf": csrf(asked),
                "code": CODES.last_code(phone), "password": "Patient2026"}
        refused = browser.post("/signup", data=form | {"display_name": "周" * 41})
        assert refused.status_code == 400 and alert_text(refused) == says
        assert re.search(r'id="display_name"[^>]*aria-invalid="true"', refused.text)
        # Nothing was opened nor spent: the same code opens the account with a shorter name.
        done = browser.post("/signup", data=form | {"display_name": "周文静", "csrf": csrf(refused)})
        assert done.status_code == 303


@pytest.mark.parametrize("login", ["1" * 65, "office\x01"], ids=["too-long", "control-character"])
def test_a_sign_in_refused_on_its_login_names_the_field_as_the_form_labels_it(gateway_url, login):
    """Identity refuses such a login on field "login" (too_long, control_characters): the page names
    the field as its label does, never the identifier."""
    with httpx.Client(base_url=gateway_url, timeout=20, headers={"Accept-Language": "zh-CN"}) as browser:
        refused = browser.post("/signin", data={"login": login, "password": "Patient2026", "next": "/",
                                                "csrf": csrf(browser.get("/signin"))})
        assert refused.status_code == 400
        said = alert_text(refused)
        assert "login" not in said and "手机号" in said, said
