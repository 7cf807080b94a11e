"""observability/alertmanager/alertmanager.yml, checked by the real amtool
(Debian's `prometheus-alertmanager`): a configuration Alertmanager accepts,
which sends every alert of the rules somewhere. The O&M desk's own alerts and
those about the ticketing service reach people only, the critical ones people
and a ticket, the rest a ticket; the tickets go to the gateway's webhook with
a device token, under a subsystem ticketing knows (it ignores any other)."""
from __future__ import annotations

import json
import subprocess
from urllib.parse import urlsplit

import pytest

from gateway.routes import API_PREFIX
from gateway.routes.tickets import WEBHOOK_PATH
from tuoguan_common.config import PORTS

from .support import (
    ALERTMANAGER_YML, DEPLOYMENT_LABEL, REPO, alert_rules, binary, fired_alerts, load_yaml, matches,
)

PEOPLE, TICKETS = "oncall", "tickets"
SUBSYSTEMS = REPO / "services" / "ticketing" / "src" / "ticketing" / "subsystems.json"
SERVICES = ("identity", "registration", "billing", "ticketing", "gateway")


def amtool(*args: str) -> str:
    done = subprocess.run([binary("amtool"), *args], capture_output=True, text=True, timeout=60, cwd=REPO)
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"amtool {' '.join(args)} failed:\n{output}"
    return done.stdout


def receivers_for(labels: dict[str, str]) -> set[str]:
    """The receivers Alertmanager's routing tree sends an alert with these labels to."""
    out = amtool("config", "routes", "test", f"--config.file={ALERTMANAGER_YML}",
                 *(f"{k}={v}" for k, v in sorted(labels.items())))
    return set(out.strip().split(","))


def config() -> dict:
    return load_yaml(ALERTMANAGER_YML)


def receiver(name: str) -> dict:
    (found,) = [r for r in config()["receivers"] if r["name"] == name]
    return found


def expected_receivers(labels: dict[str, str]) -> set[str]:
    if labels.get("desk") == "om" or labels.get("service") == "ticketing":
        return {PEOPLE}
    if labels["severity"] == "critical":
        return {PEOPLE, TICKETS}
    return {TICKETS}


def test_amtool_accepts_the_configuration():
    output = amtool("check-config", str(ALERTMANAGER_YML))
    assert "SUCCESS" in output, output


@pytest.mark.parametrize("rule", alert_rules(), ids=[r["alert"] for r in alert_rules()])
def test_every_alert_goes_to_people_or_a_ticket_as_the_desk_needs(rule):
    """Every service an alert can be about (a rule that names its service: that one)."""
    static = {"alertname": rule["alert"], **rule["labels"]}
    services = [static["service"]] if "service" in static else SERVICES
    for service in services:
        labels = {**static, "service": service}
        assert receivers_for(labels) == expected_receivers(labels), labels


def test_an_alert_nobody_labelled_still_reaches_a_ticket():
    assert receivers_for({"alertname": "SomethingNew"}) == {TICKETS}


def test_every_alert_bound_for_a_ticket_names_a_subsystem_ticketing_knows():
    catalogue = json.loads(SUBSYSTEMS.read_text())["subsystems"]
    active = {s["code"] for s in catalogue if s.get("active", True)}
    wrong = {}
    for rule in alert_rules():
        labels = rule["labels"]
        if labels.get("desk") == "om":
            continue  # people only
        if labels.get("subsystem") not in active:
            wrong[rule["alert"]] = labels.get("subsystem")
    assert not wrong, f"ticketing ignores an alert whose subsystem is not in {SUBSYSTEMS.name}: {wrong}"


def test_tickets_go_to_the_gateways_webhook_with_a_device_token():
    (webhook,) = receiver(TICKETS)["webhook_configs"]
    url = urlsplit(webhook["url"])
    assert url.path == API_PREFIX + WEBHOOK_PATH
    assert url.port == PORTS["gateway"]["http"]
    authorization = webhook["http_config"]["authorization"]
    assert authorization.get("type", "Bearer") == "Bearer"
    assert authorization.get("credentials_file") or authorization.get("credentials")
    # A resolution resolves the ticket; every alert of a group is sent (one left out opens no ticket).
    assert webhook.get("send_resolved", True) is True
    assert webhook.get("max_alerts", 0) == 0


def test_people_are_reached_through_configuration_not_a_made_up_address():
    (chat,) = receiver(PEOPLE)["slack_configs"]
    assert chat["api_url_file"].startswith("/etc/alertmanager/secrets/") and "api_url" not in chat
    assert chat.get("send_resolved") is True


def test_grouping_and_repeats_suit_on_call():
    route = config()["route"]
    assert set(route["group_by"]) == {"alertname", "namespace", "service"}
    critical = next(r for r in route["routes"] if r.get("matchers") == ['severity="critical"'])
    assert critical.get("continue") is True, "a critical alert is paged and ticketed"
    assert critical["repeat_interval"] == "1h"


def test_inhibitions_name_alerts_that_exist():
    names = {rule["alert"] for rule in alert_rules()}
    for rule in config()["inhibit_rules"]:
        for matcher in rule["source_matchers"] + rule["target_matchers"]:
            key, _, value = matcher.partition("=")
            if key == "alertname":
                assert set(value.lstrip("~").strip('"').split("|")) <= names, matcher


def test_inhibitions_tie_cause_and_consequence_by_labels_both_carry():
    """An `equal` label one side lacks compares "" with a value: the rule
    inhibits nothing (or, lacking on both, everything). Every alert a rule's
    matchers select, with the labels the rules give it (the promtool tests'),
    must carry each of its `equal` labels: in a deployment whose series carry
    a namespace (the same tests run in one, test_rules), all of them; in
    compose, whose series carry none, all but the namespace, which both sides
    then lack alike (one deployment)."""
    problems = []
    for alerts, exempt in [(fired_alerts(namespace="tuoguan-production"), set()),
                           (fired_alerts(), {DEPLOYMENT_LABEL})]:
        for rule in config()["inhibit_rules"]:
            sources = [a for a in alerts if matches(rule["source_matchers"], a)]
            targets = [a for a in alerts
                       if matches(rule["target_matchers"], a) and not matches(rule["source_matchers"], a)]
            assert sources and targets, f"no promtool test fires a source and a target of {rule}"
            for alert in sources + targets:
                if missing := set(rule["equal"]) - exempt - alert.keys():
                    problems.append(f"{alert['alertname']} has no {sorted(missing)}: {rule}")
    assert not problems, "\n".join(sorted(set(problems)))


def test_every_inhibition_holds_within_one_deployment():
    """Staging's and production's alerts may reach one Alertmanager: a cause in
    one must not quiet a consequence in the other."""
    unscoped = [rule for rule in config()["inhibit_rules"] if DEPLOYMENT_LABEL not in rule["equal"]]
    assert not unscoped, f"inhibitions not tied by {DEPLOYMENT_LABEL}: {unscoped}"
