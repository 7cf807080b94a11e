"""A real Alertmanager (Debian's `prometheus-alertmanager`) with the route and
inhibit_rules of observability/alertmanager/alertmanager.yml: alerts posted to
its API with the labels the rules give them (the promtool tests' exp_labels,
which promtool holds the rules to) come back inhibited while their cause fires
for the same namespace and service (and handler, queue), and not for another
one. No
platform needed: it starts in a second, and each test has its own."""
from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import httpx
import pytest
import yaml

from tuoguan_common.net import free_port

from .support import ALERTMANAGER_YML, DEPLOYMENT_LABEL, LiveServer, binary, fired_alerts, load_yaml, matches

TIMEOUT = 15.0


class Alertmanager(LiveServer):
    def post(self, *alerts: dict[str, str]) -> None:
        """Fires these alerts (label sets), as Prometheus sends them."""
        now = datetime.now(timezone.utc)
        body = [{"labels": labels, "annotations": {"summary": labels["alertname"]},
                 "startsAt": now.isoformat(), "endsAt": (now + timedelta(minutes=10)).isoformat(),
                 "generatorURL": "http://prometheus.invalid/graph"} for labels in alerts]
        reply = self.client.post("/api/v2/alerts", json=body)
        assert reply.status_code == 200, f"POST /api/v2/alerts: {reply.status_code} {reply.text}"

    def inhibited_by(self) -> dict[frozenset, list[str]]:
        """Each active alert's labels -> the fingerprints of the alerts inhibiting it."""
        reply = self.client.get("/api/v2/alerts")
        assert reply.status_code == 200, f"GET /api/v2/alerts: {reply.status_code} {reply.text}"
        return {frozenset(a["labels"].items()): a["status"]["inhibitedBy"] for a in reply.json()}

    def settle(self, alerts: list[dict[str, str]], inhibited: list[dict[str, str]]) -> dict[frozenset, list[str]]:
        """Polls until all these alerts are listed and those `inhibited` are
        (the inhibitor learns of its sources asynchronously); returns the last
        answer. The caller asserts on it: one inhibited that should not be
        fails there, not by a timeout."""
        deadline = time.monotonic() + TIMEOUT
        while True:
            if self.process.poll() is not None:
                raise AssertionError(f"alertmanager exited ({self.process.returncode}):\n{self.logs()}")
            seen = self.inhibited_by()
            if all(frozenset(a.items()) in seen for a in alerts) and all(seen[frozenset(a.items())]
                                                                         for a in inhibited):
                return seen
            if time.monotonic() > deadline:
                return seen
            time.sleep(0.1)


def live_config() -> dict:
    """alertmanager.yml's route and inhibit_rules as they are; the receivers
    kept by name but sending nowhere (their secret files and the gateway are
    not here, and nothing must leave this machine)."""
    config = load_yaml(ALERTMANAGER_YML)
    config["receivers"] = [{"name": r["name"]} for r in config["receivers"]]
    return config


@pytest.fixture
def alertmanager(tmp_path):
    port = free_port()
    config = tmp_path / "alertmanager.yml"
    config.write_text(yaml.safe_dump(live_config(), sort_keys=False))
    server = Alertmanager(
        [binary("alertmanager", "prometheus-alertmanager"), f"--config.file={config}",
         f"--storage.path={tmp_path / 'data'}", f"--web.listen-address=127.0.0.1:{port}",
         "--cluster.listen-address=", "--log.level=warn"],
        port, tmp_path / "alertmanager.log", client_timeout=5)
    process = server.process
    try:
        deadline = time.monotonic() + TIMEOUT
        while True:
            if process.poll() is not None:
                raise AssertionError(f"alertmanager exited ({process.returncode}):\n{server.logs()}")
            try:
                if server.client.get("/-/ready").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, f"alertmanager not ready within {TIMEOUT:.0f}s:\n{server.logs()}"
            time.sleep(0.1)
        yield server
    finally:
        server.stop()


def fired(alertname: str, **labels: str) -> dict[str, str]:
    """The first label set a promtool test expects `alertname` to fire with
    (and these labels, when given)."""
    for alert in fired_alerts():
        if alert["alertname"] == alertname and labels.items() <= alert.items():
            return alert
    raise AssertionError(f"no promtool test fires {alertname} with {labels}")


def other(labels: dict[str, str], **changed: str) -> dict[str, str]:
    return {**labels, **changed}


def test_a_parked_events_alert_is_quiet_while_its_dead_lettering_fires(alertmanager):
    """One parked event fires both: TuoguanEventsDeadLettered (outcome parked)
    tells it, its handler's TuoguanEventsParked is inhibited. Another
    handler's parking queue, of the same service or another, is not."""
    cause = fired("TuoguanEventsDeadLettered", service="ticketing", handler="on_booking_confirmed", outcome="parked")
    parked = fired("TuoguanEventsParked", service="ticketing", handler="on_booking_confirmed")
    # The same event, as the rules label it: the service and the handler tie them.
    assert (cause["service"], cause["handler"]) == (parked["service"], parked["handler"])
    assert "queue" not in cause, "TuoguanEventsDeadLettered got a queue label: tie the inhibition by it"
    same_service = other(parked, handler="on_device_alarm",
                         queue="evt-specimens-DeviceAlarmRaised--ticketing.on_device_alarm.parked")
    other_service = other(parked, service="billing", handler="refund_rejected_payment",
                          queue="evt-registration-PaymentRejected--billing.refund_rejected_payment.parked")
    alerts = [cause, parked, same_service, other_service]
    alertmanager.post(*alerts)
    seen = alertmanager.settle(alerts, inhibited=[parked])
    status = {name: seen.get(frozenset(a.items())) for name, a in
              [("cause", cause), ("parked", parked), ("same service", same_service), ("other service", other_service)]}
    assert None not in status.values(), f"alerts not listed: {status}\n{alertmanager.logs()}"
    assert status["parked"], f"TuoguanEventsParked not inhibited by TuoguanEventsDeadLettered: {status}"
    assert status == {"cause": [], "parked": status["parked"], "same service": [], "other service": []}, status


def test_only_parked_dead_lettering_quiets_its_handlers_parking_queue(alertmanager):
    """An event dead-lettered or malformed is in the dead_letters table: its
    TuoguanEventsDeadLettered says nothing of the handler's parking queue, whose
    TuoguanEventsParked is heard. A parked one, of another handler, still
    quiets that handler's."""
    parked_cause = fired("TuoguanEventsDeadLettered", service="ticketing", handler="on_booking_confirmed",
                         outcome="parked")
    parked = fired("TuoguanEventsParked", service="ticketing", handler="on_booking_confirmed")
    dead_lettered = fired("TuoguanEventsDeadLettered", outcome="dead_lettered")
    malformed = fired("TuoguanEventsDeadLettered", outcome="malformed")
    queues = {"refund_rejected_payment": "evt-registration-PaymentRejected--billing.refund_rejected_payment.parked",
              "on_payment_captured": "evt-billing-PaymentCaptured--registration.on_payment_captured.parked"}
    beside = {name: other(parked, service=cause["service"], handler=cause["handler"], queue=queues[cause["handler"]])
              for name, cause in [("dead_lettered", dead_lettered), ("malformed", malformed)]}
    alerts = [parked_cause, parked, dead_lettered, malformed, *beside.values()]
    alertmanager.post(*alerts)
    seen = alertmanager.settle(alerts, inhibited=[parked])
    status = {name: seen.get(frozenset(a.items())) for name, a in
              [("parked", parked), ("beside dead_lettered", beside["dead_lettered"]),
               ("beside malformed", beside["malformed"])]}
    assert None not in status.values(), f"alerts not listed: {status}\n{alertmanager.logs()}"
    assert status["parked"], f"TuoguanEventsParked not inhibited by its parked events' alert: {status}"
    assert status["beside dead_lettered"] == [], f"dead-lettered events quiet the parking queue: {status}"
    assert status["beside malformed"] == [], f"malformed events quiet the parking queue: {status}"


def test_the_parked_events_alert_speaks_once_its_dead_lettering_is_resolved(alertmanager):
    """Events still parked when TuoguanEventsDeadLettered clears are alerted then."""
    cause = fired("TuoguanEventsDeadLettered", service="ticketing", handler="on_booking_confirmed", outcome="parked")
    parked = fired("TuoguanEventsParked", service="ticketing", handler="on_booking_confirmed")
    alertmanager.post(cause, parked)
    assert alertmanager.settle([cause, parked], inhibited=[parked])[frozenset(parked.items())]
    now = datetime.now(timezone.utc).isoformat()
    reply = alertmanager.client.post("/api/v2/alerts", json=[{"labels": cause, "startsAt": now, "endsAt": now}])
    assert reply.status_code == 200, reply.text
    deadline = time.monotonic() + TIMEOUT
    while alertmanager.inhibited_by().get(frozenset(parked.items())):
        assert time.monotonic() < deadline, "TuoguanEventsParked still inhibited by a resolved alert"
        time.sleep(0.1)


def example(matchers: list[str], unlike: list[str], namespace: str | None = None) -> dict[str, str]:
    """The first label set the rules fire with (in that namespace: rule_tests)
    that the matchers select (and `unlike` does not)."""
    for alert in fired_alerts(namespace):
        if matches(matchers, alert) and not matches(unlike, alert):
            return alert
    raise AssertionError(f"no promtool test fires an alert {matchers} selects")


INHIBIT_RULES = load_yaml(ALERTMANAGER_YML)["inhibit_rules"]
ABSENT = ['alertname="TuoguanServiceAbsent"']
STAGING, PRODUCTION = "tuoguan-staging", "tuoguan-production"


def test_a_component_absent_in_staging_quiets_staging_only(alertmanager):
    """Staging and production send to one Alertmanager. A component absent in
    staging quiets staging's warnings of that service, not production's; the
    same component absent in production then quiets production's too."""
    (rule,) = [r for r in INHIBIT_RULES if r["source_matchers"] == ABSENT]
    absent = example(ABSENT, rule["target_matchers"], namespace=STAGING)
    assert absent[DEPLOYMENT_LABEL] == STAGING, absent
    warning = example(rule["target_matchers"], ABSENT, namespace=PRODUCTION)
    production = other(warning, service=absent["service"])
    staging = other(production, **{DEPLOYMENT_LABEL: STAGING})
    alerts = [absent, production, staging]
    alertmanager.post(*alerts)
    seen = alertmanager.settle(alerts, inhibited=[staging])
    status = {name: seen.get(frozenset(a.items())) for name, a in
              [("staging", staging), ("production", production)]}
    assert None not in status.values(), f"alerts not listed: {status}\n{alertmanager.logs()}"
    assert status["staging"], f"staging's warning not inhibited by its own absent component: {status}"
    assert status["production"] == [], f"staging's absent component quiets production: {status}"

    absent_in_production = other(absent, **{DEPLOYMENT_LABEL: PRODUCTION})
    alertmanager.post(absent_in_production)
    seen = alertmanager.settle([absent_in_production, production], inhibited=[production])
    assert seen.get(frozenset(production.items())), \
        f"production's warning not inhibited by production's absent component: {seen}"
    assert seen.get(frozenset(absent_in_production.items())) == [], seen


@pytest.mark.parametrize("rule", INHIBIT_RULES, ids=[r["source_matchers"][0] for r in INHIBIT_RULES])
def test_every_inhibition_quiets_its_consequence_with_the_same_labels_only(alertmanager, rule):
    """The cause as the rules fire it in a namespace; its consequence with the
    cause's `equal` labels is inhibited, the same with any one of them
    different (another namespace, service, ...) is not."""
    cause = example(rule["source_matchers"], rule["target_matchers"], namespace=PRODUCTION)
    missing = [label for label in rule["equal"] if label not in cause]
    assert not missing, f"{cause['alertname']} has no {missing}: this inhibition never applies"
    consequence = example(rule["target_matchers"], rule["source_matchers"], namespace=PRODUCTION)
    consequence = other(consequence, **{label: cause[label] for label in rule["equal"]})
    elsewhere = [other(consequence, **{label: consequence[label] + "-elsewhere"}) for label in rule["equal"]]
    alerts = [cause, consequence, *elsewhere]
    alertmanager.post(*alerts)
    seen = alertmanager.settle(alerts, inhibited=[consequence])
    assert seen.get(frozenset(cause.items())) == [], f"the cause itself is inhibited or missing: {seen}"
    assert seen.get(frozenset(consequence.items())), f"{consequence} not inhibited by {cause}: {seen}"
    for alert in elsewhere:
        assert seen.get(frozenset(alert.items())) == [], f"{alert} inhibited, or missing: {seen}"
