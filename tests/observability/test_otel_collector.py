"""The OpenTelemetry collector's config, checked without a collector binary:
OTLP in over gRPC (4317) and HTTP (4318), batched, out to the debug exporter
and an OTLP trace store; every pipeline names only components that are
defined, as the collector itself would insist at start."""
from __future__ import annotations

from .support import OBSERVABILITY, load_yaml

CONFIG = OBSERVABILITY / "otel-collector" / "config.yaml"
KINDS = ("receivers", "processors", "exporters")


def config() -> dict:
    return load_yaml(CONFIG)


def test_otlp_receivers_listen_on_the_standard_ports():
    protocols = config()["receivers"]["otlp"]["protocols"]
    assert protocols["grpc"]["endpoint"].endswith(":4317")
    assert protocols["http"]["endpoint"].endswith(":4318")


def test_spans_are_batched_and_exported_to_debug_and_an_otlp_trace_store():
    traces = config()["service"]["pipelines"]["traces"]
    assert "otlp" in traces["receivers"]
    assert "batch" in traces["processors"]
    # The batch processor goes last, after anything that drops or limits.
    assert traces["processors"][-1] == "batch"
    assert "debug" in traces["exporters"]
    otlp = [e for e in traces["exporters"] if e.split("/")[0] == "otlp"]
    assert otlp, "no OTLP exporter to a trace store (Tempo, Jaeger)"
    for name in otlp:
        assert config()["exporters"][name]["endpoint"], f"{name} has no endpoint"


def test_pipelines_reference_only_defined_components():
    cfg = config()
    problems = []
    for pipeline, parts in cfg["service"]["pipelines"].items():
        assert pipeline.split("/")[0] in {"traces", "metrics", "logs"}, f"unknown pipeline type {pipeline}"
        assert parts.get("receivers") and parts.get("exporters"), f"{pipeline} needs receivers and exporters"
        for kind in KINDS:
            for name in parts.get(kind, []):
                if name not in (cfg.get(kind) or {}):
                    problems.append(f"{pipeline}: {kind[:-1]} {name} is not defined under {kind}")
    for name in cfg["service"].get("extensions", []):
        if name not in (cfg.get("extensions") or {}):
            problems.append(f"extension {name} is not defined under extensions")
    assert not problems, "\n".join(problems)


def test_every_defined_component_is_used():
    cfg = config()
    used = {kind: {n for p in cfg["service"]["pipelines"].values() for n in p.get(kind, [])} for kind in KINDS}
    for kind in KINDS:
        assert set(cfg.get(kind) or {}) == used[kind], f"{kind} defined but in no pipeline: {set(cfg[kind]) - used[kind]}"
