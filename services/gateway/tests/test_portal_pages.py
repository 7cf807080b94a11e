"""The portal's pages over HTTP, against identity (real) and stand-ins for
registration and billing: every rule's refusal reads as a sentence in the
patient's language, forms need their CSRF token, sign-in guards the pages
that need it, redirects stay on the site, and the public pages load the same
for everyone."""
from __future__ import annotations

import base64
import contextlib
import datetime as dt
import html
import json
import re
import time
from collections.abc import Iterator
from urllib.parse import quote

import httpx
import jwt
import pytest
from gateway_testkit import SESSION_SECRET, fresh_phone, sign_up
from itsdangerous import TimestampSigner

from gateway.portal import i18n
from tuoguan.registration.v1 import registration_pb2 as reg
from tuoguan.billing.v1 import billing_pb2 as bill
from gateway.portal.web import DEVICE_COOKIE, SESSION_COOKIE

pytestmark = pytest.mark.integration

HOLD_REFUSALS = ["slot_full", "slot_in_past", "slot_not_released", "session_suspended",
                 "one_per_department_per_day", "active_booking_cap", "overlapping_booking"]
CANCEL_REFUSALS = ["cancel_cutoff_passed", "booking_not_cancellable"]


def csrf(page: httpx.Response) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)


def alert(page: httpx.Response) -> str:
    found = re.search(r'<p class="flash error" role="alert">([^<]*)</p>', page.text)
    assert found, page.text[-2000:]
    return found.group(1)


@contextlib.contextmanager
def signed_in_client(gateway_url: str, login: str, password: str) -> Iterator[httpx.Client]:
    """A portal session (cookies, redirects followed) signed in as ``login``."""
    with httpx.Client(base_url=gateway_url, timeout=20, follow_redirects=True) as client:
        token = csrf(client.get("/signin"))
        signed_in = client.post("/signin", data={"login": login, "password": password, "next": "/", "csrf": token})
        assert "退出登录" in signed_in.text
        yield client


@pytest.fixture
def browser_session(gateway_url):
    """A portal session (cookies) signed in as the demo patient."""
    with signed_in_client(gateway_url, "13800000001", "Patient1234") as client:
        yield client


def zh(reason: str) -> str:
    return i18n.translations("zh_CN").gettext(i18n.REASONS[reason])


@pytest.mark.parametrize("reason", HOLD_REFUSALS)
def test_every_hold_refusal_reads_as_a_chinese_sentence(browser_session, reason):
    token = csrf(browser_session.get("/"))
    page = browser_session.post("/holds", data={"csrf": token, "slot_id": f"refuse:{reason}", "key": reason,
                                                "doctor_id": "doc-wang", "back": "/"})
    assert page.status_code == 200 and str(page.url).endswith("/")
    message = alert(page)
    assert message == zh(reason) and re.search(r"[\u4e00-\u9fff]", message) and reason not in page.text


@pytest.mark.parametrize("reason", CANCEL_REFUSALS)
def test_every_cancel_refusal_reads_as_a_chinese_sentence(browser_session, reason):
    token = csrf(browser_session.get("/"))
    page = browser_session.post(f"/bookings/refuse:{reason}/cancel", data={"csrf": token, "key": reason},
                                follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"] == f"/bookings/refuse:{reason}"
    home = browser_session.get("/")  # the flashed message shows on the next page
    assert alert(home) == zh(reason)


def test_refusals_in_english_once_chosen(browser_session):
    browser_session.get("/language", params={"to": "en", "next": "/"})
    token = csrf(browser_session.get("/"))
    page = browser_session.post("/holds", data={"csrf": token, "slot_id": "refuse:active_booking_cap", "key": "en",
                                                "back": "/"})
    assert alert(page) == i18n.REASONS["active_booking_cap"]
    assert '<html lang="en">' in page.text


def test_an_unknown_reason_and_a_down_service_get_general_sentences(browser_session):
    token = csrf(browser_session.get("/"))
    page = browser_session.post("/holds", data={"csrf": token, "slot_id": "refuse:some_new_rule", "key": "u",
                                                "back": "/"})
    assert alert(page) == i18n.translations("zh_CN").gettext(i18n.GENERAL_REFUSAL)
    page = browser_session.post("/holds", data={"csrf": token, "slot_id": "slot-down", "key": "d", "back": "/"})
    assert alert(page) == zh("unavailable")


def test_a_form_without_its_csrf_token_changes_nothing(browser_session, fakes):
    before = len(fakes["registration"].requests)
    page = browser_session.post("/holds", data={"slot_id": "slot-1", "key": "no-csrf", "back": "/"})
    assert page.status_code == 403 and "表单已失效" in page.text
    assert len(fakes["registration"].requests) == before


@pytest.mark.parametrize("sent", [{"data": {"csrf": "é"}}, {"files": {"csrf": ("csrf.txt", b"x")}}], ids=["non-ascii", "file"])
def test_a_csrf_token_no_session_could_hold_is_an_expired_form_not_a_fault(browser_session, fakes, sent):
    """Anyone could post these; a 500 each would feed the error-rate alerts."""
    before = len(fakes["registration"].requests)
    data = {"slot_id": "slot-1", "key": "odd-csrf", "back": "/", **sent.get("data", {})}
    page = browser_session.post("/holds", data=data, files=sent.get("files"))
    assert page.status_code == 403 and "表单已失效" in page.text
    assert len(fakes["registration"].requests) == before


def test_pages_for_signed_in_people_send_strangers_to_sign_in(gateway_url):
    with httpx.Client(base_url=gateway_url, timeout=20) as client:
        for path in ("/bookings", "/bookings/bk-1", "/office"):
            reply = client.get(path)
            assert reply.status_code == 303 and reply.headers["location"] == f"/signin?next={path}"


# Off this site as browsers read them: they take a backslash for a slash and drop tabs and newlines.
OFF_SITE = ("https://evil.example/", "//evil.example/x", "javascript:alert(1)", "/\\evil.example",
            "/\\/evil.example", "/\t/evil.example", "/\n/evil.example", "/\x00/evil.example")


def test_redirects_stay_on_this_site(browser_session):
    for target in OFF_SITE:
        reply = browser_session.get("/language", params={"to": "en", "next": target}, follow_redirects=False)
        assert reply.headers["location"] == "/", target
    reply = browser_session.get("/language", params={"to": "en", "next": "/bookings?x=1"}, follow_redirects=False)
    assert reply.headers["location"] == "/bookings?x=1"


def test_the_waiting_room_sends_its_script_only_to_a_page_of_this_site(own_gateway):
    url = own_gateway(waiting_room_capacity=1)
    with httpx.Client(base_url=url, timeout=20) as first, httpx.Client(base_url=url, timeout=20) as second:
        assert first.get("/queue").status_code == 303  # the only place: the second patient waits
        for target in OFF_SITE:
            page = second.get("/queue", params={"next": target})
            # portal.js goes to data-next by itself when the patient's turn comes.
            assert page.status_code == 200 and re.search(r'data-next="([^"]*)"', page.text).group(1) == "/", target
        page = second.get("/queue", params={"next": "/departments/dep-cardio/doctors/doc-wang"})
        assert 'data-next="/departments/dep-cardio/doctors/doc-wang"' in page.text


def signed_session(session: dict) -> str:
    """A session cookie as the portal signs it (Starlette's SessionMiddleware) with SESSION_SECRET."""
    return TimestampSigner(SESSION_SECRET).sign(base64.b64encode(json.dumps(session).encode())).decode()


def test_public_pages_load_without_the_patients_token(own_gateway, issuer, fakes):
    """The catalogue and slot loads are shared by everyone who asks meanwhile: one patient's token that
    the services refuse (the session still counts on it) must not fail them, nor sign anyone out."""
    url = own_gateway(catalogue_cache_seconds=0, availability_cache_seconds=0, waiting_room_capacity=0)
    refused = issuer.issue("acc-stale", ["patient"], ttl_seconds=-60)
    session = {"token": refused, "token_expires": time.time() + 600,
               "account": {"display_name": "周文静", "roles": ["patient"]}}
    with httpx.Client(base_url=url, timeout=20, cookies={SESSION_COOKIE: signed_session(session)}) as client:
        for path in ("/", "/departments/dep-cardio", "/departments/dep-cardio/doctors/doc-wang"):
            page = client.get(path)
            assert page.status_code == 200, (path, page.status_code, page.headers.get("location"))
            assert "退出登录" in page.text  # still signed in
    for rpc in ("ListDepartments", "ListSlots"):
        assert "authorization" not in fakes["registration"].last(rpc)[2]
    # A signed-in patient's token does not travel with them either.
    with signed_in_client(url, "13800000001", "Patient1234") as patient:
        assert patient.get("/departments/dep-cardio/doctors/doc-wang").status_code == 200
    for rpc in ("ListDepartments", "ListSlots"):
        assert "authorization" not in fakes["registration"].last(rpc)[2]


@pytest.fixture
def server_zone_on_another_date(monkeypatch) -> Iterator[None]:
    """The process' local zone set where today is not Shanghai's today: 12 hours behind UTC until 19:00
    in Shanghai, 14 hours ahead from then on. A container's zone (UTC) differs only from 00:00 to 08:00."""
    zone = "Etc/GMT+12" if dt.datetime.now(i18n.HOSPITAL_TIME).hour < 19 else "Etc/GMT-14"
    monkeypatch.setenv("TZ", zone)
    time.tzset()
    assert dt.date.today() != i18n.hospital_today()
    yield
    monkeypatch.undo()
    time.tzset()


def test_the_portal_counts_days_from_the_hospitals_date_not_the_servers(own_gateway, fakes,
                                                                         server_zone_on_another_date):
    """The patient's fortnight of slots and the office's day view start at the hospital's today: on a
    server's date, the day released at 07:00 stayed out of the patients' reach until 08:00."""
    url = own_gateway(availability_cache_seconds=0, waiting_room_capacity=0)
    today = i18n.hospital_today()
    with httpx.Client(base_url=url, timeout=20) as client:
        assert client.get("/departments/dep-cardio/doctors/doc-wang").status_code == 200
    asked = fakes["registration"].last("ListSlots")[1]
    assert (asked.from_date, asked.to_date) == (today.isoformat(), (today + dt.timedelta(days=14)).isoformat())
    with signed_in_client(url, "office", "Office1234") as office:
        assert office.get("/office").status_code == 200
    assert fakes["registration"].last("ListSessions")[1].service_date == today.isoformat()


def test_publishing_with_a_days_ahead_out_of_1_to_60_goes_back_with_a_message(gateway_url, fakes):
    with signed_in_client(gateway_url, "office", "Office1234") as office:
        form = office.get("/office/templates")
        assert 'name="days_ahead" type="number" min="1" max="60"' in form.text
        token = csrf(form)
        before = len(fakes["registration"].requests)
        # 0 is registration's "its configured horizon" (14 days were published), and 61 is past its limit.
        for days_ahead in ("abc", "1.5", str(2**40), "0", "-3", "61"):
            page = office.post("/office/schedule/publish", data={"csrf": token, "days_ahead": days_ahead})
            assert page.status_code == 200 and page.url.path == "/office/templates", days_ahead
            assert alert(page) == "请检查填写的内容：提前天数。"
        assert not [r for r in fakes["registration"].requests[before:] if r[0] == "PublishSchedule"]
        published = office.post("/office/schedule/publish", data={"csrf": token, "days_ahead": "3"})
        assert "已发布：新增 6 个出诊单元，共 60 个时段。" in published.text
        assert fakes["registration"].last("PublishSchedule")[1].days_ahead == 3
        office.post("/office/schedule/publish", data={"csrf": token, "days_ahead": "60"})
        assert fakes["registration"].last("PublishSchedule")[1].days_ahead == 60


@pytest.mark.parametrize("path, field", [("/office/templates", "weekday"),
                                         ("/office/bookings/bk-1/check-in", "back")])
def test_a_file_sent_in_a_forms_text_field_reads_as_empty_not_as_a_fault(gateway_url, path, field):
    """No portal form takes a file, but anyone can post one: the page answers, it does not fail with a 500."""
    with signed_in_client(gateway_url, "office", "Office1234") as office:
        token = csrf(office.get("/office/templates"))
        page = office.post(path, data={"csrf": token}, files={field: ("x.txt", b"3")})
        assert page.status_code == 200, (page.status_code, page.text[:200])


def test_the_session_cookie_is_httponly_and_samesite(gateway_url):
    with httpx.Client(base_url=gateway_url, timeout=20) as client:
        reply = client.get("/signin")
        cookie = reply.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=lax" in cookie
        # Signed, not encrypted: no token or phone number before sign-in, and tampering is rejected.
        assert "13800000001" not in cookie
        client.cookies.set("tuoguan_session", "forged", domain="127.0.0.1")
        assert client.get("/bookings").status_code == 303


def test_a_free_clinic_booking_needs_no_payment(browser_session):
    token = csrf(browser_session.get("/"))
    page = browser_session.post("/holds", data={"csrf": token, "slot_id": "slot-free", "key": "free", "back": "/"})
    assert page.status_code == 200 and re.search(r"/bookings/bk-\d+$", str(page.url))
    assert 'data-status="confirmed"' in page.text and 'id="queue-number">1<' in page.text
    assert "/slip.pdf" in page.text and "/pay" not in page.text
    assert 'data-confirm="确定取消此预约吗？"' in page.text, "no refund promised for a fee of 0"

    paid = browser_session.post("/holds", data={"csrf": token, "slot_id": "slot-1", "key": "paid", "back": "/"})
    assert 'data-status="held"' in paid.text and "/pay" in paid.text


def test_the_doctor_page_shows_each_slots_fee_and_no_standard_fee_a_slot_does_not_charge(browser_session):
    """A session may charge its own fee (a free clinic charges nothing): each time shows what it costs, and
    the doctor's standard fee is stated only when every time charges it."""
    def fees(page: httpx.Response) -> dict[str, str]:
        return dict(re.findall(r'data-slot="([^"]+)".*?<span class="fee">([^<]*)</span>', page.text, re.S))

    li = browser_session.get("/departments/dep-peds/doctors/doc-li")
    assert fees(li) == {"slot-li-1": "挂号费 ¥10.00", "slot-li-2": "挂号费 ¥0.00"}
    assert "¥10.00" not in li.text.split('<ul class="slots"')[0], "no single fee above the times"
    wang = browser_session.get("/departments/dep-cardio/doctors/doc-wang")
    assert fees(wang) == {"slot-1": "挂号费 ¥50.00"}
    assert "标准挂号费: <strong>¥50.00</strong>" in wang.text
    browser_session.get("/language", params={"to": "en", "next": "/"})
    english = browser_session.get("/departments/dep-peds/doctors/doc-li")
    assert fees(english) == {"slot-li-1": "Fee CN¥10.00", "slot-li-2": "Fee CN¥0.00"}
    assert "Standard fee: <strong>CN¥50.00</strong>" in browser_session.get(
        "/departments/dep-cardio/doctors/doc-wang").text
    browser_session.get("/language", params={"to": "zh_CN", "next": "/"})


def test_the_department_page_calls_each_doctors_fee_the_standard_one(browser_session):
    """It lists no times: a doctor's fee there is the standard one, and a session may charge another."""
    page = browser_session.get("/departments/dep-peds").text
    assert '<span class="fee">标准挂号费: ¥10.00</span>' in page


def test_the_office_day_view_reads_a_date_it_cannot_use_as_today(gateway_url, fakes):
    # Today is the hospital's (Shanghai's), not the server's: they differ from 16:00 to 24:00 UTC.
    with signed_in_client(gateway_url, "office", "Office1234") as office:
        for date in ("9999-12-31", "2026-W48-4", "1899-12-31", "soon"):
            page = office.get("/office", params={"date": date})
            assert page.status_code == 200, date
            assert fakes["registration"].last("ListSessions")[1].service_date == \
                i18n.hospital_today().isoformat(), date
        assert office.get("/office", params={"date": "2026-12-07"}).status_code == 200
        assert fakes["registration"].last("ListSessions")[1].service_date == "2026-12-07"


def test_the_browser_keeps_its_device_cookie_so_strangers_cannot_lock_its_owner_out(gateway_url, http):
    phone = fresh_phone()
    assert sign_up(http, phone).status_code == 201
    with httpx.Client(base_url=gateway_url, timeout=20) as owner:
        signed_in = owner.post("/signin", data={"login": phone, "password": "Patient2026", "next": "/",
                                                 "csrf": csrf(owner.get("/signin"))})
        assert signed_in.status_code == 303
        set_cookie = next(v for v in signed_in.headers.get_list("set-cookie") if v.startswith(DEVICE_COOKIE + "="))
        assert "httponly" in set_cookie.lower() and "samesite=lax" in set_cookie.lower()
        assert "max-age=15552000" in set_cookie.lower()
        owner.post("/signout", data={"csrf": csrf(owner.get("/signin"))})
        # Signing out ends the session, not the device's standing.
        assert owner.cookies.get(DEVICE_COOKIE)
        with httpx.Client(base_url=gateway_url, timeout=20) as stranger:
            for password in ["Guess2026"] * 5 + ["Patient2026"]:
                page = stranger.post("/signin", data={"login": phone, "password": password, "next": "/",
                                                      "csrf": csrf(stranger.get("/signin"))})
            assert page.status_code == 400 and "退出登录" not in page.text
        again = owner.post("/signin", data={"login": phone, "password": "Patient2026", "next": "/",
                                            "csrf": csrf(owner.get("/signin"))}, follow_redirects=True)
        assert "退出登录" in again.text


BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


@pytest.mark.parametrize("method, path, status, accept_language, told", [
    ("GET", "/no-such-page", 404, "zh-CN,zh;q=0.9", "此地址没有页面，可能已移动，或地址输入有误。"),
    ("GET", "/no-such-page", 404, "en", "There is no page at this address."),
    # A form's address opened again (a reload, a bookmark): POST only.
    ("GET", "/signup/code", 405, "zh-CN", "此地址用于提交表单，不能直接打开。请从首页重新开始。"),
])
def test_a_browser_at_an_address_with_nothing_for_it_gets_a_page_in_its_language(gateway_url, method, path, status,
                                                                                  accept_language, told):
    with httpx.Client(base_url=gateway_url, timeout=20) as client:
        page = client.request(method, path, headers={"Accept": BROWSER_ACCEPT, "Accept-Language": accept_language})
        assert page.status_code == status and page.headers["content-type"].startswith("text/html")
        assert told in page.text and 'href="/static/portal.css"' in page.text
        # The API's JSON for anyone else, and under /api/ for everyone.
        assert client.request(method, path).json()["error"]["reason"] in ("not_found", "method_not_allowed")
        api = client.get("/api/v1/no-such-thing", headers={"Accept": BROWSER_ACCEPT})
        assert (api.status_code, api.json()["error"]["reason"]) == (404, "not_found")


def test_pages_of_bookings_name_the_department_in_the_chosen_language(browser_session):
    """A booking carries its department's name as it was made, in Chinese; in English the catalogue's name."""
    held = browser_session.post("/holds", data={"csrf": csrf(browser_session.get("/")), "slot_id": "slot-1",
                                                "key": f"dept-{time.monotonic_ns()}", "back": "/"})
    booking_page = str(held.url.path)
    assert booking_page.startswith("/bookings/"), held.url

    def shown(page: str) -> str:
        text = browser_session.get(page).text
        if page == "/bookings":
            # This booking's row: the patient has others, from other tests.
            return re.search(rf'<a href="{booking_page}">(.*?)</a>', text, re.S).group(1)
        return text

    for page in ("/bookings", booking_page, booking_page + "/pay"):
        assert "心内科" in shown(page), page
    browser_session.get("/language", params={"to": "en", "next": "/"})
    for page in ("/bookings", booking_page, booking_page + "/pay"):
        text = shown(page)
        assert "Cardiology" in text and "心内科" not in text, page


def test_a_patients_older_bookings_are_a_link_away(browser_session, fakes, monkeypatch):
    """Registration gives a patient's bookings a page at a time: the portal links the older ones, page after
    page, until every booking was shown once."""
    registration = fakes["registration"]
    for n in range(3):
        held = browser_session.post("/holds", data={"csrf": csrf(browser_session.get("/")), "slot_id": "slot-1",
                                                    "key": f"older-{n}-{time.monotonic_ns()}", "back": "/"})
    patient = registration.bookings[str(held.url).rsplit("/", 1)[-1]].patient_id
    mine = [b.booking_id for b in registration.bookings.values() if b.patient_id == patient]
    monkeypatch.setattr(registration, "bookings_page_size", 2)
    shown, page, pages = [], "/bookings", 0
    while page:
        text = browser_session.get(page).text
        shown += re.findall(r'<a href="/bookings/([^"/?]+)">', text)
        pages += 1
        assert ("Back to your latest bookings" in text or "返回最近的预约" in text) == (pages > 1)
        older = re.search(r'<a class="older" href="([^"]+)"', text)
        page = html.unescape(older.group(1)) if older else ""
    assert sorted(shown) == sorted(mine) and pages == (len(mine) + 1) // 2
    # A token mangled on the way: the latest bookings, not an error page.
    mangled = browser_session.get("/bookings", params={"older": "not-a-token"}, follow_redirects=False)
    assert mangled.status_code == 303 and mangled.headers["location"] == "/bookings"


def test_the_office_console_names_departments_in_the_chosen_language(gateway_url):
    """Departments carry an English name, which the patients' pages show in English: so do the office's."""
    with signed_in_client(gateway_url, "office", "Office1234") as office:
        day = office.get("/office", params={"date": "2026-12-01"}).text
        assert '<td>心内科</td>' in day and ">儿科</option>" in day
        office.get("/language", params={"to": "en", "next": "/office"})
        for page in ("/office?date=2026-12-01", "/office/templates"):
            text = office.get(page).text
            assert ">Cardiology</option>" in text and ">Paediatrics</option>" in text, page
            assert "心内科" not in text and "儿科" not in text, page
        assert '<td>Cardiology</td>' in office.get("/office", params={"date": "2026-12-01"}).text


def test_the_office_cancels_a_booking_from_the_sessions_page_after_a_confirmation(gateway_url, fakes):
    """Patients past the online cut-off are sent to the registration window: its page has a cancel for each
    held or confirmed booking, confirmed first, and says whether a fee is being refunded."""
    with signed_in_client(gateway_url, "office", "Office1234") as office:
        page = office.get("/office/sessions/ses-1")
        forms = dict(re.findall(r'<form method="post" action="/office/bookings/([^/]+)/cancel"[^>]*'
                                r'data-confirm="([^"]+)"', page.text))
        assert forms == {"bk-s2": "取消预约 20261201-000001 并退还挂号费吗？",
                         "bk-s3": "取消预约 20261201-000003 吗？"}, "held and confirmed only: not checked in, expired"
        assert ">取消并退款</button>" in page.text and ">取消预约</button>" in page.text
        keys = re.findall(r'action="/office/bookings/[^/]+/cancel".*?name="key" value="([^"]+)"', page.text, re.S)
        assert len(set(keys)) == 2, "one idempotency key per booking: a key names one request"

        bookings = fakes["registration"].bookings
        bookings["bk-office-c1"] = reg.Booking(booking_id="bk-office-c1", booking_number="20261201-000011",
                                               patient_id="p", status=reg.BOOKING_STATUS_CONFIRMED, fee_fen=5000)
        bookings["bk-office-c2"] = reg.Booking(booking_id="bk-office-c2", booking_number="20261201-000012",
                                               patient_id="p", status=reg.BOOKING_STATUS_HELD, fee_fen=5000)
        token = csrf(page)
        done = office.post("/office/bookings/bk-office-c1/cancel",
                           data={"csrf": token, "key": "k-c1", "back": "/office/sessions/ses-1"})
        assert done.url.path == "/office/sessions/ses-1"
        assert "预约 20261201-000011 已取消，挂号费 ¥50.00 正在退回。" in done.text
        _, request, metadata = fakes["registration"].last("CancelBooking")
        assert (request.booking_id, request.idempotency_key) == ("bk-office-c1", "k-c1")
        assert bookings["bk-office-c1"].cancel_reason == "registration_office"
        held = office.post("/office/bookings/bk-office-c2/cancel",
                           data={"csrf": token, "key": "k-c2", "back": "/office/sessions/ses-1"})
        assert "预约 20261201-000012 已取消。" in held.text and "挂号费 ¥" not in held.text
        refused = office.post("/office/bookings/refuse:booking_not_cancellable/cancel",
                              data={"csrf": token, "key": "k-c3", "back": "/office/sessions/ses-1"})
        assert alert(refused) == "该预约已签到、已标记爽约或已取消，请刷新页面。"


def test_the_office_offers_check_in_on_the_visits_day_only_and_no_show_from_that_day_on(gateway_url, fakes):
    """Registration refuses a check-in on any other day than the visit's (the hospital's date), and a no-show
    before the visit has started: their buttons show only where they can work (a no-show can still be
    marked on a later day). A patient marked as a no-show who comes late that day is checked in."""
    today = i18n.hospital_today()
    with signed_in_client(gateway_url, "office", "Office1234") as office:
        for offset, check_in, no_show in ((-1, False, True), (0, True, True), (1, False, False)):
            day = (today + dt.timedelta(days=offset)).isoformat()
            page = office.get(f"/office/sessions/ses-1@{day}").text
            assert ('action="/office/bookings/bk-s2/check-in"' in page) is check_in, day
            assert ('action="/office/bookings/bk-s2/no-show"' in page) is no_show, day
            assert 'action="/office/bookings/bk-s2/cancel"' in page, day
            assert ('action="/office/bookings/bk-s6/check-in"' in page) is check_in, day
            assert 'action="/office/bookings/bk-s6/no-show"' not in page, day
            assert 'action="/office/bookings/bk-s6/cancel"' not in page, day
        fakes["registration"].bookings["bk-s6"] = reg.Booking(
            booking_id="bk-s6", booking_number="20261201-000006", patient_id="p6", status=reg.BOOKING_STATUS_NO_SHOW)
        came_late = office.post("/office/bookings/bk-s6/check-in", data={
            "csrf": csrf(office.get("/office/sessions/ses-1")), "back": "/office/sessions/ses-1"})
    assert came_late.url.path == "/office/sessions/ses-1"
    # A suspended session's doctor is not there: no check-in is offered (registration refuses it).
    suspended = f"ses-1@{today.isoformat()}"
    fakes["registration"].suspended.add(suspended)
    with signed_in_client(gateway_url, "office", "Office1234") as office:
        page = office.get(f"/office/sessions/{suspended}").text
    assert "/check-in" not in page and 'action="/office/bookings/bk-s2/no-show"' in page
    assert '<p class="flash success" role="status">预约 20261201-000006 已签到。</p>' in came_late.text


def test_the_office_cannot_cancel_a_visit_that_has_started(gateway_url):
    # Registration refuses it (visit_started): it is checked in or a no-show, and a cancellation would refund
    # a missed visit. Before, the button was there and refused.
    with signed_in_client(gateway_url, "office", "Office1234") as office:
        page = office.get("/office/sessions/ses-1").text
    assert 'action="/office/bookings/bk-s2/cancel"' in page
    assert 'action="/office/bookings/bk-s5/cancel"' not in page
    assert i18n.translations("zh_CN").gettext(i18n.REASONS["visit_started"]) == \
        "就诊时间已到，不能再取消此预约：请为患者签到或标记爽约。"


def test_the_office_day_view_counts_no_free_places_in_a_suspended_session(gateway_url, fakes):
    """Staff quote the day's free places from this page: a suspended session has none, and stays out of the
    totals (they were 30 capacity and 25 free with its 10 places counted)."""
    with signed_in_client(gateway_url, "office", "Office1234") as office:
        page = office.get("/office", params={"date": "2026-12-08"}).text
    suspended = re.search(r'<tr class="session-suspended" data-session="ses-2">(.*?)</tr>', page, re.S).group(1)
    assert '<td class="num free">0</td>' in suspended
    totals = re.search(r"<tfoot>(.*?)</tfoot>", page, re.S).group(1)
    assert re.findall(r'<td class="num">(\d+)</td>', totals) == ["20", "3", "1", "16"]


@pytest.mark.parametrize("session_id, told", [
    ("ses-cancels-2:1", "已停诊：已取消 3 个预约，其中 2 个已付费，挂号费正在退回。"),
    ("ses-cancels-0:2", "已停诊：已取消 2 个预约，均未付费，无需退款。"),
    ("ses-cancels-0:0", "已停诊。本单元没有需要取消的预约。"),
], ids=["paid-and-unpaid", "unpaid-only", "none"])
def test_suspending_a_session_says_what_was_cancelled_and_refunded_and_promises_no_message(gateway_url, fakes,
                                                                                          session_id, told):
    """An unpaid hold or a free clinic's booking is cancelled with nothing to refund; nothing texts the patients,
    who see the cancellation in the portal."""
    with signed_in_client(gateway_url, "office", "Office1234") as office:
        page = office.get("/office/sessions/ses-1")
        assert "通知" not in page.text and "患者可在门户的“我的预约”中看到取消及停诊原因" in page.text
        done = office.post(f"/office/sessions/{session_id}/suspend",
                           data={"csrf": csrf(page), "key": session_id, "reason": "医生外出会诊"},
                           follow_redirects=False)
        assert done.status_code == 303
        flashed = office.get("/office/sessions/ses-1").text
    assert f'<p class="flash success" role="status">{told}</p>' in flashed


def test_an_office_action_on_a_booking_that_moved_on_asks_for_a_reload(gateway_url, fakes):
    """Clerk A checks a patient in; clerk B, on the older page, presses no-show: B is told the booking moved on,
    not that only a confirmed booking has a slip (the patient's wording of the same code)."""
    bookings = fakes["registration"].bookings
    bookings["bk-stale"] = reg.Booking(booking_id="bk-stale", booking_number="20261201-000021", patient_id="p",
                                       status=reg.BOOKING_STATUS_CONFIRMED)
    with signed_in_client(gateway_url, "office", "Office1234") as office:
        # Today's session: the page offers a no-show from the visit's day on.
        page = office.get(f"/office/sessions/ses-1@{i18n.hospital_today().isoformat()}")
        assert re.search(r'action="/office/bookings/bk-s2/no-show" class="inline" '
                         r'data-confirm="确定将预约 20261201-000001 标记为爽约吗？"', page.text)
        token = csrf(page)
        office.post("/office/bookings/bk-stale/check-in", data={"csrf": token, "back": "/office/sessions/ses-1"})
        stale = office.post("/office/bookings/bk-stale/no-show",
                            data={"csrf": token, "back": "/office/sessions/ses-1"})
    assert stale.url.path == "/office/sessions/ses-1"
    assert alert(stale) == "该预约已签到、已标记爽约或已取消，请刷新页面。"
    assert "凭条" not in stale.text


def test_a_new_template_where_the_doctor_has_one_is_refused_in_words_and_an_edit_saves(gateway_url, fakes):
    """The new-template form replaced the doctor's template for that weekday and period without a word."""
    form = {"department_id": "dep-cardio", "doctor_id": "doc-wang", "weekday": "2", "period": "2",
            "start_time": "13:30", "end_time": "16:30", "slot_minutes": "15", "capacity_per_slot": "3",
            "active": "on"}
    with signed_in_client(gateway_url, "office", "Office1234") as office:
        token = csrf(office.get("/office/templates"))
        refused = office.post("/office/templates", data=form | {"csrf": token, "key": "new-1", "template_id": ""})
        assert refused.url.path == "/office/templates"
        assert alert(refused) == zh("template_exists") == \
            "该医生在这一天的这个时段已有出诊模板，未作更改。如需修改，请在列表中该模板所在行点“修改”。"
        edited = office.post("/office/templates", data=form | {"csrf": token, "key": "edit-1", "template_id": "tpl-1"})
        assert "出诊模板已保存" in edited.text
    assert fakes["registration"].last("PutSessionTemplate")[1].template.template_id == "tpl-1"


def test_a_suspension_without_a_reason_is_refused_in_words(gateway_url, fakes):
    with signed_in_client(gateway_url, "office", "Office1234") as office:
        page = office.get("/office/sessions/ses-1")
        assert '<input id="reason" name="reason" required maxlength="200" pattern=".*\\S.*">' in page.text
        refused = office.post("/office/sessions/ses-1/suspend", data={"csrf": csrf(page), "key": "blank",
                                                                      "reason": "   "})
    assert refused.url.path == "/office/sessions/ses-1"
    assert alert(refused) == "请检查填写的内容：停诊原因（患者可见）。"


def test_a_template_refused_on_a_field_names_the_field_as_the_form_labels_it(gateway_url, fakes):
    """It read 请检查填写的内容：template.end_time。"""
    form = {"department_id": "dep-cardio", "doctor_id": "doc-wang", "weekday": "3", "period": "1",
            "start_time": "11:00", "end_time": "08:00", "slot_minutes": "15", "capacity_per_slot": "3"}
    with signed_in_client(gateway_url, "office", "Office1234") as office:
        refused = office.post("/office/templates", data=form | {"csrf": csrf(office.get("/office/templates")),
                                                                "key": "backwards"})
    assert alert(refused) == "请检查填写的内容：结束时间。"
    # Every field registration may name in a template's refusal has a label.
    for field in ("template_id", "doctor_id", "weekday", "period", "start_time", "end_time", "slot_minutes",
                  "capacity_per_slot"):
        assert f"template.{field}" in i18n.FIELDS


def test_a_charge_given_back_after_the_payment_failed_shows_on_the_booking(browser_session, fakes):
    token = csrf(browser_session.get("/"))
    held = browser_session.post("/holds", data={"csrf": token, "slot_id": "slot-1", "key": "late", "back": "/"})
    booking_id = str(held.url).rsplit("/", 1)[-1]
    registration = fakes["registration"]
    booking = registration.bookings[booking_id]
    booking.status, booking.cancel_reason = reg.BOOKING_STATUS_EXPIRED, "payment_failed"
    fakes["billing"].payments[booking_id] = [bill.Payment(
        payment_id="pay-late", booking_id=booking_id, patient_id=booking.patient_id, amount_fen=5000,
        status=bill.PAYMENT_STATUS_FAILED, failure_reason="never_authorized",
        refunded_after_failure_fen=5000, refunded_after_failure_at="2026-12-01T02:00:00.000Z")]
    # Before, the page said the payment failed and nothing of the charge the patient's bank showed, or its refund.
    page = browser_session.get(f"/bookings/{booking_id}")
    assert 'data-given-back="5000"' in page.text
    assert "支付失败后仍有一笔 ¥50.00 的扣款到账，已原路退回。" in page.text


def timed_out_session(**more) -> dict:
    """A patient's session whose sign-in has run out (the token's 15 minutes passed with the page open)."""
    return {"token": "a-token-that-ran-out", "token_expires": time.time() - 5, "csrf": "the-csrf",
            "account": {"display_name": "周文静", "roles": ["patient"]}, **more}


@pytest.mark.parametrize("path, form, headers, page", [
    # The cancel form says nothing of its page: the booking it cancels is the page.
    ("/bookings/bk-1/cancel", {"key": "k"}, {}, "/bookings/bk-1"),
    # The Referer (of this site) says which page the form was on.
    ("/bookings/bk-1/cancel", {"key": "k"}, {"Referer": "{url}/bookings"}, "/bookings"),
    # Another site's Referer is no page to go back to.
    ("/bookings/bk-1/cancel", {"key": "k"}, {"Referer": "https://evil.example/bookings"}, "/bookings/bk-1"),
    # The cashier's address is its page too (GET): the patient is back at the cashier.
    ("/bookings/bk-1/pay", {"key": "k", "method": "tok_ok"}, {}, "/bookings/bk-1/pay"),
    # The hold form names its page (back).
    ("/holds", {"key": "k", "slot_id": "slot-1", "doctor_id": "doc-wang",
                "back": "/departments/dep-cardio/doctors/doc-wang?date=2026-12-01"}, {},
     "/departments/dep-cardio/doctors/doc-wang?date=2026-12-01"),
], ids=["cancel", "cancel-referer", "cancel-foreign-referer", "pay", "hold-back"])
def test_a_form_sent_after_the_sign_in_ran_out_says_so_and_returns_to_its_page_not_the_forms_address(
        own_gateway, fakes, path, form, headers, page):
    """Signing in used to lead to GET of the form's address (POST only: the 405 page), the action
    silently lost, under a header that still showed the patient signed in."""
    gateway_url = own_gateway(waiting_room_capacity=0)
    headers = {k: v.format(url=gateway_url) for k, v in headers.items()}
    with httpx.Client(base_url=gateway_url, timeout=20,
                      cookies={SESSION_COOKIE: signed_session(timed_out_session())}) as client:
        before = len(fakes["registration"].requests), len(fakes["billing"].requests)
        sent = client.post(path, data={"csrf": "the-csrf", **form}, headers=headers)
        assert sent.status_code == 303
        assert sent.headers["location"] == f"/signin?next={quote(page)}"
        assert (len(fakes["registration"].requests), len(fakes["billing"].requests)) == before  # nothing done
        sign_in = client.get(sent.headers["location"])
        assert alert(sign_in) == "登录已超时，您刚才的操作尚未完成。请重新登录后再试一次。"
        # Signed out, and the header says so.
        assert "退出登录" not in sign_in.text and "我的预约" not in sign_in.text
        assert re.search(r'name="next" value="([^"]*)"', sign_in.text).group(1) == page.replace("&", "&amp;")
        signed = client.post("/signin", data={"login": "13800000001", "password": "Patient1234", "next": page,
                                              "csrf": csrf(sign_in)})
        assert signed.status_code == 303 and signed.headers["location"] == page


def test_signing_out_in_the_tokens_last_seconds_still_withdraws_it(own_gateway, patient, identity_database):
    """The portal stops using a token 30 s before it runs out; a copy of the cookie is good until its very end,
    so signing out then still puts it on identity's list."""
    token_id = jwt.decode(patient.token, options={"verify_signature": False})["jti"]
    session = {"token": patient.token, "token_expires": time.time() + 10, "csrf": "the-csrf",
               "account": {"display_name": "周文静", "roles": ["patient"]}}
    with httpx.Client(base_url=own_gateway(waiting_room_capacity=0), timeout=20, cookies={SESSION_COOKIE: signed_session(session)}) as client:
        assert client.post("/signout", data={"csrf": "the-csrf"}).status_code == 303
    with identity_database.transaction() as cur:
        cur.execute("SELECT 1 FROM signed_out_tokens WHERE token_id = %s", (token_id,))
        assert cur.fetchone() is not None


def test_a_page_opened_after_the_sign_in_ran_out_says_why_sign_in_is_asked_and_shows_no_account(own_gateway):
    gateway_url = own_gateway(waiting_room_capacity=0)
    with httpx.Client(base_url=gateway_url, timeout=20,
                      cookies={SESSION_COOKIE: signed_session(timed_out_session())}) as client:
        home = client.get("/")
        # Not "My bookings · Sign out" for a session that has run out: the sign-in link instead.
        assert "退出登录" not in home.text and 'href="/signin?next=/"' in home.text
        asked = client.get("/bookings")
        assert asked.status_code == 303 and asked.headers["location"] == "/signin?next=/bookings"
        sign_in = client.get("/signin?next=/bookings")
        assert "登录已超时，请重新登录。" in sign_in.text and "退出登录" not in sign_in.text
        # Said once: the next page asked for does not repeat it.
        assert "登录已超时" not in client.get("/signin?next=/bookings").text


def _held(client: httpx.Client, key: str) -> str:
    """A new hold of slot-1 by the session's patient: its booking id."""
    token = csrf(client.get("/"))
    held = client.post("/holds", data={"csrf": token, "slot_id": "slot-1", "key": key, "back": "/"})
    assert 'data-status="held"' in held.text
    return str(held.url).rsplit("/", 1)[-1]


def _pay(client: httpx.Client, booking_id: str, method: str = "tok_ok") -> httpx.Response:
    token = csrf(client.get(f"/bookings/{booking_id}/pay"))
    return client.post(f"/bookings/{booking_id}/pay", data={"csrf": token, "key": f"k-{booking_id}", "method": method})


def test_right_after_paying_the_hold_reads_paid_and_confirming_not_pay_now(browser_session, fakes):
    """Billing answers pending and tells registration later: the booking is still HELD and knows no
    payment. Before, the page read only the payments registration knew of, so it said "待支付" with the pay
    button for up to the hold time, to a patient who had just paid."""
    booking_id = _held(browser_session, "just-paid")
    page = _pay(browser_session, booking_id)
    assert fakes["registration"].bookings[booking_id].payment_id == ""
    assert 'data-status="held"' in page.text
    assert "已收到付款，正在确认预约" in page.text and '<meta http-equiv="refresh" content="2">' in page.text
    assert f'href="/bookings/{booking_id}/pay"' not in page.text and "该号源为您保留至" not in page.text
    # Captured before registration heard of it: paid too.
    fakes["billing"].payments[booking_id][-1].status = bill.PAYMENT_STATUS_CAPTURED
    page = browser_session.get(f"/bookings/{booking_id}")
    assert "已收到付款，正在确认预约" in page.text and f'href="/bookings/{booking_id}/pay"' not in page.text


@pytest.mark.parametrize("reason, why", [("insufficient_funds", "银行卡余额不足"), ("card_declined", "银行拒绝了此次付款")])
def test_a_failed_payment_says_why_and_that_the_time_was_released_and_is_not_called_expired(
        browser_session, fakes, reason, why):
    """Billing answers pending and fails the payment a moment later. Before, the page went on saying "待支付"
    with the pay button, then "已过期" with no reason: the patient never learnt the card was refused."""
    booking_id = _held(browser_session, f"failed-{reason}")
    _pay(browser_session, booking_id, f"tok_{reason}")
    payment = fakes["billing"].payments[booking_id][-1]
    payment.status, payment.failure_reason = bill.PAYMENT_STATUS_FAILED, reason
    booking = fakes["registration"].bookings[booking_id]
    for status, cancel_reason in ((reg.BOOKING_STATUS_HELD, ""), (reg.BOOKING_STATUS_EXPIRED, "payment_failed")):
        # Billing knows first; registration releases the hold a moment later.
        booking.status, booking.cancel_reason = status, cancel_reason
        page = browser_session.get(f"/bookings/{booking_id}")
        assert re.search(r'role="alert">支付未成功：' + why + r"。您锁定的号源已释放，请重新预约", page.text), cancel_reason
        assert re.search(r'data-status="expired">支付未成功</p>', page.text) and "已过期" not in page.text
        assert f'href="/bookings/{booking_id}/pay"' not in page.text and "已锁号" not in page.text
        assert 'href="/">重新预约<' in page.text
    listed = browser_session.get("/bookings")
    row = re.search(rf'data-booking="{booking.booking_number}">.*?</li>', listed.text, re.S).group(0)
    assert '<span class="status">支付未成功</span>' in row


def test_a_declined_card_keeps_the_patients_place_in_the_waiting_room_until_a_booking_is_confirmed(
        own_gateway, fakes):
    """Before, paying gave up the place as soon as billing answered pending, so a patient whose card the bank
    then declined went to the back of the queue to book again. Now the place is kept a short while after
    paying (PAID_PLACE_SECONDS; test_portal_waiting_room), and goes at once when the booking is confirmed."""
    url = own_gateway(waiting_room_capacity=1)
    doctor_page = "/departments/dep-cardio/doctors/doc-wang"
    with signed_in_client(url, "13800000001", "Patient1234") as patient, \
            httpx.Client(base_url=url, timeout=20) as next_patient:
        assert patient.get(doctor_page).url.path == doctor_page  # admitted: the only place
        declined = _held(patient, "room-declined")
        _pay(patient, declined, "tok_decline")
        payment = fakes["billing"].payments[declined][-1]
        payment.status, payment.failure_reason = bill.PAYMENT_STATUS_FAILED, "card_declined"
        assert "银行拒绝" in patient.get(f"/bookings/{declined}").text
        assert next_patient.get("/queue", follow_redirects=False).status_code == 200  # still queued
        assert patient.get(doctor_page).url.path == doctor_page  # books again at once, no queue

        paid = _held(patient, "room-paid")
        _pay(patient, paid)
        assert next_patient.get("/queue", follow_redirects=False).status_code == 200  # not confirmed yet
        fakes["registration"].bookings[paid].status = reg.BOOKING_STATUS_CONFIRMED
        assert 'data-status="confirmed"' in patient.get(f"/bookings/{paid}").text
        assert next_patient.get("/queue", follow_redirects=False).status_code == 303  # the place went on


def test_a_patient_can_release_a_hold_they_do_not_want_without_any_charge(browser_session, fakes):
    """Before, a held time had only the pay button: a wrong tap locked the patient out of the department's
    other times that day for the whole hold."""
    booking_id = _held(browser_session, "release-me")
    page = browser_session.get(f"/bookings/{booking_id}")
    form = re.search(rf'<form method="post" action="/bookings/{booking_id}/cancel" data-confirm="([^"]+)">.*?</form>',
                     page.text, re.S)
    assert form and form.group(1) == "确定释放这个时段吗？您尚未付款，不会产生任何费用。"
    assert "不要这个时段，释放号源" in form.group(0) and "退" not in form.group(0)
    released = browser_session.post(f"/bookings/{booking_id}/cancel",
                                    data={"csrf": csrf(page), "key": "release-me", "release": "1"})
    assert fakes["registration"].bookings[booking_id].status == reg.BOOKING_STATUS_CANCELLED
    assert "号源已释放，您可以重新选择时段。" in released.text and 'data-status="cancelled"' in released.text

    # Paid in another tab since the page was loaded: "release" promised nothing charged, so it cancels nothing.
    paid = _held(browser_session, "release-paid")
    page = browser_session.get(f"/bookings/{paid}")
    fakes["registration"].bookings[paid].status = reg.BOOKING_STATUS_CONFIRMED
    kept = browser_session.post(f"/bookings/{paid}/cancel", data={"csrf": csrf(page), "key": "rp", "release": "1"})
    assert fakes["registration"].bookings[paid].status == reg.BOOKING_STATUS_CONFIRMED
    assert "未释放" in alert(kept) and 'data-status="confirmed"' in kept.text


def test_a_hold_refused_one_per_department_per_day_links_the_booking_in_the_way(browser_session, fakes):
    """Before, the refusal said only that a booking existed: not which, nor that it was an unpaid hold the
    patient could release."""
    booking_id = _held(browser_session, "in-the-way")
    booking = fakes["registration"].bookings[booking_id]
    booking.service_date, booking.hold_expires_at = "2026-12-09", "2026-12-09T00:10:00Z"
    doctor_page = "/departments/dep-cardio/doctors/doc-wang"
    page = browser_session.get(doctor_page)
    assert 'name="department_id" value="dep-cardio"' in page.text and 'name="service_date"' in page.text
    refused = browser_session.post("/holds", data={
        "csrf": csrf(page), "slot_id": "refuse:one_per_department_per_day", "key": "second",
        "doctor_id": "doc-wang", "department_id": "dep-cardio", "service_date": "2026-12-09",
        "back": f"{doctor_page}?date=2026-12-09"})
    assert refused.url.path == doctor_page and alert(refused) == zh("one_per_department_per_day")
    assert f'<a href="/bookings/{booking_id}">查看该预约</a>' in refused.text
    assert "该预约尚未支付，将于 08:10 自动释放" in refused.text
    assert "查看该预约" not in browser_session.get(doctor_page).text  # said once


def test_a_hold_past_its_time_reads_ended_with_no_pay_button_before_the_worker_releases_it(browser_session, fakes):
    """Registration's worker releases a lapsed hold a moment after its time: before, until then the booking page
    and the cashier still said "已锁号，待支付" and offered to pay, under a message saying the hold had ended."""
    booking_id = _held(browser_session, "lapsed")
    booking = fakes["registration"].bookings[booking_id]
    booking.hold_expires_at = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=1)).isoformat()
    assert booking.status == reg.BOOKING_STATUS_HELD
    page = browser_session.get(f"/bookings/{booking_id}")
    assert re.search(r'data-status="expired">已过期</p>', page.text) and "锁号已超时未支付" in page.text
    assert f'href="/bookings/{booking_id}/pay"' not in page.text and "已锁号" not in page.text
    assert 'href="/">重新预约<' in page.text and "释放号源" not in page.text
    cashier = browser_session.get(f"/bookings/{booking_id}/pay", follow_redirects=False)
    assert cashier.status_code == 303 and cashier.headers["location"] == f"/bookings/{booking_id}"
    # Paid just in time: the payment's confirmation is on its way, not an ended hold.
    fakes["billing"].payments[booking_id] = [bill.Payment(
        payment_id="pay-in-time", booking_id=booking_id, amount_fen=5000, status=bill.PAYMENT_STATUS_PENDING)]
    assert "已收到付款，正在确认预约" in browser_session.get(f"/bookings/{booking_id}").text


def test_the_countdown_disables_paying_when_the_hold_runs_out(gateway_url):
    script = httpx.get(f"{gateway_url}/static/portal.js").text
    at_zero = script[script.index("if (left === 0)"):script.index("window.location.reload")]
    assert "form[action$='/pay'] button[type=submit]" in at_zero and "b.disabled = true" in at_zero
    assert "a.button[href$='/pay']" in at_zero and 'removeAttribute("href")' in at_zero


def test_the_slip_of_a_booking_no_longer_confirmed_goes_back_to_the_booking_with_a_chinese_message(
        browser_session, fakes):
    """Before, the slip link on a page gone out of date (cancelled in another tab) answered the API's JSON, in
    English, or a download that failed without a word."""
    booking_id = _held(browser_session, "slip-stale")
    fakes["registration"].bookings[booking_id].status = reg.BOOKING_STATUS_CANCELLED
    reply = browser_session.get(f"/bookings/{booking_id}/slip.pdf", follow_redirects=False)
    assert reply.status_code == 303 and reply.headers["location"] == f"/bookings/{booking_id}"
    page = browser_session.get(reply.headers["location"])
    assert alert(page) == zh("booking_not_confirmed") and 'data-status="cancelled"' in page.text


def test_a_lapsed_pass_says_queued_again_only_to_a_patient_really_queued_again(own_gateway):
    """Before, a pass that ran out (reported missed_turn) flashed "您离开期间已轮到您，现已为您重新排队。" even
    to a patient then let in at once, with nobody queued at all."""
    url = own_gateway(waiting_room_capacity=1, waiting_room_pass_seconds=2)
    doctor_page = "/departments/dep-cardio/doctors/doc-wang"
    requeued = "您长时间未操作，预约资格已失效，正在重新为您排队。"
    with httpx.Client(base_url=url, timeout=20, follow_redirects=True) as patient, \
            httpx.Client(base_url=url, timeout=20) as other:
        assert patient.get(doctor_page).url.path == doctor_page
        time.sleep(2.5)  # the pass runs out; nobody waits
        page = patient.get(doctor_page)
        assert page.url.path == doctor_page and "排队" not in page.text and "已轮到您" not in page.text
        assert other.get("/queue", follow_redirects=False).status_code == 200  # queued behind the patient
        time.sleep(2.5)  # the patient's pass runs out again, and the other's turn comes
        assert other.get("/queue", follow_redirects=False).status_code == 303
        page = patient.get(doctor_page)
        assert page.url.path == "/queue" and requeued in page.text
        assert requeued not in patient.get("/queue").text  # said once


def test_release_leaves_a_hold_whose_payment_is_on_its_way(browser_session, fakes):
    """A page loaded before paying in another tab: the hold is still HELD, but its payment is pending. Releasing
    it would cancel a time the patient has paid for, against the dialog's promise that nothing is charged."""
    booking_id = _held(browser_session, "release-pending")
    page = browser_session.get(f"/bookings/{booking_id}")
    _pay(browser_session, booking_id)
    kept = browser_session.post(f"/bookings/{booking_id}/cancel",
                                data={"csrf": csrf(page), "key": "rpend", "release": "1"})
    assert fakes["registration"].bookings[booking_id].status == reg.BOOKING_STATUS_HELD
    assert "未释放" in alert(kept) and "已收到付款，正在确认预约" in kept.text


def test_my_bookings_lists_a_hold_past_its_time_as_expired_not_upcoming(browser_session, fakes):
    booking_id = _held(browser_session, "lapsed-listed")
    booking = fakes["registration"].bookings[booking_id]
    booking.hold_expires_at = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=1)).isoformat()
    listed = browser_session.get("/bookings").text
    past = listed[listed.index("历史及已取消"):]
    row = re.search(rf'data-booking="{booking.booking_number}">.*?</li>', past, re.S)
    assert row and '<span class="status">已过期</span>' in row.group(0)

    # Paid just in time: its confirmation is on its way, as its own page says; not expired.
    paid_id = _held(browser_session, "lapsed-but-paid")
    _pay(browser_session, paid_id)
    paid = fakes["registration"].bookings[paid_id]
    paid.hold_expires_at = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=1)).isoformat()
    listed = browser_session.get("/bookings").text
    upcoming = listed[:listed.index("历史及已取消")]
    row = re.search(rf'data-booking="{paid.booking_number}">.*?</li>', upcoming, re.S)
    assert row and '<span class="status">已收到付款，正在确认预约…</span>' in row.group(0)
    assert "已收到付款，正在确认预约" in browser_session.get(f"/bookings/{paid_id}").text
