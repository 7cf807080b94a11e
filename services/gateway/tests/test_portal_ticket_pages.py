"""The O&M ticket pages over HTTP, against identity (real, with its demo
accounts) and a stand-in for ticketing: each role's pages render and land
where they should, the forms need their CSRF token and reach the service with
an idempotency key, a ticket goes from report to confirmation through the
pages, and every ticketing refusal reads as a Chinese sentence."""
from __future__ import annotations

import datetime as dt
import re
import uuid
from urllib.parse import urlsplit

import httpx
import pytest

from gateway.portal import i18n
from tuoguan.ticketing.v1 import ticketing_pb2 as tkt

pytestmark = pytest.mark.integration

PASSWORDS = {"clinician": "Clinician1234", "dispatcher": "Dispatcher1234", "engineer": "Engineer1234",
             "engineer2": "Engineer1234", "admin": "Admin1234", "office": "Office1234",
             "13800000001": "Patient1234"}
# Every reason the ticketing service gives (domain/lifecycle.py, store.py, exceptions.py).
TICKETING_REASONS = ["invalid_transition", "worklog_required", "not_requester", "not_assignee", "role_not_allowed",
                     "not_your_ticket", "ticket_closed", "ticket_not_found", "subsystem_not_found",
                     "subsystem_code_taken", "worklog_overlaps", "worklog_in_future", "engineer_not_graded",
                     "assignee_not_an_engineer", "staff_directory_unavailable", "worklog_before_ticket_opened"]
CHINESE = re.compile(r"[\u4e00-\u9fff]")


def csrf(page: httpx.Response) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)


def form_key(page: httpx.Response, action: str) -> str:
    """The idempotency key of the form posting to ``action``."""
    form = re.search(rf'<form method="post" action="{re.escape(action)}".*?</form>', page.text, re.S)
    assert form, f"no form for {action} on {page.url}"
    return re.search(r'name="key" value="([^"]+)"', form.group(0)).group(1)


def alerts(page: httpx.Response) -> list[str]:
    return re.findall(r'<p class="flash error" role="alert"(?: id="form-error")?>([^<]*)</p>', page.text)


def status_message(page: httpx.Response) -> str:
    found = re.search(r'<p class="flash success" role="status">([^<]*)</p>', page.text)
    assert found, page.text[-3000:]
    return found.group(1)


def zh(message: str) -> str:
    return i18n.translations("zh_CN").gettext(message)


def path_of(reply: httpx.Response) -> str:
    return urlsplit(str(reply.url)).path


@pytest.fixture
def portal(gateway_url):
    """Browser-like sessions (cookies, redirects followed) signed in as demo accounts: portal("clinician"),
    or as an account of the test's own with its password."""
    clients = []

    def sign_in(login: str, password: str | None = None) -> httpx.Client:
        client = httpx.Client(base_url=gateway_url, timeout=20, follow_redirects=True)
        clients.append(client)
        token = csrf(client.get("/signin"))
        page = client.post("/signin", data={"login": login, "password": password or PASSWORDS[login], "next": "/",
                                            "csrf": token})
        assert page.status_code == 200 and "退出登录" in page.text, page.text[-2000:]
        client.landing = page
        return client

    yield sign_in
    for client in clients:
        client.close()


def report(client: httpx.Client, **changes) -> httpx.Response:
    page = client.get("/tickets/new")
    data = {"csrf": csrf(page), "key": form_key(page, "/tickets"), "subsystem_code": "PACS",
            "kind": str(tkt.TICKET_KIND_INCIDENT), "title": "影像调阅缓慢", "description": "3 号诊室打开 CT 影像要一分钟",
            "impact": str(tkt.LEVEL_HIGH), "urgency": str(tkt.LEVEL_MEDIUM)}
    data.update(changes)
    return client.post("/tickets", data=data)


def ticket_id_of(page: httpx.Response) -> str:
    return re.search(r'data-ticket-id="([^"]+)"', page.text).group(1)


def assign_to(dispatcher: httpx.Client, ticket_id: str, engineer: str) -> None:
    """The dispatcher assigns the ticket to the engineer named as the ticket page's choice lists them."""
    engineer_id = re.search(r'<option value="([0-9a-f-]{36})">' + re.escape(engineer) + "</option>",
                            dispatcher.get(f"/tickets/{ticket_id}").text).group(1)
    act(dispatcher, ticket_id, "assign", assignee_id=engineer_id)


def staff_account(gateway_url: str, role: str, password: str, name: str) -> tuple[str, dict]:
    """A staff account of the test's own, opened by the demo admin through the API: (login, Account)."""
    login = f"{role[:4]}{uuid.uuid4().hex[:8]}"
    with httpx.Client(base_url=gateway_url, timeout=20) as http:
        admin = http.post("/api/v1/auth/signin", json={"login": "admin", "password": PASSWORDS["admin"]}).json()
        opened = http.post("/api/v1/admin/staff-accounts", json={
            "login": login, "password": password, "display_name": name, "roles": [role]},
            headers={"Authorization": f"Bearer {admin['access_token']}", "Idempotency-Key": uuid.uuid4().hex})
    assert opened.status_code == 201, opened.text
    return login, opened.json()


def act(client: httpx.Client, ticket_id: str, action: str, **fields) -> httpx.Response:
    page = client.get(f"/tickets/{ticket_id}")
    target = f"/tickets/{ticket_id}/actions/{action}"
    return client.post(target, data={"csrf": csrf(page), "key": form_key(page, target), **fields})


# ---- each role's pages ---------------------------------------------------------------------------

@pytest.mark.parametrize(("login", "landing"), [
    ("clinician", "/tickets"), ("engineer", "/tickets/queue"), ("dispatcher", "/tickets/board"), ("office", "/office"),
    ("13800000001", "/"),
])
def test_each_role_lands_on_its_own_page_after_sign_in(portal, login, landing):
    assert path_of(portal(login).landing) == landing


@pytest.mark.parametrize(("login", "href"), [
    ("clinician", "/tickets"), ("engineer", "/tickets/queue"), ("dispatcher", "/tickets/board"),
    ("admin", "/tickets/board"),
])
def test_the_header_links_the_ticket_pages_for_the_om_roles(portal, login, href):
    page = portal(login).get("/")
    assert f'<a href="{href}">报修</a>' in page.text


def test_patients_have_no_ticket_link_and_no_ticket_pages_and_the_office_reports_problems(portal):
    patient = portal("13800000001")
    assert "报修</a>" not in patient.get("/").text
    # The office has no worklist of tickets, but reports problems (its tickets are linked from the form).
    office = portal("office").get("/office").text
    assert ">报修</a>" not in office and '<a href="/tickets/new">我要报修</a>' in office
    for path in ("/tickets", "/tickets/new", "/tickets/queue", "/tickets/board"):
        page = patient.get(path)
        assert page.status_code == 403 and CHINESE.search(alerts(page)[0]), path


def test_ticket_pages_send_strangers_to_sign_in(gateway_url):
    with httpx.Client(base_url=gateway_url, timeout=20) as client:
        for path in ("/tickets", "/tickets/new", "/tickets/queue", "/tickets/board", "/tickets/tk-1"):
            reply = client.get(path)
            assert reply.status_code == 303 and reply.headers["location"] == f"/signin?next={path}", path


def test_a_clinician_sees_my_tickets_and_the_report_form(portal):
    clinician = portal("clinician")
    page = clinician.get("/tickets")
    assert page.status_code == 200 and "<h1>我的报修</h1>" in page.text
    form = clinician.get("/tickets/new")
    assert form.status_code == 200
    # Subsystems by category, with their Chinese names; the inactive ones are not offered.
    assert '<optgroup label="医技系统">' in form.text
    assert '<option value="PACS">影像归档和通信系统 (PACS)</option>' in form.text
    assert 'value="OA"' not in form.text
    # Every field labelled; impact and urgency explained in plain words.
    for field in ("subsystem_code", "title", "description"):
        assert f'<label for="{field}">' in form.text and f'id="{field}"' in form.text
    for explanation in (*i18n.IMPACT_HELP.values(), *i18n.URGENCY_HELP.values(), *i18n.TICKET_KIND_HELP.values()):
        assert zh(explanation) in form.text
    # Declaring a major incident is for the O&M team only.
    assert 'name="major_incident"' not in form.text


def test_open_tickets_are_not_a_doctors_session_running_normally(portal):
    """"Open" was one message for two things: a doctor's session running (正常出诊, the office's) and the
    clinician's tickets not closed yet, whose heading read 正常出诊. The tickets' is its own (context "tickets")."""
    clinician = portal("clinician")
    page = clinician.get("/tickets")
    assert "<h2>未关闭</h2>" in page.text and "<h2>已关闭</h2>" in page.text
    assert "正常出诊" not in page.text
    english = clinician.get("/language", params={"to": "en", "next": "/tickets"})
    assert "<h2>Open</h2>" in english.text and "<h2>Closed</h2>" in english.text
    # The office's day view: its sessions still run normally.
    office = portal("office").get("/office")
    assert "<td>正常出诊</td>" in office.text and "未关闭" not in office.text


def test_the_engineer_and_the_dispatcher_may_declare_a_major_incident(portal):
    for login in ("engineer", "dispatcher"):
        assert 'name="major_incident"' in portal(login).get("/tickets/new").text


def test_queue_and_board_are_for_their_roles(portal):
    clinician = portal("clinician")
    for path, message in (("/tickets/queue", "This page is for the O&M engineers."),
                          ("/tickets/board", "This page is for the O&M dispatchers.")):
        page = clinician.get(path)
        assert page.status_code == 403 and alerts(page) == [zh(message)]
    assert portal("engineer").get("/tickets/board").status_code == 403
    assert portal("engineer").get("/tickets/queue").status_code == 200


def test_english_once_chosen(portal):
    clinician = portal("clinician")
    page = clinician.get("/tickets/new", params={"lang": "en"})
    assert '<html lang="en">' in page.text and "<h1>Report a problem</h1>" in page.text
    assert "Picture archiving" in page.text or "PACS (PACS)" in page.text
    assert not CHINESE.search(re.sub(r"<option[^>]*>[^<]*</option>|简体中文", "", page.text))


# ---- a ticket through the pages ------------------------------------------------------------------

def test_a_ticket_from_report_to_confirmation_through_the_pages(portal, fakes):
    ticketing = fakes["ticketing"]
    clinician, dispatcher, engineer = portal("clinician"), portal("dispatcher"), portal("engineer")

    reported = report(clinician)
    assert reported.status_code == 200 and re.fullmatch(r"/tickets/tk-\d+", path_of(reported))
    ticket_id = ticket_id_of(reported)
    number = ticketing.tickets[ticket_id].number
    assert status_message(reported) == f"报修已受理，工单号 {number}，优先级：P2 高。"
    _, opened, metadata = ticketing.last("OpenTicket")
    assert (opened.subsystem_code, opened.impact, opened.urgency, opened.major_incident) == \
        ("PACS", tkt.LEVEL_HIGH, tkt.LEVEL_MEDIUM, False)
    assert opened.idempotency_key and metadata["authorization"].startswith("Bearer ")
    assert "新建，待派单" in reported.text and "尚未派单" in reported.text
    mine = clinician.get("/tickets")
    assert f'data-ticket="{number}"' in mine.text and "须在 " in mine.text  # "respond by" while new

    # The board: unassigned tickets stand out; the assign form is inline, with the engineers by name.
    board = dispatcher.get("/tickets/board")
    card = re.search(rf'<li class="ticket unassigned" data-ticket="{number}".*?</li>', board.text, re.S)
    assert card and "待派单" in card.group(0)
    engineers = {name: account for account, name in re.findall(
        r'<option value="([0-9a-f-]{36})">([^<]+)</option>', card.group(0))}
    assert {"周杰 (engineer)", "吴磊 (engineer2)"} <= set(engineers)
    target = f"/tickets/{ticket_id}/actions/assign"
    assert re.search(r'<label for="assign-\d+">派给</label>', card.group(0))
    assigned = dispatcher.post(target, data={"csrf": csrf(board), "key": form_key(board, target),
                                             "assignee_id": engineers["周杰 (engineer)"], "back": "/tickets/board"})
    assert path_of(assigned) == "/tickets/board" and status_message(assigned) == "工单已派给周杰。"
    assert ticketing.tickets[ticket_id].assignee_id == engineers["周杰 (engineer)"]
    assert not re.search(rf'<li class="ticket unassigned" data-ticket="{number}"', assigned.text)

    # The engineer: the queue, then start, log 30 minutes, resolve.
    queue = engineer.get("/tickets/queue")
    assert f'data-ticket="{number}"' in queue.text
    assert f'action="/tickets/{ticket_id}/actions/start"' in engineer.get(f"/tickets/{ticket_id}").text
    assert status_message(act(engineer, ticket_id, "start")) == "已开始处理，响应时间已记录。"
    assert ticketing.tickets[ticket_id].status == tkt.TICKET_STATUS_IN_PROGRESS
    detail = engineer.get(f"/tickets/{ticket_id}")
    for label in ("工作内容", "开始时间", "工时（分钟）", "工作记录"):
        assert re.search(rf'<label for="wl-[a-z]+">{re.escape(label)}</label>', detail.text), label
    # The grade is the account's (the demo engineer is senior): shown, not chosen.
    assert 'name="grade"' not in detail.text
    assert re.search(r'<p class="worklog-grade" id="wl-grade" data-grade="senior">您的人员级别：高级工程师。', detail.text)
    started = re.search(r'name="started_at" type="datetime-local" required value="([^"]+)"', detail.text).group(1)
    target = f"/tickets/{ticket_id}/worklogs"
    # A grade posted all the same (a form of an older page, a crafted post) is not passed on: the token's is.
    logged = engineer.post(target, data={"csrf": csrf(detail), "key": form_key(detail, target), "grade": "expert",
                                         "activity": "repair", "started_at": started, "minutes": "30",
                                         "note": "重建 PACS 缓存索引"})
    assert status_message(logged) == "已登记 30 分钟工时。"
    _, worklog, _ = ticketing.last("RecordWorklog")
    assert (worklog.grade, worklog.activity, worklog.minutes) == ("senior", "repair", 30)
    assert worklog.started_at == f"{started}:00+08:00"
    assert [w.grade for w in ticketing.worklogs[ticket_id]] == ["senior"]
    assert 'data-billable="no"' in logged.text
    row = re.search(r'<tr data-worklog=.*?</tr>', logged.text, re.S).group(0)
    assert "<td>高级工程师</td>" in row
    paused_sides = re.findall(r'name="pause_side" value="(\d)"', logged.text)
    assert paused_sides == ["1", "2", "3"] and "SLA 暂停计时" in logged.text
    resolved = act(engineer, ticket_id, "resolve", note="已重建缓存索引，调阅恢复正常")
    assert status_message(resolved) == "工单已解决，等待报修人确认。"
    assert ticketing.last("ChangeTicket")[1].note == "已重建缓存索引，调阅恢复正常"

    # The clinician: resolved, with the engineer's note; confirms; closed.
    page = clinician.get(f"/tickets/{ticket_id}")
    assert "已解决，待确认" in page.text and "已重建缓存索引，调阅恢复正常" in page.text
    assert "是的，已解决" in page.text and "没有，重新打开" in page.text
    assert 'id="worklogs"' not in page.text  # worklogs are the O&M team's
    confirmed = act(clinician, ticket_id, "confirm")
    assert status_message(confirmed) == "感谢您的确认，工单已关闭。"
    assert 'data-status="6"' in confirmed.text and "已关闭" in confirmed.text
    assert f'data-ticket="{number}"' in clinician.get("/tickets").text.split("<h2>已关闭</h2>")[1]
    # The O&M side sees the worklog billable now.
    assert 'data-billable="yes"' in engineer.get(f"/tickets/{ticket_id}").text


def test_an_engineer_without_a_grade_is_told_an_admin_must_set_it(portal, gateway_url, fakes):
    login, opened = staff_account(gateway_url, "engineer", "Engineer2026", "郑浩")
    assert opened["grade"] == ""
    clinician, dispatcher, ungraded = portal("clinician"), portal("dispatcher"), portal(login, "Engineer2026")
    ticket_id = ticket_id_of(report(clinician))
    act(dispatcher, ticket_id, "assign", assignee_id=opened["account_id"])

    page = ungraded.get(f"/tickets/{ticket_id}")
    section = re.search(r'<section class="action" id="log-work".*?</section>', page.text, re.S).group(0)
    assert '<p class="worklog-grade not-graded" id="wl-grade" data-grade="">' in section
    assert zh("Your account has no grade yet, so your time cannot be logged. An admin must set your grade; "
              "then sign out and sign in again.") in section
    assert "<form" not in section  # nothing to submit that could only be refused
    english = ungraded.get(f"/tickets/{ticket_id}", params={"lang": "en"})
    assert "An admin must set your grade" in english.text

    # Posted all the same: ticketing's refusal, in words, and nothing recorded.
    target = f"/tickets/{ticket_id}/worklogs"
    refused = ungraded.post(target, data={"csrf": csrf(page), "key": "ungraded", "activity": "repair",
                                          "started_at": "2026-11-26T08:00", "minutes": "30"})
    assert alerts(refused) == [zh(i18n.REASONS["engineer_not_graded"])]
    assert not fakes["ticketing"].worklogs.get(ticket_id)


def test_a_dispatcher_working_a_ticket_is_not_offered_a_worklog(portal, gateway_url, fakes):
    """Only engineers log time (ticketing refuses anyone else): a form that could only be refused is not shown."""
    login, opened = staff_account(gateway_url, "dispatcher", "Dispatcher2026", "钱进")
    clinician, dispatcher, desk = portal("clinician"), portal("dispatcher"), portal(login, "Dispatcher2026")
    ticket_id = ticket_id_of(report(clinician))
    act(dispatcher, ticket_id, "assign", assignee_id=opened["account_id"])
    page = desk.get(f"/tickets/{ticket_id}").text
    assert f'action="/tickets/{ticket_id}/actions/start"' in page
    assert 'id="log-work"' not in page


def test_a_ticketing_pod_from_before_grades_records_the_grade_in_the_token(portal, fakes, monkeypatch):
    """A rolling upgrade: this portal reaching a ticketing-api pod that still requires a grade in the
    request. The portal sends the one in the engineer's token (engineer2 is intermediate), never the form's."""
    clinician, dispatcher, engineer = portal("clinician"), portal("dispatcher"), portal("engineer2")
    ticket_id = ticket_id_of(report(clinician))
    assign_to(dispatcher, ticket_id, "吴磊 (engineer2)")
    page = engineer.get(f"/tickets/{ticket_id}")
    assert 'data-grade="intermediate"' in page.text
    monkeypatch.setattr(fakes["ticketing"], "before_grades", True)
    target = f"/tickets/{ticket_id}/worklogs"
    logged = engineer.post(target, data={"csrf": csrf(page), "key": form_key(page, target), "grade": "expert",
                                         "activity": "repair", "started_at": "2026-11-26T08:00", "minutes": "20"})
    assert status_message(logged) == "已登记 20 分钟工时。"
    assert fakes["ticketing"].last("RecordWorklog")[1].grade == "intermediate"
    assert [w.grade for w in fakes["ticketing"].worklogs[ticket_id]] == ["intermediate"]


def test_the_viewer_is_offered_only_their_own_steps(portal, fakes):
    clinician, dispatcher, engineer2 = portal("clinician"), portal("dispatcher"), portal("engineer2")
    ticket_id = ticket_id_of(report(clinician))
    prefix = f'action="/tickets/{ticket_id}/actions/'
    offered = {who: set(re.findall(re.escape(prefix) + r'(\w+)"', client.get(f"/tickets/{ticket_id}").text))
               for who, client in (("clinician", clinician), ("dispatcher", dispatcher), ("engineer2", engineer2))}
    assert offered == {"clinician": set(), "dispatcher": {"assign", "close"}, "engineer2": set()}
    # Everyone who sees the ticket may comment; the comment shows in the timeline.
    page = clinician.get(f"/tickets/{ticket_id}")
    target = f"/tickets/{ticket_id}/comments"
    commented = clinician.post(target, data={"csrf": csrf(page), "key": form_key(page, target),
                                             "body": "下午两点后可以上门"})
    assert status_message(commented) == "说明已添加。" and "下午两点后可以上门" in commented.text


def test_a_major_incident_from_a_clinician_is_not_declared(portal, fakes):
    report(portal("clinician"), major_incident="on")
    assert fakes["ticketing"].last("OpenTicket")[1].major_incident is False
    reported = report(portal("engineer"), major_incident="on")
    assert fakes["ticketing"].last("OpenTicket")[1].major_incident is True
    assert "P1 紧急" in reported.text and "重大故障" in reported.text


def test_a_double_submitted_report_opens_one_ticket(portal, fakes):
    clinician = portal("clinician")
    page = clinician.get("/tickets/new")
    data = {"csrf": csrf(page), "key": form_key(page, "/tickets"), "subsystem_code": "HIS", "kind": "1",
            "title": "挂号窗口无法打印", "impact": "2", "urgency": "1"}
    before = len(fakes["ticketing"].tickets)
    first, second = clinician.post("/tickets", data=data), clinician.post("/tickets", data=data)
    assert path_of(first) == path_of(second)
    assert len(fakes["ticketing"].tickets) == before + 1


# ---- refusals and CSRF ---------------------------------------------------------------------------

@pytest.mark.parametrize("reason", TICKETING_REASONS)
def test_every_ticketing_refusal_reads_as_a_chinese_sentence(portal, reason):
    engineer = portal("engineer")
    token = csrf(engineer.get("/tickets/queue"))
    reply = engineer.post(f"/tickets/refuse:{reason}/actions/start", data={"csrf": token, "key": reason},
                          follow_redirects=False)
    assert reply.status_code == 303 and reply.headers["location"] == f"/tickets/refuse:{reason}"
    page = engineer.get("/tickets/queue")  # the flashed message shows on the next page
    message = zh(i18n.REASONS[reason])
    assert alerts(page) == [message] and message != i18n.REASONS[reason] and CHINESE.search(message)
    assert reason not in page.text


def test_an_assignment_ticketing_refuses_as_no_engineers_is_a_sentence_and_leaves_the_ticket_waiting(
        portal, fakes, monkeypatch):
    """The board offers engineers only, but its list is a moment old: an account that is no engineer's (any
    more) is refused by ticketing, and the dispatcher reads why, in Chinese, back on the board."""
    ticketing = fakes["ticketing"]
    clinician, dispatcher = portal("clinician"), portal("dispatcher")
    ticket_id = ticket_id_of(report(clinician))
    number = ticketing.tickets[ticket_id].number
    board = dispatcher.get("/tickets/board")
    card = re.search(rf'<li class="ticket unassigned" data-ticket="{number}".*?</li>', board.text, re.S).group(0)
    engineer_id = re.search(r'<option value="([0-9a-f-]{36})">吴磊 \(engineer2\)</option>', card).group(1)
    monkeypatch.setattr(ticketing, "not_engineers", {engineer_id})
    target = f"/tickets/{ticket_id}/actions/assign"
    refused = dispatcher.post(target, data={"csrf": csrf(board), "key": form_key(board, target),
                                            "assignee_id": engineer_id, "back": "/tickets/board"})
    assert path_of(refused) == "/tickets/board"
    assert alerts(refused) == ["工单只能派给运维工程师，请从列表中选择一位工程师。"]
    assert ticketing.tickets[ticket_id].assignee_id == ""
    assert re.search(rf'<li class="ticket unassigned" data-ticket="{number}"', refused.text)
    # Identity not answering: nothing assigned, and the dispatcher is told to try again.
    monkeypatch.setattr(ticketing, "identity_down", True)
    board = dispatcher.get("/tickets/board")
    down = dispatcher.post(target, data={"csrf": csrf(board), "key": form_key(board, target),
                                         "assignee_id": engineer_id, "back": "/tickets/board"})
    assert alerts(down) == ["暂时无法核实该工程师，工单尚未派出，请稍后重试。"]
    assert ticketing.tickets[ticket_id].assignee_id == ""


@pytest.mark.parametrize("reason", ["not_your_ticket", "ticket_not_found"])
def test_a_ticket_the_viewer_may_not_see_is_a_page_with_a_sentence(portal, reason):
    page = portal("clinician").get(f"/tickets/refuse:{reason}")
    assert page.status_code in (403, 404) and alerts(page) == [zh(i18n.REASONS[reason])]


def test_someone_elses_ticket_and_a_malformed_id_are_refused_in_words(portal):
    ticket_id = ticket_id_of(report(portal("engineer")))
    page = portal("clinician").get(f"/tickets/{ticket_id}")
    assert page.status_code == 403 and alerts(page) == [zh(i18n.REASONS["permission_denied"])]
    assert portal("clinician").get("/tickets/nonexistent").status_code == 404


def test_a_refused_report_comes_back_as_typed_with_the_field_marked(portal):
    clinician = portal("clinician")
    page = report(clinician, subsystem_code="OA", title="OA 登录不了", description="提示密码错误")
    assert page.status_code == 400
    assert alerts(page) == ["请检查填写的内容：系统。"]
    assert 'value="OA 登录不了"' in page.text and "提示密码错误</textarea>" in page.text
    assert re.search(r'<select id="subsystem_code" name="subsystem_code" required aria-invalid="true"', page.text)


def test_a_worklog_with_bad_figures_is_refused_in_words(portal, fakes):
    clinician, dispatcher, engineer = portal("clinician"), portal("dispatcher"), portal("engineer")
    ticket_id = ticket_id_of(report(clinician))
    assign_to(dispatcher, ticket_id, "周杰 (engineer)")
    page = engineer.get(f"/tickets/{ticket_id}")
    target = f"/tickets/{ticket_id}/worklogs"
    fields = {"csrf": csrf(page), "activity": "repair", "started_at": "2026-11-26T08:00"}
    typed = engineer.post(target, data={**fields, "key": "a", "minutes": "half an hour"})
    assert alerts(typed) == ["请填写开始时间和所用的整数分钟数。"]
    refused = engineer.post(target, data={**fields, "key": "b", "minutes": "5000"})
    assert alerts(refused) == ["请检查填写的内容：工时（分钟）。"]
    # Too many for the proto's int32 even: the same words, from the portal itself.
    before = len(fakes["ticketing"].requests)
    too_many = engineer.post(target, data={**fields, "key": "d", "minutes": str(2**40)})
    assert too_many.status_code == 200 and path_of(too_many) == f"/tickets/{ticket_id}"
    assert alerts(too_many) == ["请检查填写的内容：工时（分钟）。"]
    assert not [r for r in fakes["ticketing"].requests[before:] if r[0] == "RecordWorklog"]
    unassigned = engineer.post(f"/tickets/{ticket_id}/actions/assign", data={"csrf": csrf(page), "key": "c"})
    assert alerts(unassigned) == ["请选择要派单的工程师。"]
    # An engineer never on the ticket: the rule as it is (one taken off it still logs the time worked).
    stranger = portal("engineer2")
    never_on = stranger.post(target, data={**fields, "csrf": csrf(stranger.get(f"/tickets/{ticket_id}")),
                                           "key": "e", "minutes": "30"})
    assert alerts(never_on) == ["只有当前或曾经被指派处理此工单的工程师才能登记工时。"]


def test_the_worklog_form_starts_no_earlier_than_the_tickets_opening(portal, fakes):
    """Half an hour ago, the form's default start, is before a ticket opened ten minutes ago, and ticketing
    refuses a worklog starting before the minute its ticket was opened: the form starts at that minute and
    offers nothing earlier; a start typed earlier all the same is refused in words, in either language."""
    ticketing = fakes["ticketing"]
    clinician, dispatcher, engineer = portal("clinician"), portal("dispatcher"), portal("engineer")
    ticket_id = ticket_id_of(report(clinician))
    assign_to(dispatcher, ticket_id, "周杰 (engineer)")
    opened = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=10)).replace(second=20, microsecond=0)
    ticketing.tickets[ticket_id].created_at = opened.isoformat()
    opened_minute = opened.astimezone(i18n.HOSPITAL_TIME)
    page = engineer.get(f"/tickets/{ticket_id}")
    start = re.search(r'<input id="wl-start"[^>]*>', page.text).group(0)
    assert f'value="{opened_minute:%Y-%m-%dT%H:%M}"' in start and f'min="{opened_minute:%Y-%m-%dT%H:%M}"' in start

    target = f"/tickets/{ticket_id}/worklogs"
    fields = {"csrf": csrf(page), "activity": "repair", "minutes": "5"}
    earlier = f"{opened_minute - dt.timedelta(minutes=1):%Y-%m-%dT%H:%M}"
    refused = engineer.post(target, data={**fields, "key": "before", "started_at": earlier})
    assert path_of(refused) == f"/tickets/{ticket_id}"
    assert alerts(refused) == ["只能登记报修之后的工时：开始时间不能早于报修时间。请检查开始时间。"]
    assert not ticketing.worklogs.get(ticket_id)
    engineer.get("/language", params={"to": "en", "next": f"/tickets/{ticket_id}"})
    refused = engineer.post(target, data={**fields, "key": "before-en", "started_at": earlier})
    assert alerts(refused) == [i18n.REASONS["worklog_before_ticket_opened"]]
    assert not ticketing.worklogs.get(ticket_id)

    # The form's own start is taken.
    logged = engineer.post(target, data={**fields, "key": "at-opening",
                                         "started_at": f"{opened_minute:%Y-%m-%dT%H:%M}"})
    assert status_message(logged) == "5 minutes of work are logged."
    assert [w.started_at for w in ticketing.worklogs[ticket_id]] == [f"{opened_minute:%Y-%m-%dT%H:%M}:00+08:00"]


def test_ticket_forms_without_their_csrf_token_change_nothing(portal, fakes):
    engineer = portal("engineer")
    before = len(fakes["ticketing"].requests)
    for path, data in (("/tickets", {"subsystem_code": "PACS", "title": "x", "kind": "1", "impact": "1",
                                     "urgency": "1"}),
                       ("/tickets/tk-1/actions/start", {}), ("/tickets/tk-1/comments", {"body": "x"}),
                       ("/tickets/tk-1/worklogs", {"activity": "repair", "minutes": "5"})):
        page = engineer.post(path, data={**data, "key": "no-csrf"})
        assert page.status_code == 403 and "表单已失效" in page.text, path
        page = engineer.post(path, data={**data, "key": "wrong-csrf", "csrf": "forged"})
        assert page.status_code == 403, path
    assert len(fakes["ticketing"].requests) == before


def test_an_unknown_action_is_not_found(portal):
    engineer = portal("engineer")
    token = csrf(engineer.get("/tickets/queue"))
    page = engineer.post("/tickets/tk-1/actions/explode", data={"csrf": token, "key": "x"})
    assert page.status_code == 404 and alerts(page) == [zh(i18n.REASONS["not_found"])]


def test_the_ticket_labels_are_in_chinese():
    for table in ("TICKET_STATUSES", "PRIORITIES", "TICKET_KINDS", "LEVELS", "PAUSE_SIDES", "TICKET_SOURCES",
                  "WORKLOG_GRADES", "WORKLOG_ACTIVITIES", "SUBSYSTEM_CATEGORIES", "TEAMS", "CLOCK_STOPPED",
                  "IMPACT_HELP", "URGENCY_HELP", "TICKET_KIND_HELP", "PAUSE_SIDE_HELP", "FIELDS"):
        for english in getattr(i18n, table).values():
            assert CHINESE.search(zh(english)), f"{table}: {english!r}"
    for reason in TICKETING_REASONS:
        assert reason in i18n.REASONS


def test_a_reopened_ticket_nobody_was_assigned_is_said_to_be_back_with_the_dispatchers(portal, fakes):
    clinician = portal("clinician")
    ticket_id = ticket_id_of(report(clinician))
    # Resolved by its alert's clearance before anyone was assigned (ticketing's machine path).
    fakes["ticketing"].tickets[ticket_id].status = tkt.TICKET_STATUS_RESOLVED
    reopened = act(clinician, ticket_id, "reopen")
    assert status_message(reopened) == "工单已重新打开，已退回调度员的看板。"


def header_of(page: httpx.Response) -> tuple[str, list[tuple[str, str]]]:
    """The header's site name and its links (address, text), sign-in and languages aside."""
    bar = re.search(r'<header class="top">(.*?)</header>', page.text, re.S).group(1)
    brand = re.search(r'<a class="brand" href="([^"]+)">([^<]*)</a>', bar)
    return f"{brand.group(1)} {brand.group(2)}", re.findall(r'<li><a href="(/[^"?]*)">([^<]*)</a></li>', bar)


@pytest.mark.parametrize("login, page, brand, links", [
    ("13800000001", "/bookings", "/ 托管肿瘤医院 · 预约挂号", [("/", "预约"), ("/bookings", "我的预约")]),
    ("office", "/office", "/office 托管肿瘤医院 · 员工服务",
     [("/office", "挂号处"), ("/tickets/new", "我要报修")]),
    ("clinician", "/tickets", "/tickets 托管肿瘤医院 · 员工服务", [("/tickets", "报修")]),
    ("engineer", "/tickets/queue", "/tickets/queue 托管肿瘤医院 · 员工服务",
     [("/tickets/queue", "报修")]),
    ("dispatcher", "/tickets/board", "/tickets/board 托管肿瘤医院 · 员工服务",
     [("/tickets/board", "报修")]),
    ("admin", "/office", "/ 托管肿瘤医院 · 员工服务",
     [("/office", "挂号处"), ("/tickets/board", "报修")]),
])
def test_the_header_gives_each_role_its_own_links_and_staff_no_patients_links(portal, login, page, brand, links):
    """Staff book no appointments: their header names their pages and the O&M pages (the office's had no way
    to report a problem), not the patients' 预约 / 我的预约, and the site is not called 预约挂号 on their pages."""
    assert header_of(portal(login).get(page)) == (brand, links)


def test_a_visitor_sees_the_patients_header(gateway_url):
    with httpx.Client(base_url=gateway_url, timeout=20) as client:
        assert header_of(client.get("/")) == ("/ 托管肿瘤医院 · 预约挂号", [("/", "预约")])


def test_the_report_form_asks_for_no_patients_identifying_information_in_both_languages(portal):
    """Clinicians describe problems in free text, and a ticket is read by the O&M team and the vendors: the
    form asks them to leave patients' names and numbers out, and the title and description point to that."""
    clinician = portal("clinician")
    page = clinician.get("/tickets/new").text
    hint = re.search(r'<p class="hint" id="privacy-hint">([^<]*)</p>', page)
    assert hint and all(word in hint.group(1) for word in ("患者", "姓名", "身份证号", "病历号", "标题", "描述"))
    for field in ("title", "description"):
        assert re.search(rf'id="{field}"[^>]*aria-describedby="privacy-hint"', page), field
    # A refused form names its error first, and still the hint.
    refused = report(clinician, title=" ")
    assert re.search(r'id="title"[^>]*aria-describedby="form-error privacy-hint"', refused.text)
    clinician.get("/language", params={"to": "en", "next": "/"})
    english = re.search(r'<p class="hint" id="privacy-hint">([^<]*)</p>', clinician.get("/tickets/new").text)
    assert english and "name, ID card number, medical record number" in english.group(1)


def test_a_report_the_service_cannot_take_now_is_a_503_with_the_form_kept(portal):
    """A refusal is the reporter's to correct (400); a service that could not answer is an outage, which
    monitors and proxies must see as one (503). Either way the form comes back as typed."""
    clinician = portal("clinician")
    refused = report(clinician, title="")
    assert refused.status_code == 400
    down = report(clinician, title="ticketing-down")
    assert down.status_code == 503 and alerts(down) == [zh(i18n.REASONS["unavailable"])]
    assert "3 号诊室打开 CT 影像要一分钟" in down.text
