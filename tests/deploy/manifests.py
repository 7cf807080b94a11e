"""Reading rendered manifests: workloads, their containers, and what the
NetworkPolicies let through (the same-namespace pod-selector semantics of
Kubernetes, enough to check the chart's traffic matrix)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

WORKLOADS = ("Deployment", "StatefulSet", "Job")


def of_kind(manifests: Iterable[dict], kind: str) -> list[dict]:
    return [m for m in manifests if m["kind"] == kind]


def by_name(manifests: Iterable[dict], kind: str) -> dict[str, dict]:
    return {m["metadata"]["name"]: m for m in of_kind(manifests, kind)}


def pod_spec(workload: dict) -> dict:
    return workload["spec"]["template"]["spec"]


def pod_labels(workload: dict) -> dict[str, str]:
    return workload["spec"]["template"]["metadata"].get("labels", {})


def component(obj: dict) -> str:
    return obj["metadata"]["labels"]["app.kubernetes.io/component"]


def containers(workload: dict) -> list[dict]:
    spec = pod_spec(workload)
    return spec.get("initContainers", []) + spec["containers"]


def env_of(container: dict) -> dict[str, dict]:
    return {e["name"]: e for e in container.get("env", [])}


def matches(selector: dict, labels: dict[str, str]) -> bool:
    """A LabelSelector against labels (matchLabels and matchExpressions)."""
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


@dataclass(frozen=True)
class Pod:
    name: str
    labels: dict
    ports: frozenset[int]


def pods(manifests: list[dict]) -> dict[str, Pod]:
    """One pod per workload, by component."""
    found = {}
    for workload in manifests:
        if workload["kind"] not in WORKLOADS:
            continue
        ports = {p["containerPort"] for c in containers(workload) for p in c.get("ports", [])}
        found[component(workload)] = Pod(component(workload), pod_labels(workload), frozenset(ports))
    return found


def _peer_matches(peer: dict, pod: Pod | None) -> bool:
    """Same-namespace pods only: a peer with a namespaceSelector or ipBlock names other places."""
    if pod is None:
        # Somewhere outside the release (an external database, the internet).
        return "ipBlock" in peer or "namespaceSelector" in peer
    if "ipBlock" in peer or "namespaceSelector" in peer:
        return False
    return matches(peer.get("podSelector", {}), pod.labels)


def _port_matches(rule: dict, port: int) -> bool:
    ports = rule.get("ports")
    return not ports or any(p.get("port") == port for p in ports)


def _allowed(policies: list[dict], selected: Pod, direction: str, other: Pod | None, port: int) -> bool:
    key, peers_key, type_ = ("egress", "to", "Egress") if direction == "egress" else ("ingress", "from", "Ingress")
    applying = [p for p in policies if matches(p["spec"]["podSelector"], selected.labels)
                and type_ in p["spec"].get("policyTypes", ["Ingress"])]
    if not applying:
        return True
    for policy in applying:
        for rule in policy["spec"].get(key) or []:
            peers = rule.get(peers_key)
            if _port_matches(rule, port) and (not peers or any(_peer_matches(peer, other) for peer in peers)):
                return True
    return False


def allows(manifests: list[dict], source: Pod | None, target: Pod | None, port: int) -> bool:
    """Whether the NetworkPolicies let `source` open a connection to `target` on `port`
    (None: something outside the release)."""
    policies = of_kind(manifests, "NetworkPolicy")
    egress = source is None or _allowed(policies, source, "egress", target, port)
    ingress = target is None or _allowed(policies, target, "ingress", source, port)
    return egress and ingress
