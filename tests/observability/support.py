"""What the observability tests share: where the files are, the rules and
dashboards parsed, PromQL's metric names, Grafana's variables, the binaries."""
from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest
import yaml
from prometheus_client import Counter, Gauge, Histogram

from tuoguan_common import metrics as registry

REPO = Path(__file__).resolve().parents[2]
OBSERVABILITY = REPO / "observability"
PROMETHEUS_DIR = OBSERVABILITY / "prometheus"
PROMETHEUS_YML = PROMETHEUS_DIR / "prometheus.yml"
RULES_DIR = PROMETHEUS_DIR / "rules"
RULE_TESTS_DIR = PROMETHEUS_DIR / "tests"
ALERTMANAGER_YML = OBSERVABILITY / "alertmanager" / "alertmanager.yml"
GRAFANA_DIR = OBSERVABILITY / "grafana"
DASHBOARDS_DIR = GRAFANA_DIR / "dashboards"
RUNBOOKS_DIR = REPO / "docs" / "runbooks"
COMPOSE_FILE = REPO / "docker-compose.yml"
BOOKING_RULES = REPO / "services" / "registration" / "src" / "registration" / "domain" / "rules.py"

# Series the deployment records rather than the repository's rules: the
# components it runs, for TuoguanServiceAbsent (the chart generates the rule
# group; compose's static targets need none).
DEPLOYMENT_SERIES = {"service_process:tuoguan_component:deployed"}

# Grafana's own variables, as a panel would see them over a short range.
BUILTIN_VARIABLES = {
    "__rate_interval": "1m", "__interval": "15s", "__interval_ms": "15000",
    "__range": "5m", "__range_s": "300", "__range_ms": "300000",
}
_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)")
_RECORDED = re.compile(r"\b[a-z_]+:tuoguan_[a-z0-9_]+:[a-z0-9_]+\b")
_RAW = re.compile(r"\btuoguan_[a-z0-9_]+\b")


def binary(name: str, *aliases: str) -> str:
    """The path of a Prometheus binary (or of the first of its other names
    found: Debian installs Alertmanager as `prometheus-alertmanager`); fails
    (never skips) when it is missing."""
    for candidate in (name, *aliases):
        path = shutil.which(candidate)
        if path is not None:
            return path
    names = " or ".join(f"`{n}`" for n in (name, *aliases))
    pytest.fail(f"{names} is not installed: `apt-get install -y prometheus prometheus-alertmanager` "
                "(Debian's packages; .ci/run installs them)", pytrace=False)


class LiveServer:
    """A real server binary a test started on 127.0.0.1:``port``, its output
    in ``log``: its URL, an HTTP client to it, its last log lines, and a stop
    that kills it if it will not end."""

    def __init__(self, command: list[str], port: int, log: Path, *, client_timeout: float):
        with open(log, "wb") as out:
            self.process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        self.url = f"http://127.0.0.1:{port}"
        self.log = log
        self.client = httpx.Client(base_url=self.url, timeout=client_timeout)

    def logs(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        self.client.close()
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def load_yaml(path: Path):
    return yaml.safe_load(path.read_text())


def rule_files() -> list[Path]:
    return sorted(RULES_DIR.glob("*.yml"))


def rule_groups() -> list[tuple[Path, dict]]:
    return [(path, group) for path in rule_files() for group in load_yaml(path)["groups"]]


def alert_rules() -> list[dict]:
    return [rule for _path, group in rule_groups() for rule in group["rules"] if "alert" in rule]


# The label that tells deployments apart where one Prometheus scrapes, or one
# Alertmanager hears, several (staging and production): the Prometheus
# Operator gives every target its namespace, and the chart's own Prometheus
# gives it to every alert it sends (external_labels). Compose has none: one
# deployment. The rules keep it through every aggregation, so that each alert
# carries the namespace of the series it is about.
DEPLOYMENT_LABEL = "namespace"


def rule_tests(namespace: str | None = None) -> list[tuple[Path, dict]]:
    """The promtool unit test files, parsed; with a namespace, as they would run
    in a deployment whose targets carry it: every input series without a
    namespace gets this one, and so does every alert expected (rule_files made
    absolute, for the copy to run from anywhere)."""
    found = []
    for path in sorted(RULE_TESTS_DIR.glob("*.yml")):
        doc = load_yaml(path)
        if namespace is not None:
            doc["rule_files"] = [str((path.parent / f).resolve()) for f in doc["rule_files"]]
            for case in doc["tests"]:
                for series in case.get("input_series", []):
                    if not re.search(rf"[{{,]\s*{DEPLOYMENT_LABEL}\s*=", series["series"]):
                        name, _, rest = series["series"].partition("{")
                        labels = f'{DEPLOYMENT_LABEL}="{namespace}"' + (f", {rest}" if rest.strip("} ") else "}")
                        series["series"] = f"{name}{{{labels}"
                for check in case.get("alert_rule_test", []):
                    for alert in check.get("exp_alerts") or []:
                        alert.setdefault("exp_labels", {}).setdefault(DEPLOYMENT_LABEL, namespace)
        found.append((path, doc))
    return found


def fired_alerts(namespace: str | None = None) -> list[dict[str, str]]:
    """The label sets the alert rules give their alerts, alertname included:
    every `exp_labels` of the promtool unit tests, which promtool holds the
    rules to (all of them: a label more or less fails the test); with a
    namespace, those of the tests run in it (rule_tests)."""
    found = []
    for _path, doc in rule_tests(namespace):
        for case in doc["tests"]:
            for check in case.get("alert_rule_test", []):
                for alert in check.get("exp_alerts") or []:
                    labels = {"alertname": check["alertname"],
                              **{k: str(v) for k, v in alert.get("exp_labels", {}).items()}}
                    if labels not in found:
                        found.append(labels)
    return found


def matches(matchers: list[str], labels: dict[str, str]) -> bool:
    """Whether Alertmanager's matchers (`name="v"`, `!=`, `=~`, `!~`; regexes
    anchored) all select an alert with these labels (a missing label is "")."""
    for matcher in matchers:
        name, op, value = re.fullmatch(r'\s*(\w+)\s*(=~|!~|!=|=)\s*"(.*)"\s*', matcher).groups()
        have = labels.get(name, "")
        ok = {"=": have == value, "!=": have != value,
              "=~": re.fullmatch(value, have) is not None, "!~": re.fullmatch(value, have) is None}[op]
        if not ok:
            return False
    return True


def recording_rules() -> list[dict]:
    return [rule for _path, group in rule_groups() for rule in group["rules"] if "record" in rule]


def exposed_metric_names() -> set[str]:
    """Every series name the platform's processes serve, from the one registry."""
    names = {"up"}
    for metric in vars(registry).values():
        if isinstance(metric, Counter):
            names.add(f"{metric._name}_total")
        elif isinstance(metric, Histogram):
            names.update(f"{metric._name}_{suffix}" for suffix in ("bucket", "count", "sum"))
        elif isinstance(metric, Gauge):
            names.add(metric._name)
    return names


def unlabelled_gauges() -> set[str]:
    """Gauges without labels: every process serves them (the registry is shared),
    at 0 where nothing sets them."""
    return {m._name for m in vars(registry).values() if isinstance(m, Gauge) and not m._labelnames}


def unowned_gauge_reads(expr: str) -> list[str]:
    """Reads of an unlabelled gauge that do not name the service whose process sets it."""
    bad = []
    expr = _RECORDED.sub(" ", expr)
    for name in unlabelled_gauges():
        for match in re.finditer(rf"\b{name}\b(\{{[^}}]*\}})?", expr):
            if "service=" not in (match.group(1) or ""):
                bad.append(match.group(0))
    return bad


def metric_names_in(expr: str) -> set[str]:
    """The platform's metric and recording-rule names a PromQL expression reads."""
    recorded = set(_RECORDED.findall(expr))
    return recorded | set(_RAW.findall(_RECORDED.sub(" ", expr)))


def dashboards() -> dict[str, dict]:
    return {path.name: json.loads(path.read_text()) for path in sorted(DASHBOARDS_DIR.glob("*.json"))}


def all_panels(dashboard: dict) -> list[dict]:
    """Every panel, including those inside collapsed rows."""
    found = []
    for panel in dashboard.get("panels", []):
        found.append(panel)
        found.extend(panel.get("panels", []))
    return found


def template_variables(dashboard: dict) -> dict[str, dict]:
    return {v["name"]: v for v in dashboard.get("templating", {}).get("list", [])}


def variable_query(variable: dict) -> str:
    """A query variable's PromQL (Grafana 10 stores it as {"query": ...})."""
    query = variable.get("query", "")
    return query.get("query", "") if isinstance(query, dict) else query


def panel_queries() -> list[tuple[str, str, str, str, dict]]:
    """(dashboard file, panel title, refId, expr, the dashboard's variables) for every panel target."""
    queries = []
    for name, dashboard in dashboards().items():
        variables = template_variables(dashboard)
        for panel in all_panels(dashboard):
            for target in panel.get("targets", []):
                queries.append((name, panel["title"], target["refId"], target["expr"], variables))
    return queries


def variables_in(expr: str) -> set[str]:
    return {a or b for a, b in _VARIABLE.findall(expr)}


def render(expr: str, variables: dict, chosen: dict[str, str] | None = None) -> str:
    """The query Grafana would send: its own variables at a short range, a
    template variable as ``chosen`` gives it (the namespace variable: a
    namespace, or "", Grafana's None where no series has one), else as "All"
    (its allValue, `.*`)."""
    def value(match: re.Match) -> str:
        name = match.group(1) or match.group(2)
        if name in BUILTIN_VARIABLES:
            return BUILTIN_VARIABLES[name]
        if chosen is not None and name in chosen:
            return chosen[name]
        if name in variables:
            return variables[name].get("allValue") or ".*"
        raise AssertionError(f"${name} is neither a Grafana variable nor one of the dashboard's")
    return _VARIABLE.sub(value, expr)


def hold_rule_reasons() -> set[str]:
    """The reasons the booking rules refuse a hold for, a full slot aside: every
    Refusal(<constant>, ...) of slot_refusal and patient_refusal in
    registration/domain/rules.py. Any other outcome of a hold attempt
    (holds_busy, unauthenticated, ...) is answered before the rules look."""
    tree = ast.parse(BOOKING_RULES.read_text())
    constants = {node.targets[0].id: node.value.value for node in tree.body
                 if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
                 and isinstance(node.targets[0], ast.Name)}
    reasons = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name in ("slot_refusal", "patient_refusal"):
            for call in ast.walk(node):
                if isinstance(call, ast.Call) and getattr(call.func, "id", None) == "Refusal":
                    reasons.add(constants[call.args[0].id])
    assert constants["SLOT_FULL"] in reasons, "slot_refusal no longer refuses a full slot: the rules changed"
    return reasons - {constants["SLOT_FULL"]}


def matched_outcomes(expr: str) -> list[set[str]]:
    """The outcome alternatives of each `outcome=~"a|b"` selector of a query, in order."""
    return [set(found.split("|")) for found in re.findall(r'outcome=~"([^"]+)"', expr)]


# PromQL's words that are never a series name: aggregations, set and
# vector-matching operators, modifiers. Any other identifier not followed by
# `(` (a function) is a series selector.
_PROMQL_WORDS = {
    "sum", "avg", "min", "max", "count", "group", "stddev", "stdvar", "topk", "bottomk", "quantile",
    "count_values", "limitk", "limit_ratio", "and", "or", "unless", "by", "without", "on", "ignoring",
    "group_left", "group_right", "bool", "offset", "atan2", "inf", "nan",
}
# Words followed by a list of label names, `(a, b)`, which are no selectors.
_LABEL_LISTS = {"by", "without", "on", "ignoring", "group_left", "group_right"}
_TOKEN = re.compile(r"""
    (?P<string>"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|`[^`]*`)
  | (?P<variable>\$\{\w+(?::\w+)?\}|\$\w+)
  | (?P<name>[A-Za-z_:][A-Za-z0-9_:]*)
  | (?P<number>[0-9.][0-9A-Za-z_.]*)
  | (?P<space>\s+)
  | (?P<other>.)
""", re.VERBOSE | re.DOTALL)
_MATCHER = re.compile(r'\s*([A-Za-z_]\w*)\s*(=~|!~|!=|=)\s*("(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`)\s*,?')


class Selector:
    """One vector selector of a PromQL expression: its series name (None for a
    bare `{...}`), its matchers as (label, op, value), and where it is: the
    span of the whole selector and where a matcher would go (just after `{`, or
    the end of a bare name, where `{}` must be added)."""

    def __init__(self, name, matchers, span, insert_at, braces):
        self.name, self.matchers, self.span, self.insert_at, self.braces = name, matchers, span, insert_at, braces

    def __repr__(self):
        return f"Selector({self.name!r}, {self.matchers!r})"


def _closing(expr: str, start: int, opening: str, closing: str) -> int:
    """The index of the bracket closing the one at ``start``, strings skipped."""
    depth = 0
    for token in _TOKEN.finditer(expr, start):
        text = token.group()
        if token.lastgroup == "other" and text == opening:
            depth += 1
        elif token.lastgroup == "other" and text == closing:
            depth -= 1
            if depth == 0:
                return token.start()
    raise ValueError(f"unbalanced {opening!r} at {start} in {expr!r}")


def _matchers(expr: str, start: int, end: int) -> list[tuple[str, str, str]]:
    """The matchers between the braces at ``start`` and ``end``."""
    found, at = [], start + 1
    while expr[at:end].strip():
        match = _MATCHER.match(expr, at, end)
        if match is None:
            raise ValueError(f"cannot read the matchers {expr[start:end + 1]!r}")
        label, op, quoted = match.groups()
        found.append((label, op, quoted[1:-1]))
        at = match.end()
    return found


def selectors(expr: str) -> list[Selector]:
    """Every vector selector of a PromQL expression, in order: series names
    outside functions' names, grouping label lists, strings and ranges, with
    or without braces, and bare `{...}` selectors."""
    found = []
    tokens = [t for t in _TOKEN.finditer(expr) if t.lastgroup != "space"]
    i = 0
    while i < len(tokens):
        token = tokens[i]
        kind, text = token.lastgroup, token.group()
        after = tokens[i + 1] if i + 1 < len(tokens) else None
        if kind == "other" and text == "[":
            end = _closing(expr, token.start(), "[", "]")
            while i < len(tokens) and tokens[i].start() <= end:
                i += 1
            continue
        if kind == "name" and text in _LABEL_LISTS and after is not None and after.group() == "(":
            end = _closing(expr, after.start(), "(", ")")
            while i < len(tokens) and tokens[i].start() <= end:
                i += 1
            continue
        if kind == "name" and text not in _PROMQL_WORDS and not (after is not None and after.group() == "("):
            if after is not None and after.group() == "{":
                end = _closing(expr, after.start(), "{", "}")
                found.append(Selector(text, _matchers(expr, after.start(), end), (token.start(), end + 1),
                                      after.start() + 1, True))
                while i < len(tokens) and tokens[i].start() <= end:
                    i += 1
                continue
            found.append(Selector(text, [], (token.start(), token.end()), token.end(), False))
        elif kind == "other" and text == "{":
            end = _closing(expr, token.start(), "{", "}")
            found.append(Selector(None, _matchers(expr, token.start(), end), (token.start(), end + 1),
                                  token.start() + 1, True))
            while i < len(tokens) and tokens[i].start() <= end:
                i += 1
            continue
        i += 1
    return found
