"""The Tiltfile, checked without Tilt, Docker or a cluster: it runs under the
`starlark` package with recording stand-ins for Tilt's builtins, then what it
asked for is compared with the Dockerfile and with the chart rendered exactly
as its helm() call would render it."""
from __future__ import annotations

import importlib.util
import re
from collections import Counter
from pathlib import Path

import pytest

from tests.deploy import chart_tools as tools
from tests.deploy.manifests import WORKLOADS, containers, pod_spec
from tests.deploy.tilt_stub import Blob, run_tiltfile

REPO = tools.REPO
TILTFILE = REPO / "Tiltfile"


@pytest.fixture(scope="module")
def tilt():
    return run_tiltfile(TILTFILE, repo=REPO)


def _generated_values(path: str, tilt, tmp: Path) -> dict:
    """A values file the Tiltfile writes at `tilt up` time (with a local() call
    naming it): written here by the same script, into a temporary folder."""
    makers = [c.args[0] for c in tilt.of("local") if path in c.args[0]]
    assert makers, f"{path}: neither in the repository nor written by a local() call of the Tiltfile"
    (command,) = makers
    script = next(word for word in command.split() if word.endswith(".py"))
    spec = importlib.util.spec_from_file_location("tilt_values_script", REPO / script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.tilt_values(tmp / "keys")


@pytest.fixture(scope="module")
def tilt_chart(tilt, tmp_path_factory):
    """The manifests Tilt would apply: the chart rendered with the helm() call's arguments."""
    (call,) = tilt.of("helm")
    assert (REPO / call.args[0]).resolve() == tools.CHART
    values: dict = {}
    for path in call.kwargs.get("values", []):
        if (REPO / path).exists() and not path.startswith(".run/"):
            layer = tools.load_values(REPO / path)
        else:
            layer = _generated_values(path, tilt, tmp_path_factory.mktemp("tilt"))
        values = tools.deep_merge(values, layer)
    for expression in call.kwargs.get("set", []):
        import helm_python as helm

        values = tools.deep_merge(values, helm.parse_set_string(expression))
    manifests = tools.render(values, name=call.kwargs.get("name", "chart"),
                             namespace=call.kwargs.get("namespace", "default"))
    # Other YAML the Tiltfile applies itself (blob()s passed to k8s_yaml).
    import yaml

    for k8s_yaml in tilt.of("k8s_yaml"):
        (arg,) = k8s_yaml.args
        if isinstance(arg, Blob) and arg.source is None:
            manifests += [doc for doc in yaml.safe_load_all(arg.text) if doc]
    return manifests


def tilt_resource_names(manifests: list[dict]) -> dict[str, dict]:
    """Tilt's names for workloads: the object's name, with `:kind` added when two share one."""
    workloads = [m for m in manifests if m["kind"] in WORKLOADS]
    counts = Counter(m["metadata"]["name"].lower() for m in workloads)
    return {(m["metadata"]["name"].lower() if counts[m["metadata"]["name"].lower()] == 1
             else f"{m['metadata']['name'].lower()}:{m['kind'].lower()}"): m for m in workloads}


def test_tiltfile_runs_on_tilt_builtins_only(tilt):
    names = {c.name for c in tilt.calls}
    assert {"docker_build", "k8s_yaml", "helm", "k8s_resource", "port_forward"} <= names


def test_builds_the_one_image_every_process_runs(tilt, tilt_chart):
    (build,) = tilt.of("docker_build")
    ref, context = build.args[:2]
    assert (REPO / context).resolve() == REPO
    dockerfile = (REPO / build.kwargs.get("dockerfile", "Dockerfile")).read_text()
    stages = re.findall(r"^FROM\s+\S+\s+AS\s+(\S+)", dockerfile, flags=re.M | re.I)
    assert build.kwargs["target"] in stages
    for path in build.kwargs.get("only", []):
        assert (REPO / path).exists(), path
    images = {c["image"] for w in tilt_chart if w["kind"] in WORKLOADS for c in containers(w)
              if w["metadata"]["labels"].get("app.kubernetes.io/component") in set(_platform_components())
              or w["metadata"]["labels"]["app.kubernetes.io/component"] == "migrate"}
    assert images and {image.rsplit(":", 1)[0] for image in images} == {ref}, images


def _platform_components() -> list[str]:
    import yaml

    return list(yaml.safe_load((tools.CHART / "values.yaml").read_text())["services"])


def test_live_update_syncs_the_code_the_processes_reload(tilt, tilt_chart):
    (build,) = tilt.of("docker_build")
    steps = build.kwargs["live_update"]
    assert steps[0][0] == "fall_back_on", "Tilt wants fall_back_on first"
    fall_back = {str(Path(p).resolve().relative_to(REPO)) if Path(p).is_absolute() else p for p in steps[0][1][0]}
    members = {str(p.relative_to(REPO)) for p in REPO.glob("*/*/pyproject.toml")
               if p.parts[-3] in ("libs", "services")}
    assert {"pyproject.toml", "uv.lock"} | members <= fall_back
    syncs = {s[1][0]: s[1][1] for s in steps if s[0] == "sync"}
    assert syncs == {"libs": "/app/libs", "services": "/app/services"}
    dockerfile = (REPO / "Dockerfile").read_text()
    for local, remote in syncs.items():
        assert (REPO / local).is_dir()
        assert re.search(rf"^COPY --from=build {remote} {remote}$", dockerfile, flags=re.M), remote
    for workload in tilt_chart:
        if workload["kind"] == "Deployment" and "tuoguan.io/kind" in workload["metadata"]["labels"]:
            args = pod_spec(workload)["containers"][0]["args"]
            assert args[0] == "watchfiles" and set(syncs.values()) <= set(args), workload["metadata"]["name"]


def test_every_resource_it_names_exists_in_the_chart(tilt, tilt_chart):
    names = tilt_resource_names(tilt_chart)
    configured = [c.args[0] for c in tilt.of("k8s_resource")]
    missing = [name for name in configured if name not in names]
    assert not missing, f"k8s_resource names no workload of the rendered chart: {missing}"
    known = set(names) | {c.args[0] for c in tilt.of("local_resource")}
    for call in tilt.of("k8s_resource"):
        for dep in call.kwargs.get("resource_deps", []):
            assert dep in known, (call.args[0], dep)
    assert sorted(configured) == sorted(set(configured)), "a workload configured twice"
    assert set(names) == set(configured), "every workload of the chart gets its labels and dependencies"


@pytest.mark.parametrize("workload, port", [("gateway", 8000), ("grafana", 3000), ("prometheus", 9090)])
def test_port_forwards_reach_the_gateway_grafana_and_prometheus(tilt, tilt_chart, workload, port):
    names = tilt_resource_names(tilt_chart)
    (call,) = [c for c in tilt.of("k8s_resource") if c.args[0].endswith("-" + workload)]
    forwards = [f[1] for f in call.kwargs["port_forwards"]]
    assert [port, port] in [list(f[:2]) for f in forwards]
    container_ports = {p["containerPort"] for c in containers(names[call.args[0]]) for p in c.get("ports", [])}
    assert port in container_ports


def test_what_tilt_applies_is_valid(tilt_chart):
    problems = tools.validate(tilt_chart, tools.KUBE_VERSIONS)
    assert not problems, "\n".join(problems)


def test_generated_values_carry_real_token_keys(tilt, tmp_path):
    values = _generated_values(".run/tilt-values.yaml", tilt, tmp_path)
    keys = values["secrets"]["tokenKeys"]
    assert keys["privateKey"].startswith("-----BEGIN PRIVATE KEY-----")
    assert keys["publicKey"].startswith("-----BEGIN PUBLIC KEY-----")
    # The same keys `make up` uses: made once, then reused.
    assert _generated_values(".run/tilt-values.yaml", tilt, tmp_path) == values
