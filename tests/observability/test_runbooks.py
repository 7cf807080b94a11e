"""What the runbooks point an on-call engineer at must exist: the dashboard
panels they name (**Dashboard** → *Panel*), the chart values they tell them to
change (`services.<name>.env`), the worker timers they list. A renamed panel,
a wrong values key or a new timer fails here, not at 3 a.m."""
from __future__ import annotations

import ast
import re

import pytest
import yaml

from .support import REPO, RUNBOOKS_DIR, all_panels, dashboards

CHART_VALUES = REPO / "deploy" / "helm" / "tuoguan" / "values.yaml"
VALUES_ROOTS = ("services", "default", "observability", "serviceMonitor", "networkPolicy", "secrets", "image",
                "migrations", "ingress", "postgresql", "rabbitmq", "redis")
_EMPHASIS = re.compile(r"(?<![*\w])\*([^*\n][^*]*?)\*(?![*\w])")
_VALUES_PATH = re.compile(rf"`((?:{'|'.join(VALUES_ROOTS)})\.[A-Za-z0-9_.<>*-]+)`")


def runbooks() -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(RUNBOOKS_DIR.glob("Tuoguan*.md"))}


def titles_by_dashboard() -> dict[str, list[str]]:
    """Dashboard title without "Tuoguan · " -> its panels' and rows' titles."""
    return {d["title"].split(" · ", 1)[-1]: [p["title"] for p in all_panels(d)] for d in dashboards().values()}


def list_items(text: str) -> list[str]:
    """The numbered steps of a page, each with its continuation lines, whitespace collapsed."""
    items = re.split(r"\n(?=\d+\. |\* |## )", text)
    return [" ".join(item.split()) for item in items]


def panel_references(text: str) -> list[tuple[str, str]]:
    """(dashboard, panel) for every *emphasised* name in a step naming **a dashboard** →."""
    found = []
    dashboards_named = titles_by_dashboard()
    for item in list_items(text):
        match = re.search(r"\*\*([^*]+)\*\*(?: dashboard)? →", item)
        if not match or match.group(1) not in dashboards_named:
            continue
        for name in _EMPHASIS.findall(item[match.end():]):
            found.append((match.group(1), name.strip()))
    return found


def test_the_runbooks_name_dashboards_that_exist():
    named = {m for text in runbooks().values() for m in re.findall(r"\*\*([^*]+)\*\*(?: dashboard)? →", text)}
    assert named and named <= set(titles_by_dashboard()), named - set(titles_by_dashboard())


@pytest.mark.parametrize("page", sorted(runbooks()))
def test_every_panel_a_runbook_names_is_on_its_dashboard(page):
    """A name is a panel's or row's title, or the start of one (titles run long)."""
    titles = titles_by_dashboard()
    missing = [f"{dashboard} → {name}" for dashboard, name in panel_references(runbooks()[page])
               if not any(title.startswith(name) for title in titles[dashboard])]
    assert not missing, f"{page} names panels its dashboard does not have: {missing}"


def chart_values() -> dict:
    """values.yaml with every component merged over `default:`, as the chart reads it."""
    from tests.deploy.chart_tools import deep_merge

    values = yaml.safe_load(CHART_VALUES.read_text())
    values["services"] = {name: deep_merge(values["default"], c or {}) for name, c in values["services"].items()}
    return values


def component_schema() -> dict:
    """values.schema.json's schema of one entry of `services:` (optional keys such as `image`
    that values.yaml leaves out)."""
    import json

    schema = json.loads((CHART_VALUES.parent / "values.schema.json").read_text())
    (component,) = [s for s in schema["properties"]["services"]["additionalProperties"]["anyOf"]
                    if s.get("type") == "object"]
    return component


def _pattern(part: str) -> str:
    return "".join("[a-z0-9-]+" if re.fullmatch(r"<\w+>", piece) else re.escape(piece)
                   for piece in re.split(r"(<\w+>)", part) if piece)


def resolves(path: str, values: dict) -> bool:
    """Whether a dotted values path names something: in values.yaml (components merged over
    `default:`), or, under an existing component, a key its schema allows. `<name>` stands for
    any key of its shape (`<service>-api`: identity-api, ...), `*` for whatever is under it."""
    parts = path.split(".")
    nodes = [values]
    for index, part in enumerate(parts):
        if part == "*":
            return True
        found = [value for node in nodes if isinstance(node, dict)
                 for key, value in node.items() if re.fullmatch(_pattern(part), str(key))]
        if not found:
            if parts[0] == "services" and index >= 2 and nodes:
                schema = component_schema()
                for rest in parts[2:]:
                    if rest == "*":
                        return True
                    schema = (schema.get("properties") or {}).get(rest)
                    if schema is None:
                        return False
                return True
            return False
        nodes = found
    return True


@pytest.mark.parametrize("page", sorted(runbooks()))
def test_every_chart_value_a_runbook_names_exists(page):
    values = chart_values()
    wrong = [path for path in _VALUES_PATH.findall(runbooks()[page]) if not resolves(path, values)]
    assert not wrong, f"{page} names chart values that do not exist (deploy/helm/tuoguan/values.yaml): {wrong}"


def test_the_values_check_catches_a_service_that_is_not_a_component():
    values = chart_values()
    assert resolves("services.billing-api.env", values) and resolves("services.<service>-api.replicas", values)
    assert resolves("services.<name>.image", values)  # optional: in the schema, not in values.yaml
    assert not resolves("services.billing.env", values)
    assert not resolves("services.<service>.api.replicas", values)
    assert not resolves("services.billing-api.imagge", values)


def worker_timers() -> dict[str, set[str]]:
    """service -> the names of its worker's @timer methods (the `timer` label of tuoguan_timer_runs_total)."""
    timers: dict[str, set[str]] = {}
    for path in sorted(REPO.glob("services/*/src/*/worker.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef) and any(
                    isinstance(d, ast.Call) and getattr(d.func, "id", None) == "timer" for d in node.decorator_list):
                timers.setdefault(path.parent.name, set()).add(node.name)
    return timers


def test_the_timer_runbook_lists_every_worker_timer():
    text = runbooks()["TuoguanTimerFailing.md"]
    timers = worker_timers()
    assert {"registration", "billing", "ticketing"} <= set(timers)
    missing = sorted(f"{service} {name}" for service, names in timers.items() for name in names
                     if f"`{name}`" not in text)
    assert not missing, f"TuoguanTimerFailing.md does not list these timers: {missing}"
