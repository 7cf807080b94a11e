"""The Grafana dashboards and provisioning: valid Grafana 10 dashboard JSON,
every panel on the datasource variable, every query reading declared
metrics and defined variables, provisioning that matches compose. (Whether
each query returns data is test_prometheus_live's job.)"""
from __future__ import annotations

import re

import pytest

from .support import (
    COMPOSE_FILE, DASHBOARDS_DIR, GRAFANA_DIR, all_panels, dashboards, exposed_metric_names, hold_rule_reasons,
    load_yaml, matched_outcomes, metric_names_in, recording_rules, selectors, template_variables,
    unowned_gauge_reads, variables_in, variable_query, BUILTIN_VARIABLES, DEPLOYMENT_LABEL,
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


def test_every_dashboard_chooses_one_namespace():
    """One Prometheus may watch several releases (staging and production): a
    dashboard shows one at a time. Single-select and no "All": summing two
    deployments is the mistake. Where no series has a namespace (compose, the
    chart's own Prometheus) the query finds none and Grafana gives the
    variable its "None" option, value "": `namespace=~""` selects exactly the
    series without the label, so everything shows."""
    for name, dashboard in dashboards().items():
        variables = template_variables(dashboard)
        variable = variables.get(DEPLOYMENT_LABEL)
        assert variable, f"{name}: no `{DEPLOYMENT_LABEL}` variable"
        assert variable["type"] == "query" and variable.get("datasource") == DATASOURCE, f"{name}: {variable}"
        query = variable_query(variable)
        assert re.fullmatch(rf"label_values\(up\{{[^}}]*\}},\s*{DEPLOYMENT_LABEL}\)", query), \
            f"{name}: the {DEPLOYMENT_LABEL} variable does not list the targets' namespaces: {query!r}"
        assert variable.get("definition") == query, f"{name}: definition and query differ"
        assert not variable.get("multi") and not variable.get("includeAll"), \
            f"{name}: the {DEPLOYMENT_LABEL} variable must choose one deployment, not several nor All"
        assert variable.get("refresh") in (1, 2), f"{name}: the {DEPLOYMENT_LABEL} variable is never refreshed"
        for link in dashboard.get("links", []):
            assert link["type"] != "dashboards" or link.get("includeVars"), \
                f"{name}: the link to the other dashboards drops the chosen {DEPLOYMENT_LABEL}"
        # Grafana resolves a variable's query with the variables listed before it.
        order = list(variables)
        for other, definition in variables.items():
            if definition["type"] == "query" and DEPLOYMENT_LABEL in variables_in(variable_query(definition)):
                assert order.index(other) > order.index(DEPLOYMENT_LABEL), f"{name}: ${other} comes before its namespace"


def _namespace_problems(expr: str, where: str) -> list[str]:
    found = selectors(expr)
    if not found:
        return [f"{where}: no series selector in {expr!r}"]
    problems = []
    for selector in found:
        chosen = [(label, op, value) for label, op, value in selector.matchers if label == DEPLOYMENT_LABEL]
        if chosen not in ([(DEPLOYMENT_LABEL, "=~", f"${DEPLOYMENT_LABEL}")],
                          [(DEPLOYMENT_LABEL, "=~", f"${{{DEPLOYMENT_LABEL}}}")]):
            problems.append(f"{where}: {expr[selector.span[0]:selector.span[1]]} does not select "
                            f'{DEPLOYMENT_LABEL}=~"${DEPLOYMENT_LABEL}"')
    return problems


def test_every_query_selects_the_chosen_namespace():
    """Every series selector of every panel (recorded series, ALERTS, both
    sides of a join) and of every query variable but the namespace's own:
    one that forgets it adds another release's figures to this one's."""
    problems = []
    for name, dashboard in dashboards().items():
        for variable in template_variables(dashboard).values():
            if variable["type"] == "query" and variable["name"] != DEPLOYMENT_LABEL:
                query = variable_query(variable)
                inner = re.fullmatch(r"label_values\((.*),\s*\w+\)", query)
                problems += _namespace_problems(inner.group(1) if inner else query, f"{name} ${variable['name']}")
        for panel in all_panels(dashboard):
            for target in panel.get("targets", []):
                problems += _namespace_problems(target["expr"], f"{name} / {panel['title']!r} {target['refId']}")
    assert not problems, "\n".join(problems)


def test_the_selector_reader_finds_every_selector():
    """What the namespace test relies on: selectors() sees through functions,
    grouping lists, strings, ranges and subqueries."""
    expr = ('sum by (service, le) (rate(a{x="b{c}", y=~"$v"}[$__rate_interval])) / on (service) group_left (le) '
            'b offset 5m or on() vector(0) and histogram_quantile(0.9, c:rec:rate5m[5m:1m]) > bool {__name__="d"}')
    assert [(s.name, s.matchers) for s in selectors(expr)] == [
        ("a", [("x", "=", "b{c}"), ("y", "=~", "$v")]), ("b", []), ("c:rec:rate5m", []),
        (None, [("__name__", "=", "d")])]


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
