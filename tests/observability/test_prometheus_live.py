"""A real Prometheus (Debian's package) scraping the running platform with the
scrape jobs, relabelling and rule files of observability/prometheus, while
patients book and pay, a clinician's ticket goes from report to billable
worklog, and Alertmanager opens and resolves a ticket. Then every panel of
every dashboard must return data and every rule must evaluate without error:
a typo in a metric or label name, a wrong label the relabelling does not
give, or a query Prometheus rejects fails here, not on an SRE's screen.

A second Prometheus scrapes the same processes with a `namespace` on every
target, as the Prometheus Operator gives it: the dashboards must show data in
both (their namespace variable "", Grafana's None, where no series has one;
the namespace where they do), and nothing of that namespace's in another."""
from __future__ import annotations

import re
import time
import uuid

import httpx
import pytest
import yaml

from tests.e2e.journey import available_slots, department, key, log_a_minute, new_patient, sign_in, wait_booking
from tuoguan_common.launcher import DOMAIN_SERVICES, WORKER_SERVICES
from tuoguan_common.net import free_port

from .support import (
    DEPLOYMENT_LABEL, PROMETHEUS_YML, RULES_DIR, LiveServer, alert_rules, binary, hold_rule_reasons, load_yaml,
    panel_queries, render, rule_groups,
)

pytestmark = pytest.mark.integration

DATA_TIMEOUT = 45.0

# The namespace the second Prometheus gives every platform target, and one it
# has no series of. The dashboards' namespace variable is "" on the first
# Prometheus: its query finds no namespace, and Grafana gives a single-select
# variable without options its None option, value "" (`namespace=~""` selects
# the series without the label).
NAMESPACE = "production"
OTHER_NAMESPACE = "staging"


class Prometheus(LiveServer):
    def get(self, path: str, **params) -> dict:
        reply = self.client.get(path, params=params)
        assert reply.status_code == 200, f"{path}: {reply.status_code} {reply.text[:500]}"
        return reply.json()

    def query(self, expr: str) -> dict:
        """The instant query's whole answer (status, data or error)."""
        return self.client.post("/api/v1/query", data={"query": expr}).json()

    def wait(self, what: str, check, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"prometheus exited ({self.process.returncode}):\n{self.logs()}")
            try:
                last = check()
                if last is True:
                    return
            except httpx.HTTPError as exc:
                last = exc
            time.sleep(0.5)
        raise AssertionError(f"{what} within {timeout:.0f}s; last: {last}\n{self.logs()}")


def live_config(platform, own_port: int, namespace: str = "") -> dict:
    """prometheus.yml as it is (jobs, relabelling, honor_labels), but scraping
    the platform's real ports every second and evaluating the rules every second,
    and sending its alerts nowhere; with a namespace, given to every platform
    target (as the Prometheus Operator does)."""
    config = load_yaml(PROMETHEUS_YML)
    config["global"].update(scrape_interval="1s", scrape_timeout="1s", evaluation_interval="1s")
    # No Alertmanager runs here: the rules evaluate all the same, and nothing
    # tries to reach compose's `alertmanager` host.
    config.pop("alerting", None)
    config["rule_files"] = [str(RULES_DIR / "*.yml")]
    targets = {
        "tuoguan-api": [(platform.ports[f"{s}_metrics"], s, "api") for s in DOMAIN_SERVICES],
        "tuoguan-worker": [(platform.ports[f"{s}_worker_metrics"], s, "worker") for s in WORKER_SERVICES],
        "tuoguan-gateway": [(platform.ports["gateway_http"], "gateway", "gateway")],
        "prometheus": [(own_port, None, None)],
    }
    jobs = config["scrape_configs"]
    assert {j["job_name"] for j in jobs} == set(targets), \
        "prometheus.yml's jobs changed: tell this test where their targets run"
    for job in jobs:
        job["static_configs"] = [
            {"targets": [f"127.0.0.1:{port}"],
             **({"labels": {"service": s, "process": p, **({DEPLOYMENT_LABEL: namespace} if namespace else {})}}
                if s else {})}
            for port, s, p in targets[job["job_name"]]
        ]
    return config


def browse_the_portal(http: httpx.Client) -> None:
    """A patient's look at a doctor's slots: the waiting room and both portal caches at work."""
    home = http.get("/")
    assert home.status_code == 200
    department_page = re.search(r'href="(/departments/[^"/]+)"', home.text).group(1)
    doctor = re.search(r'href="(/departments/[^"/]+/doctors/[^"/]+)"', http.get(department_page).text).group(1)
    assert http.get(doctor, follow_redirects=True).status_code == 200
    assert http.get(doctor, follow_redirects=True).status_code == 200


def book(http: httpx.Client, slot: dict, token: str) -> tuple[dict, dict]:
    patient = new_patient(http, name="赵六")
    held = http.post("/api/v1/bookings", json={"slot_id": slot["slot_id"]}, headers={**patient, **key()})
    assert held.status_code == 201, held.text
    booking = held.json()
    paid = http.post(f"/api/v1/bookings/{booking['booking_id']}/payment",
                     json={"payment_method_token": token}, headers={**patient, **key()})
    assert paid.status_code == 201, paid.text
    return patient, booking


def drive_bookings(http: httpx.Client, round_: int) -> None:
    """Two paid bookings (one then cancelled and refunded), one declined, one refused hold."""
    # Slots with room to spare, so the refused hold below is refused by a rule, not because the slot is full.
    slots = [s for s in available_slots(http, department(http, 6 + round_)) if s["remaining"] >= 3]
    assert len(slots) >= 3, "the seeded schedule has too few free slots"
    paid = [book(http, slot, "tok_ok") for slot in slots[-2:]]
    declined_patient, declined = book(http, slots[-3], "tok_decline")
    # The same patient at the slot they already hold: refused by a booking rule (counted by its reason).
    again = http.post("/api/v1/bookings", json={"slot_id": slots[-2]["slot_id"]}, headers={**paid[0][0], **key()})
    assert again.status_code == 409 and "slot_full" not in again.text, again.text
    for patient, booking in paid:
        wait_booking(http, patient, booking["booking_id"], lambda b: b["status"] == "confirmed")
    wait_booking(http, declined_patient, declined["booking_id"], lambda b: b["status"] != "held")
    patient, booking = paid[0]
    cancelled = http.post(f"/api/v1/bookings/{booking['booking_id']}/cancel", headers={**patient, **key()})
    assert cancelled.status_code == 200, cancelled.text
    wait_booking(http, patient, booking["booking_id"], lambda b: not b["refund_due"])
    refused = http.post("/api/v1/auth/signin", json={"login": "13800000001", "password": "not-the-password"})
    assert refused.status_code in (400, 401, 403), refused.text


def senior_engineer(http: httpx.Client) -> dict[str, str]:
    """A new engineer's account, graded senior by the demo admin, signed in."""
    admin = sign_in(http, "admin", "Admin1234")
    login = f"eng{uuid.uuid4().hex[:8]}"
    opened = http.post("/api/v1/admin/staff-accounts", headers={**admin, **key()}, json={
        "login": login, "password": "Engineer2026", "display_name": "郑浩", "roles": ["engineer"]})
    assert opened.status_code == 201, opened.text
    graded = http.put(f"/api/v1/admin/staff-accounts/{opened.json()['account_id']}/grade", headers=admin,
                      json={"grade": "senior"})
    assert graded.status_code == 200, graded.text
    return sign_in(http, login, "Engineer2026")


def drive_tickets(http: httpx.Client, round_: int) -> None:
    """A clinician's ticket from report to billable worklog; one alert opened and resolved by Alertmanager."""
    clinician = sign_in(http, "clinician", "Clinician1234")
    dispatcher = sign_in(http, "dispatcher", "Dispatcher1234")
    # Each round its own senior engineer (the demo one, then one of its own): a worklog on a fresh ticket is
    # this minute's and one engineer's worklogs may not overlap, while the minutes' rate wants one grade's
    # series to grow from one round to the next.
    engineer = sign_in(http, "engineer", "Engineer1234") if round_ == 0 else senior_engineer(http)
    engineer_id = http.get("/api/v1/me", headers=engineer).json()["account_id"]
    opened = http.post("/api/v1/tickets", headers={**clinician, **key()}, json={
        "kind": "incident", "subsystem_code": "PACS", "title": "影像调阅缓慢", "impact": "high",
        "urgency": "medium", "description": "CT images take a minute to open in clinic 5"})
    assert opened.status_code == 201, opened.text
    ticket_id = opened.json()["ticket_id"]

    def act(auth, action, **body):
        reply = http.post(f"/api/v1/tickets/{ticket_id}/actions/{action}", json=body, headers={**auth, **key()})
        assert reply.status_code == 200, reply.text

    act(dispatcher, "assign", assignee_id=engineer_id)
    act(engineer, "start")
    logged = log_a_minute(http, engineer, ticket_id, note="rebuilt the cache index")
    assert logged.status_code == 201, logged.text
    act(engineer, "resolve", note="cache index rebuilt")
    act(clinician, "confirm")

    admin = sign_in(http, "admin", "Admin1234")
    issued = http.post("/api/v1/admin/device-tokens", headers={**admin, **key()},
                       json={"device_name": "alertmanager", "valid_days": 1})
    assert issued.status_code == 201, issued.text
    device = {"Authorization": f"Bearer {issued.json()['access_token']}"}
    alert = {"status": "firing", "labels": {"alertname": "PacsStorageAlmostFull", "subsystem": "STORAGE",
                                            "severity": "warning"},
             "annotations": {"summary": "PACS archive volume 91% full"}, "startsAt": "2026-11-26T08:00:00Z",
             "endsAt": "0001-01-01T00:00:00Z", "fingerprint": uuid.uuid4().hex[:16]}
    body = {"version": "4", "status": "firing", "receiver": "tuoguan", "groupKey": "{}:{}", "alerts": [alert]}
    assert http.post("/api/v1/alertmanager/webhook", json=body, headers=device).status_code == 200
    resolved = {**body, "status": "resolved",
                "alerts": [{**alert, "status": "resolved", "endsAt": "2026-11-26T08:20:00Z"}]}
    assert http.post("/api/v1/alertmanager/webhook", json=resolved, headers=device).status_code == 200


# What the traffic above must show as a rate above zero: the platform's work
# arrives in Prometheus under the labels the dashboards and rules select.
TRAFFIC = {
    "gRPC calls of every api": [
        f'sum by (service) (rate(tuoguan_grpc_server_handled_total{{service="{s}", process="api"}}[1m])) > 0'
        for s in DOMAIN_SERVICES],
    "events handled by the registration and billing workers": [
        f'sum(rate(tuoguan_events_handled_total{{service="{s}", process="worker", outcome="ok"}}[1m])) > 0'
        for s in ("registration", "billing")],
    "bookings confirmed": ['sum(rate(tuoguan_registration_bookings_confirmed_total[1m])) > 0'],
    "holds held and refused by a rule": [
        'sum(rate(tuoguan_registration_holds_total{outcome="held"}[1m])) > 0',
        f'sum(rate(tuoguan_registration_holds_total{{outcome=~"{"|".join(sorted(hold_rule_reasons()))}"}}[1m])) > 0'],
    "payments captured, failed, refunded": [
        f'sum(rate(tuoguan_billing_payments_total{{outcome="{o}"}}[1m])) > 0' for o in ("captured", "failed")]
        + ['sum(rate(tuoguan_billing_refunds_total[1m])) > 0'],
    "events relayed by every worker": [
        f'sum(rate(tuoguan_outbox_relayed_total{{service="{s}", process="worker"}}[1m])) > 0'
        for s in ("registration", "billing", "ticketing")],
    "tickets opened and closed, time logged, an alert received": [
        'sum(rate(tuoguan_ticketing_tickets_opened_total{source="portal"}[1m])) > 0',
        'sum(rate(tuoguan_ticketing_tickets_closed_total{how="confirmed"}[1m])) > 0',
        'sum(rate(tuoguan_ticketing_worklog_minutes_total[1m])) > 0',
        'sum(rate(tuoguan_ticketing_alert_notifications_total{outcome="opened"}[1m])) > 0'],
    "portal pages through the waiting room": [
        'sum(rate(tuoguan_portal_waiting_room_checks_total{service="gateway", outcome="admitted"}[1m])) > 0',
        'sum(rate(tuoguan_gateway_http_requests_total{service="gateway", route="/"}[1m])) > 0'],
}


def targets_not_scraped(prometheus: Prometheus) -> list[str]:
    targets = prometheus.get("/api/v1/targets")["data"]["activeTargets"]
    expected = len(DOMAIN_SERVICES) + len(WORKER_SERVICES) + 2
    if len(targets) < expected:
        return [f"{len(targets)} of {expected} targets discovered"]
    return [f"{t['scrapeUrl']}: {t['health']} {t.get('lastError', '')}" for t in targets if t["health"] != "up"]


def idle_rates(prometheus: Prometheus) -> list[str]:
    return [query for queries in TRAFFIC.values() for query in queries
            if not prometheus.query(query).get("data", {}).get("result")]


def empty_panels(prometheus: Prometheus, namespace: str) -> list[str]:
    empty = []
    for name, title, ref, expr, variables in panel_queries():
        answer = prometheus.query(render(expr, variables, {DEPLOYMENT_LABEL: namespace}))
        if answer.get("status") != "success" or not answer["data"]["result"]:
            empty.append(f"{name} / {title} {ref}")
    return empty


def unhealthy_rules(prometheus: Prometheus) -> list[str]:
    groups = prometheus.get("/api/v1/rules")["data"]["groups"]
    return [f"{g['name']}/{r['name']}: {r['health']} {r.get('lastError', '')}"
            for g in groups for r in g["rules"] if r["health"] != "ok"] or (
        ["no rule group loaded"] if not groups else [])


def start_prometheus(platform, work, namespace: str) -> Prometheus:
    port = free_port()
    config = work / "prometheus.yml"
    config.write_text(yaml.safe_dump(live_config(platform, port, namespace), sort_keys=False))
    return Prometheus(
        [binary("prometheus"), f"--config.file={config}", f"--storage.tsdb.path={work / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
        port, work / "prometheus.log", client_timeout=10)


@pytest.fixture(scope="module")
def prometheuses(platform, tmp_path_factory) -> dict[str, Prometheus]:
    """Two Prometheus servers scraping the platform while the same traffic
    runs, by the namespace their targets carry: "" (none, as compose's and
    the chart's own) and NAMESPACE (as the Prometheus Operator's)."""
    servers = {}
    try:
        for namespace in ("", NAMESPACE):
            servers[namespace] = start_prometheus(
                platform, tmp_path_factory.mktemp(f"prometheus-{namespace or 'none'}"), namespace)
        for server in servers.values():
            server.wait("Prometheus ready", lambda: server.client.get("/-/ready").status_code == 200 or "not ready", 20)
            # Prometheus syncs its targets a few seconds after start: the traffic
            # must come after the first scrape of every process, or every rate is 0.
            server.wait("every target scraped", lambda: not targets_not_scraped(server) or targets_not_scraped(server), 30)
        # Two rounds: a counter's series appears at its first increment, and
        # rate() only counts what it sees happen after its first sample.
        with httpx.Client(base_url=platform.gateway_url, timeout=15) as http:
            for round_ in range(2):
                browse_the_portal(http)
                drive_bookings(http, round_)
                drive_tickets(http, round_)
                time.sleep(1.5)
        for namespace, server in servers.items():
            server.wait("every rule evaluated", lambda: not unhealthy_rules(server) or unhealthy_rules(server), 20)
            server.wait("the traffic in the rates", lambda: not idle_rates(server) or idle_rates(server), DATA_TIMEOUT)
            server.wait(f"every panel with data in namespace {namespace!r}",
                        lambda: not empty_panels(server, namespace) or empty_panels(server, namespace), DATA_TIMEOUT)
        yield servers
    finally:
        for server in servers.values():
            server.stop()


@pytest.fixture(scope="module")
def prometheus(prometheuses) -> Prometheus:
    """The Prometheus whose targets carry no namespace, as compose's."""
    return prometheuses[""]


def test_every_target_is_up_with_the_labels_the_rules_use(prometheus):
    targets = prometheus.get("/api/v1/targets")["data"]["activeTargets"]
    down = [(t["labels"], t.get("lastError")) for t in targets if t["health"] != "up"]
    assert not down, f"targets down: {down}"
    seen = {(t["labels"]["job"], t["labels"].get("service"), t["labels"].get("process")) for t in targets}
    expected = ({("tuoguan-api", s, "api") for s in DOMAIN_SERVICES}
                | {("tuoguan-worker", s, "worker") for s in WORKER_SERVICES}
                | {("tuoguan-gateway", "gateway", "gateway"), ("prometheus", None, None)})
    assert seen == expected
    # honor_labels: the metrics' own `service` label is kept, not renamed to exported_service.
    answer = prometheus.query('count(tuoguan_grpc_server_handled_total{exported_service!=""}) or vector(0)')
    assert answer["data"]["result"][0]["value"][1] == "0"


def test_every_rule_group_is_loaded_and_healthy(prometheus):
    groups = {g["name"]: g for g in prometheus.get("/api/v1/rules")["data"]["groups"]}
    for path, group in rule_groups():
        assert group["name"] in groups, f"{path.name}: group {group['name']} not loaded"
        loaded = groups[group["name"]]
        assert [r["name"] for r in loaded["rules"]] == [r.get("alert") or r["record"] for r in group["rules"]]
        bad = [(r["name"], r["health"], r.get("lastError")) for r in loaded["rules"] if r["health"] != "ok"]
        assert not bad, f"{group['name']}: {bad}"


@pytest.mark.parametrize("what", sorted(TRAFFIC))
def test_the_traffic_shows_in_the_rates(prometheus, what):
    idle = [q for q in TRAFFIC[what] if not prometheus.query(q)["data"]["result"]]
    assert not idle, f"{what}: no rate above zero for {idle}"


# Alerts a healthy platform at rest must not even have pending, whatever the
# date and however loaded the machine: each is wrong here if it is pending.
QUIET = ["TuoguanServiceDown", "TuoguanServiceAbsent", "TuoguanOutboxRelayStalled", "TuoguanOutboxRelayErrors", "TuoguanEventsDeadLettered",
         "TuoguanEventsParked", "TuoguanEventHandlerFailing", "TuoguanTimerFailing", "TuoguanSlotsNearlySoldOut",
         "TuoguanWaitingRoomQueueLong", "TuoguanWaitingRoomUnavailable", "TuoguanPaymentsStuckUnknown",
         "TuoguanGateway5xxRatioHigh", "TuoguanGrpcErrorRatioHigh"]


def test_a_healthy_platform_raises_none_of_the_quiet_alerts(prometheus):
    assert set(QUIET) <= {r["alert"] for r in alert_rules()}
    raised = prometheus.query(f'ALERTS{{alertname=~"{"|".join(QUIET)}"}}')["data"]["result"]
    assert not raised, [r["metric"] for r in raised]


def test_the_calendar_alert_reads_only_the_ticketing_worker(prometheus):
    """Every process serves the calendar gauge (0 where unset): the alert must see the worker's figure only."""
    (rule,) = [r for r in alert_rules() if r["alert"] == "TuoguanCalendarHolidaysUnknown"]
    inner = rule["expr"].rsplit("<", 1)[0]
    answer = prometheus.query(inner)["data"]["result"]
    assert [r["metric"].get("service") for r in answer] == ["ticketing"]
    assert float(answer[0]["value"][1]) > 0, "the ticketing worker has not measured the calendar"


PANEL_IDS = [f"{d.removesuffix('.json')}:{t}:{r}" for d, t, r, _e, _v in panel_queries()]


@pytest.mark.parametrize("namespace", ["", NAMESPACE], ids=["no-namespace", "namespace"])
@pytest.mark.parametrize("dashboard,title,ref,expr,variables", panel_queries(), ids=PANEL_IDS)
def test_dashboard_panel_returns_data(prometheuses, namespace, dashboard, title, ref, expr, variables):
    query = render(expr, variables, {DEPLOYMENT_LABEL: namespace})
    answer = prometheuses[namespace].query(query)
    assert answer.get("status") == "success", f"{dashboard} / {title} {ref}: {answer.get('error')}\n{query}"
    assert answer["data"]["result"], f"{dashboard} / {title} {ref} returns no data:\n{query}"


@pytest.mark.parametrize("dashboard,title,ref,expr,variables", panel_queries(), ids=PANEL_IDS)
def test_dashboard_panel_shows_nothing_of_another_namespace(prometheuses, dashboard, title, ref, expr, variables):
    """The namespaced Prometheus has every platform series in NAMESPACE: with
    another namespace chosen, a panel shows nothing (or the 0 of an `or
    vector(0)`), never NAMESPACE's figures."""
    query = render(expr, variables, {DEPLOYMENT_LABEL: OTHER_NAMESPACE})
    answer = prometheuses[NAMESPACE].query(query)
    assert answer.get("status") == "success", f"{dashboard} / {title} {ref}: {answer.get('error')}\n{query}"
    shown = [r for r in answer["data"]["result"] if r["metric"] or float(r["value"][1]) != 0]
    assert not shown, f"{dashboard} / {title} {ref} shows {NAMESPACE}'s series in {OTHER_NAMESPACE}:\n{query}\n{shown}"


@pytest.mark.parametrize("rule", alert_rules(), ids=[r["alert"] for r in alert_rules()])
def test_alert_expression_evaluates(prometheus, rule):
    answer = prometheus.query(rule["expr"])
    assert answer.get("status") == "success", f"{rule['alert']}: {answer.get('error')}"
