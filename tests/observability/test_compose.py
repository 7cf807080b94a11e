"""docker-compose.yml, checked without a Docker engine: it parses, keeps the
infrastructure the tests and `make up` use, mounts observability files that
exist, runs every process of the Procfile with a command naming a real
module, after the one-shot migrate; and Prometheus scrapes every one of them."""
from __future__ import annotations

import importlib.util
import re
import shlex
import tomllib

import pytest

from tuoguan_common.config import PORTS
from tuoguan_common.launcher import DOMAIN_SERVICES, WORKER_SERVICES

from .support import COMPOSE_FILE, PROMETHEUS_YML, REPO, load_yaml

PROCESSES = [f"{s}-api" for s in DOMAIN_SERVICES] + [f"{s}-worker" for s in WORKER_SERVICES] + ["gateway"]


def compose() -> dict:
    return load_yaml(COMPOSE_FILE)


def procfile() -> dict[str, str]:
    entries = {}
    for line in (REPO / "Procfile").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, command = line.split(":", 1)
            entries[name.strip()] = command.strip().removeprefix("uv run --no-sync ")
    return entries


def worker_script_names() -> set[str]:
    project = tomllib.loads((REPO / "libs" / "common" / "pyproject.toml").read_text())["project"]
    return set(project.get("scripts", {}))


def bind_mounts(service: dict) -> list[tuple[str, str]]:
    mounts = []
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith("."):
            mounts.append((source, target))
    return mounts


def module_exists(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def command_problems(argv: list[str]) -> list[str]:
    """What is wrong with one process's command: modules that do not exist."""
    if argv[:2] == ["python", "-m"]:
        return [] if module_exists(argv[2]) else [f"no module {argv[2]}"]
    if argv[0] == "tuoguan-worker":
        problems = [] if "tuoguan-worker" in worker_script_names() else ["tuoguan-worker is not a declared script"]
        return problems + ([] if module_exists(f"{argv[1]}.worker") else [f"no module {argv[1]}.worker"])
    return [f"unexpected command {argv}"]


def test_compose_parses_and_keeps_the_infrastructure():
    services = compose()["services"]
    assert services["postgres"]["image"] == "postgres:15.10"
    assert services["rabbitmq"]["image"] == "rabbitmq:3.10.8-management"
    assert services["redis"]["image"] == "redis:7.0.15"
    assert services["postgres"]["ports"] == ["127.0.0.1:5432:5432"]
    assert services["rabbitmq"]["ports"][0] == "127.0.0.1:5672:5672"
    assert services["redis"]["ports"] == ["127.0.0.1:6379:6379"]
    for name in ("mosquitto", "prometheus", "alertmanager", "grafana", "otel-collector", "migrate", *PROCESSES):
        assert name in services, f"docker-compose.yml has no {name}"


def test_images_are_official_and_pinned_by_tag():
    for name, service in compose()["services"].items():
        image = service.get("image")
        if image is None or "build" in service:
            continue
        repository, _, tag = image.rpartition(":")
        assert repository and tag and tag != "latest", f"{name}: pin {image!r} by tag"


def test_every_mounted_observability_path_exists():
    mounted = []
    for name, service in compose()["services"].items():
        for source, _target in bind_mounts(service):
            assert (REPO / source).exists(), f"{name} mounts {source}, which does not exist"
            mounted.append(source)
    for needed in ("./observability/prometheus", "./observability/alertmanager", "./observability/grafana/dashboards",
                   "./observability/otel-collector/config.yaml"):
        assert needed in mounted, f"compose does not mount {needed}"


def test_prometheus_and_the_collector_are_started_on_the_mounted_files():
    services = compose()["services"]
    prometheus = services["prometheus"]
    target = dict(bind_mounts(prometheus))["./observability/prometheus"]
    assert f"--config.file={target}/prometheus.yml" in prometheus["command"]
    collector = services["otel-collector"]
    target = dict(bind_mounts(collector))["./observability/otel-collector/config.yaml"]
    assert f"--config={target}" in collector["command"]


@pytest.mark.parametrize("process", PROCESSES)
def test_every_process_is_built_here_and_runs_a_real_module(process):
    service = compose()["services"][process]
    assert service.get("build") == ".", f"{process}: build the image from the Dockerfile at the root"
    argv = service["command"]
    assert isinstance(argv, list), f"{process}: give the command as a list"
    assert not command_problems(argv), f"{process}: {command_problems(argv)}"
    assert shlex.join(argv) == procfile()[process], f"{process}: runs {argv}, the Procfile {procfile()[process]!r}"
    depends = service.get("depends_on", {})
    assert depends.get("migrate", {}).get("condition") == "service_completed_successfully", \
        f"{process}: must wait for migrate to complete"
    assert service["environment"].get("OTEL_EXPORTER_OTLP_ENDPOINT") == "http://otel-collector:4317"
    # Reached from other containers and the published ports: every interface of its container.
    for var in ("GATEWAY_HOST", "TUOGUAN_GRPC_HOST", "TUOGUAN_METRICS_HOST"):
        assert service["environment"].get(var) == "0.0.0.0", (process, var)


def test_compose_runs_every_process_of_the_procfile():
    assert set(procfile()) <= set(PROCESSES), f"Procfile processes compose does not run: {set(procfile()) - set(PROCESSES)}"


def test_the_dockerfile_compose_builds_exists():
    assert (REPO / "Dockerfile").is_file()


def test_migrate_runs_every_migration_and_seed_once():
    service = compose()["services"]["migrate"]
    script = service["command"][-1]
    modules = re.findall(r"python -m ([\w.]+)", script)
    assert not [m for m in modules if not module_exists(m)], f"migrate names modules that do not exist: {modules}"
    migrations = {p.parent.name for p in REPO.glob("services/*/src/*/migrate.py")}
    seeds = {p.parent.name for p in REPO.glob("services/*/src/*/seed.py")}
    assert {f"{s}.migrate" for s in migrations} <= set(modules), "migrate misses a service's migrations"
    assert {f"{s}.seed" for s in seeds} <= set(modules), "migrate misses a service's seed"
    assert service.get("restart") == "no"
    assert all(service["depends_on"][s]["condition"] == "service_healthy" for s in ("postgres", "rabbitmq"))


def test_prometheus_scrapes_every_process_where_compose_runs_it():
    jobs = {j["job_name"]: j for j in load_yaml(PROMETHEUS_YML)["scrape_configs"]}

    def targets(job):
        return {t for static in jobs[job]["static_configs"] for t in static["targets"]}

    assert targets("tuoguan-api") == {f"{s}-api:{PORTS[s]['metrics']}" for s in DOMAIN_SERVICES}
    assert targets("tuoguan-worker") == {f"{s}-worker:{PORTS[s]['worker_metrics']}" for s in WORKER_SERVICES}
    assert targets("tuoguan-gateway") == {f"gateway:{PORTS['gateway']['http']}"}
    services = compose()["services"]
    for target in targets("tuoguan-api") | targets("tuoguan-worker") | targets("tuoguan-gateway"):
        assert target.split(":")[0] in services, f"Prometheus scrapes {target}, compose has no such service"


def test_prometheus_sends_its_alerts_to_the_alertmanager_compose_runs_on_the_repositorys_routing():
    (alerting,) = load_yaml(PROMETHEUS_YML)["alerting"]["alertmanagers"]
    targets = {t for static in alerting["static_configs"] for t in static["targets"]}
    services = compose()["services"]
    assert targets == {"alertmanager:9093"}
    alertmanager = services["alertmanager"]
    target = dict(bind_mounts(alertmanager))["./observability/alertmanager"]
    assert f"--config.file={target}/alertmanager.yml" in alertmanager["command"]
    # Its receivers read their secrets there: a volume, filled by hand, never the repository.
    assert any(v.split(":")[1] == "/etc/alertmanager/secrets" for v in alertmanager["volumes"]
               if not v.startswith("."))
