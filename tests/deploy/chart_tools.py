"""The Helm chart without a cluster, a helm binary or a network: render and
lint it with helm-python-sdk (Helm v4 as a library), validate what it renders
with kubernetes-validate's bundled schemas in strict mode, and check that the
chart reads observability/ through its link (one copy, not two).

    uv run --no-sync python -m tests.deploy.chart_tools check-sync
    uv run --no-sync python -m tests.deploy.chart_tools render -f deploy/helm/tuoguan/ci/production.yaml
    uv run --no-sync python -m tests.deploy.chart_tools validate -f deploy/helm/tuoguan/ci/minimal.yaml

`render` and `validate` add throwaway token keys unless the values carry some,
so any values file renders as `helm template` would with real keys.
"""
from __future__ import annotations

import argparse
import copy
import functools
import sys
from pathlib import Path
from typing import Any, Iterable

import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "deploy" / "helm" / "tuoguan"
CI_VALUES = CHART / "ci"
OBSERVABILITY = REPO / "observability"
CHART_OBSERVABILITY = CHART / "files" / "observability"
# The copy keeps this file so git keeps the folder while observability/ is empty or absent.
PLACEHOLDER = ".gitkeep"
IGNORED = {"__pycache__", ".DS_Store", PLACEHOLDER}

# Kubernetes versions the manifests must be valid for: the oldest the chart
# supports that kubernetes-validate ships schemas for (pinned), and the newest.
KUBE_VERSIONS = ("1.30", "1.37")
# Kinds from CRDs, which kubernetes-validate has no schema for; the tests check
# their shape themselves.
CRD_KINDS = {"ServiceMonitor", "PrometheusRule"}
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "ReplicaSet", "Pod"}


# ----------------------------------------------------------------- values

def deep_merge(base: dict, extra: dict) -> dict:
    """Helm's way of layering values files: maps merge, the rest replaces."""
    out = copy.deepcopy(base)
    for key, value in (extra or {}).items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_values(*paths: str | Path) -> dict:
    values: dict = {}
    for path in paths:
        values = deep_merge(values, yaml.safe_load(Path(path).read_text()) or {})
    return values


@functools.lru_cache(maxsize=1)
def throwaway_token_keys() -> tuple[str, str]:
    """An Ed25519 key pair made for this process only (never a committed key)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return private, public


def with_token_keys(values: dict) -> dict:
    """Adds throwaway token keys when the values neither carry keys nor name a Secret."""
    keys = (values.get("secrets") or {}).get("tokenKeys") or {}
    if keys.get("existingSecret") or (keys.get("privateKey") and keys.get("publicKey")):
        return values
    private, public = throwaway_token_keys()
    return deep_merge(values, {"secrets": {"tokenKeys": {"privateKey": private, "publicKey": public}}})


# ------------------------------------------------------------ render, lint

def render_templates(values: dict | None = None, *, name: str = "tuoguan", namespace: str = "tuoguan",
                     upgrade: bool = False) -> dict[str, str]:
    """Template path -> rendered text, like `helm template` (values are validated
    against values.schema.json; a failing `fail` or schema raises a HelmError)."""
    import helm_python as helm

    with helm.Chart.load(CHART) as chart:
        return chart.render(values or {}, name=name, namespace=namespace,
                            is_install=not upgrade, is_upgrade=upgrade)


def render(values: dict | None = None, **kwargs: Any) -> list[dict]:
    """The rendered manifests as dicts (NOTES.txt and empty documents left out)."""
    manifests = []
    for path, text in sorted(render_templates(values, **kwargs).items()):
        if path.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                manifests.append(doc)
    return manifests


def to_yaml(manifests: Iterable[dict]) -> str:
    return "".join("---\n" + yaml.safe_dump(m, sort_keys=False) for m in manifests)


def lint(values: dict | None = None, *, kube_version: str = "v1.30.0") -> list[str]:
    """`helm lint --strict`: its warnings and errors (info messages left out)."""
    import helm_python as helm

    report = helm.lint(CHART, values or {}, strict=True, kube_version=kube_version)
    problems = [f"{m['path']}: {m['error']}" for m in report.get("messages", []) if m.get("severity", 0) >= 2]
    return problems + list(report.get("errors") or [])


# ---------------------------------------------------------------- validate

@functools.lru_cache(maxsize=None)
def _patched_validator():
    """kubernetes-validate reads its (large) schema files again for every
    resource; reading each once keeps validating hundreds of manifests fast."""
    from kubernetes_validate import utils

    if not getattr(utils.schema_contents, "cache_info", None):
        utils.schema_contents = functools.lru_cache(maxsize=None)(utils.schema_contents)
    return utils


def validate(manifests: Iterable[dict], versions: Iterable[str] = KUBE_VERSIONS) -> list[str]:
    """Every manifest against the Kubernetes schemas, strict (unknown fields are
    errors). Returns the problems; a kind without a schema is one too, unless it
    is a known CRD kind."""
    utils = _patched_validator()
    problems = []
    for doc in manifests:
        what = f"{doc.get('kind')}/{doc['metadata'].get('name')}"
        for version in versions:
            try:
                utils.validate(doc, version, strict=True)
            except utils.SchemaNotFoundError:
                if doc.get("kind") not in CRD_KINDS:
                    problems.append(f"{what}: no Kubernetes {version} schema for {doc.get('apiVersion')}")
            except utils.ValidationError as exc:
                path = ".".join(str(p) for p in exc.path)
                problems.append(f"{what} (Kubernetes {version}): {path}: {exc.message}")
    return problems


# ------------------------------------------------------ observability copy

def _files(root: Path) -> dict[str, Path]:
    if not root.is_dir():
        return {}
    found = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if any(part in IGNORED for part in rel.parts) or not path.is_file():
            continue
        found[rel.as_posix()] = path
    return found


def observability_drift() -> list[str]:
    """Problems with the chart's view of observability/ (empty: none). Helm reads nothing outside the
    chart, so files/observability is a symbolic link to the repository's one copy, which Helm follows."""
    if not CHART_OBSERVABILITY.is_symlink() or CHART_OBSERVABILITY.resolve() != OBSERVABILITY.resolve():
        return ["must be a symbolic link to the repository's observability/ (the one copy compose and Tilt use)"]
    return []


# --------------------------------------------------------------------- CLI

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.deploy.chart_tools", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["check-sync", "render", "validate", "lint"])
    parser.add_argument("-f", "--values", action="append", default=[], help="values file (repeatable)")
    parser.add_argument("--name", default="tuoguan")
    parser.add_argument("--namespace", default="tuoguan")
    args = parser.parse_args(argv)

    if args.command == "check-sync":
        drift = observability_drift()
        for line in drift:
            print(f"deploy/helm/tuoguan/files/observability: {line}", file=sys.stderr)
        if drift:
            print("restore it: ln -s ../../../../observability deploy/helm/tuoguan/files/observability",
                  file=sys.stderr)
        return 1 if drift else 0
    values = with_token_keys(load_values(*args.values))
    if args.command == "lint":
        problems = lint(values)
    else:
        manifests = render(values, name=args.name, namespace=args.namespace)
        if args.command == "render":
            sys.stdout.write(to_yaml(manifests))
            return 0
        problems = validate(manifests)
        print(f"{len(manifests)} manifests, Kubernetes {', '.join(KUBE_VERSIONS)}, strict", file=sys.stderr)
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
