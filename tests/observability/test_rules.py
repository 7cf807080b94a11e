"""The Prometheus configuration and rules, checked by the real promtool
(Debian's `prometheus` package): the scrape config, the recording and alert
rules, and their unit tests; and what promtool cannot know: every alert has
its summary, description, severity and a runbook in the repository, and is
unit-tested both firing and silent; every expression reads declared metrics."""
from __future__ import annotations

import re
import subprocess

import pytest
import yaml

from .support import (
    DEPLOYMENT_SERIES, PROMETHEUS_YML, REPO, RULE_TESTS_DIR, RULES_DIR, RUNBOOKS_DIR, alert_rules, binary,
    exposed_metric_names, hold_rule_reasons, matched_outcomes,
    load_yaml, metric_names_in, recording_rules, rule_files, rule_tests, unowned_gauge_reads,
)

RUNBOOK_SECTIONS = ("## What it means", "## Impact on patients and staff", "## How to check", "## How to fix")
SEVERITIES = {"critical", "warning"}


def promtool(*args: str) -> str:
    done = subprocess.run([binary("promtool"), *args], capture_output=True, text=True, timeout=120, cwd=REPO)
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"promtool {' '.join(args)} failed:\n{output}"
    return output


def test_promtool_accepts_the_scrape_config_and_the_rules_it_loads():
    output = promtool("check", "config", str(PROMETHEUS_YML))
    for path in rule_files():
        assert path.name in output, f"prometheus.yml does not load {path.name}:\n{output}"


def test_promtool_accepts_every_rule_file():
    assert rule_files(), f"no rule files in {RULES_DIR}"
    promtool("check", "rules", *map(str, rule_files()))


def test_promtool_unit_tests_of_the_alerts_pass():
    tests = sorted(RULE_TESTS_DIR.glob("*.yml"))
    assert tests, f"no promtool unit tests in {RULE_TESTS_DIR}"
    output = promtool("test", "rules", *map(str, tests))
    assert "FAILED" not in output, output


def test_every_alert_carries_the_namespace_of_the_series_it_is_about(tmp_path):
    """The same unit tests, every series in a namespace (as the Prometheus
    Operator labels targets): each alert must carry it, or an inhibition tied
    by it (alertmanager.yml) compares a namespace with nothing, and one
    Prometheus watching two releases mixes their figures into one alert."""
    files = []
    for path, doc in rule_tests(namespace="tuoguan-production"):
        files.append(tmp_path / path.name)
        files[-1].write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))
    output = promtool("test", "rules", *map(str, files))
    assert "FAILED" not in output, output


def test_every_alert_has_a_summary_a_description_a_severity_and_a_runbook():
    names = [rule["alert"] for rule in alert_rules()]
    assert len(names) == len(set(names)), "an alert name is used twice"
    problems = []
    for rule in alert_rules():
        name = rule["alert"]
        annotations = rule.get("annotations", {})
        for key in ("summary", "description", "runbook_url"):
            if not str(annotations.get(key, "")).strip():
                problems.append(f"{name}: no {key} annotation")
        if rule.get("labels", {}).get("severity") not in SEVERITIES:
            problems.append(f"{name}: severity must be one of {sorted(SEVERITIES)}")
        if not name.startswith("Tuoguan"):
            problems.append(f"{name}: alert names start with Tuoguan (the dashboards count firing Tuoguan.* alerts)")
        expected = f"docs/runbooks/{name}.md"
        if annotations.get("runbook_url") != expected:
            problems.append(f"{name}: runbook_url must be {expected}")
            continue
        runbook = REPO / expected
        if not runbook.is_file():
            problems.append(f"{name}: {expected} does not exist")
            continue
        text = runbook.read_text()
        problems += [f"{name}: {expected} has no '{s}' section" for s in RUNBOOK_SECTIONS if s not in text]
    assert not problems, "\n".join(problems)


def test_every_runbook_belongs_to_an_alert_and_is_in_the_index():
    alerts = {rule["alert"] for rule in alert_rules()}
    pages = {p.stem for p in RUNBOOKS_DIR.glob("*.md")} - {"README"}
    assert pages == alerts, f"runbooks without an alert: {sorted(pages - alerts)}; alerts without: {sorted(alerts - pages)}"
    index = (RUNBOOKS_DIR / "README.md").read_text()
    assert not [a for a in alerts if f"({a}.md)" not in index], "docs/runbooks/README.md misses an alert"


def test_every_alert_is_unit_tested_both_firing_and_silent():
    fired: set[str] = set()
    silent: set[str] = set()
    for path in RULE_TESTS_DIR.glob("*.yml"):
        for case in load_yaml(path)["tests"]:
            for check in case.get("alert_rule_test", []):
                (fired if check.get("exp_alerts") else silent).add(check["alertname"])
    alerts = {rule["alert"] for rule in alert_rules()}
    assert not alerts - fired, f"no promtool test where these alerts fire: {sorted(alerts - fired)}"
    assert not alerts - silent, f"no promtool test where these alerts stay silent: {sorted(alerts - silent)}"


def test_rules_read_only_declared_metrics_and_recorded_series():
    known = exposed_metric_names() | {rule["record"] for rule in recording_rules()} | DEPLOYMENT_SERIES
    unknown = {}
    for rule in alert_rules() + recording_rules():
        missing = metric_names_in(rule["expr"]) - known
        if missing:
            unknown[rule.get("alert") or rule["record"]] = sorted(missing)
    assert not unknown, f"series declared nowhere (tuoguan_common.metrics, recording rules): {unknown}"


def test_rules_read_unlabelled_gauges_from_the_process_that_sets_them():
    bad = {r.get("alert") or r["record"]: unowned_gauge_reads(r["expr"])
           for r in alert_rules() + recording_rules() if unowned_gauge_reads(r["expr"])}
    assert not bad, f"every process serves these gauges (0 where unset): select service and process: {bad}"


def test_recording_rules_are_named_level_metric_operations():
    bad = [r["record"] for r in recording_rules() if not re.fullmatch(r"[a-z_]+:tuoguan_[a-z0-9_]+:[a-z0-9_]+", r["record"])]
    assert not bad, f"recording rules not named level:metric:operations: {bad}"


@pytest.mark.parametrize("job", ["tuoguan-api", "tuoguan-worker", "tuoguan-gateway"])
def test_every_platform_job_gives_its_targets_service_and_process_labels(job):
    """The contract the rules and dashboards rely on (observability/README.md)."""
    jobs = {j["job_name"]: j for j in load_yaml(PROMETHEUS_YML)["scrape_configs"]}
    config = jobs[job]
    labels = set()
    for static in config.get("static_configs", []):
        labels |= set(static.get("labels", {}))
    labels |= {r.get("target_label") for r in config.get("relabel_configs", [])}
    assert {"service", "process"} <= labels, f"{job} does not set service and process on its targets"


def test_hold_refusals_count_the_booking_rules_reasons_and_nothing_else():
    """holds_busy (the api shedding holds in the 07:00 surge) and refusals of the
    caller are no rule's: the ratio names the rules' reasons one by one, over
    the attempts the rules judged."""
    reasons = hold_rule_reasons()
    assert reasons and not reasons & {"holds_busy", "unauthenticated", "permission_denied", "held"}
    records = {r["record"]: r["expr"] for r in recording_rules()}
    (judged,) = matched_outcomes(records["service:tuoguan_registration_holds_judged:rate5m"])
    assert judged == reasons | {"held", "slot_full"}
    (refused,) = matched_outcomes(records["service:tuoguan_registration_holds_refused:ratio_rate5m"])
    assert refused == reasons
    assert "!~" not in records["service:tuoguan_registration_holds_refused:ratio_rate5m"]
