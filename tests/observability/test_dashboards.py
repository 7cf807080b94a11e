"""The Grafana dashboards and provisioning: valid Grafana 10 dashboard JSON,
every panel on the datasource variable, every query reading declared
metrics and defined variables, provisioning that matches compose. (Whether
each query returns data is test_prometheus_live's job.)"""
from __future__ import annotations

import re

import pytest

from .support import (
    COMPOSE_FILE, DASHBOARDS_DIR, GRAFANA_DIR, all_panels, dashboards, exposed_metric_names, hold_rule_reasons,
    load_yaml, matched_outcomes, metric_names_in, recording_rules, template_variables, unowned_gauge_reads,
    variables_in, BUILTIN_VARIABLES,
)

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
EXPECTED = {"platform-overview.json", "registration-surge.json", "om-service.json"}


def test_the_three_dashboards_exist():
    assert EXPECTED <= set(dashboards()), f"missing from {DASHBOARDS_DIR}: {EXPECTED - set(dashboards())}"


@pytest.mark.parametrize("name", sorted(dashboards()))
def test_dashboard_is_valid_grafana_10_json(name):
    dashboard = dashboards()[name]
    for key in ("uid", "title", "panels", "templating", "schemaVersion", "time"):
        assert key in dashboard, f"{name}: no {key}"
    assert dashboard["schemaVersion"] >= 38, f"{name}: schemaVersion {dashboard['schemaVersion']} predates Grafana 10"
    assert dashboard.get("id") is None, f"{name}: a provisioned dashboard has no fixed id"
    assert re.fullmatch(r"[a-z0-9-]{1,40}", dashboard["uid"]), f"{name}: uid {dashboard['uid']!r}"
    variables = template_variables(dashboard)
    source = variables.get("datasource")
    assert source and source["type"] == "datasource" and source["query"] == "prometheus", \
        f"{name}: no `datasource` variable of type datasource"
    ids = [p["id"] for p in all_panels(dashboard)]
    assert len(ids) == len(set(ids)), f"{name}: panel ids repeat"
    for panel in all_panels(dashboard):
        where = f"{name} / {panel['title']!r}"
        pos = panel["gridPos"]
        assert pos["w"] >= 1 and pos["h"] >= 1 and 0 <= pos["x"] and pos["x"] + pos["w"] <= 24, f"{where}: gridPos {pos}"
        if panel["type"] == "row":
            continue
        assert panel["type"] in {"timeseries", "stat", "table", "bargauge", "gauge", "text"}, f"{where}: {panel['type']}"
        assert panel.get("datasource") == DATASOURCE, f"{where}: datasource must be the ${{datasource}} variable"
        targets = panel.get("targets", [])
        assert targets, f"{where}: no query"
        assert len({t["refId"] for t in targets}) == len(targets), f"{where}: refIds repeat"
        for target in targets:
            assert target.get("datasource") == DATASOURCE, f"{where} {target['refId']}: datasource"
            assert target.get("expr", "").strip(), f"{where} {target['refId']}: empty query"


def test_panels_do_not_overlap():
    for name, dashboard in dashboards().items():
        taken = {}
        for panel in dashboard["panels"]:
            pos = panel["gridPos"]
            for x in range(pos["x"], pos["x"] + pos["w"]):
                for y in range(pos["y"], pos["y"] + pos["h"]):
                    assert (x, y) not in taken, f"{name}: {panel['title']!r} overlaps {taken[(x, y)]!r}"
                    taken[(x, y)] = panel["title"]


def test_uids_are_unique():
    uids = [d["uid"] for d in dashboards().values()]
    assert len(uids) == len(set(uids))


def test_queries_read_declared_metrics_and_defined_variables():
    known = exposed_metric_names() | {r["record"] for r in recording_rules()} | {"ALERTS"}
    problems = []
    for name, dashboard in dashboards().items():
        variables = template_variables(dashboard)
        for panel in all_panels(dashboard):
            for target in panel.get("targets", []):
                expr, where = target["expr"], f"{name} / {panel['title']!r} {target['refId']}"
                if unowned_gauge_reads(expr):
                    problems.append(f"{where}: every process serves {unowned_gauge_reads(expr)}: select its service")
                missing = metric_names_in(expr) - known
                if missing:
                    problems.append(f"{where}: series declared nowhere: {sorted(missing)}")
                for variable in variables_in(expr) - set(BUILTIN_VARIABLES):
                    if variable not in variables:
                        problems.append(f"{where}: ${variable} is not defined")
                # A multi-value variable becomes a regex: only =~ and !~ can take it.
                for match in re.finditer(r'(=~|!~|=|!=)\s*"[^"]*\$\{?(\w+)', expr):
                    if match.group(2) in variables and match.group(1) not in ("=~", "!~"):
                        problems.append(f"{where}: ${match.group(2)} used with {match.group(1)}, not =~")
    assert not problems, "\n".join(problems)


def test_provisioning_points_at_the_dashboards_and_the_datasource_the_variable_defaults_to():
    sources = load_yaml(GRAFANA_DIR / "provisioning" / "datasources" / "datasources.yml")["datasources"]
    prometheus = [s for s in sources if s["type"] == "prometheus"]
    assert len(prometheus) == 1
    for name, dashboard in dashboards().items():
        default = template_variables(dashboard)["datasource"]["current"]["value"]
        assert default == prometheus[0]["uid"], f"{name}: the datasource variable defaults to {default!r}"
    (provider,) = load_yaml(GRAFANA_DIR / "provisioning" / "dashboards" / "dashboards.yml")["providers"]
    grafana = load_yaml(COMPOSE_FILE)["services"]["grafana"]
    mounts = dict(v.rsplit(":", 1)[0].split(":", 1) for v in grafana["volumes"])
    assert mounts["./observability/grafana/dashboards"] == provider["options"]["path"], \
        "compose mounts the dashboards somewhere the provider does not look"
    assert "PROMETHEUS_URL" in grafana["environment"], "the datasource's ${PROMETHEUS_URL} is not set in compose"


def test_the_holds_refused_by_a_rule_panel_counts_the_rules_reasons_as_the_alert_does():
    """Not `outcome!~"held|slot_full"`: the surge's load shedding (holds_busy) is no rule's refusal."""
    (panel,) = [p for p in all_panels(dashboards()["registration-surge.json"]) if p["title"] == "Holds refused by a rule"]
    (target,) = panel["targets"]
    reasons = hold_rule_reasons()
    assert matched_outcomes(target["expr"]) == [reasons, reasons | {"held", "slot_full"}]
    assert "!~" not in target["expr"]
