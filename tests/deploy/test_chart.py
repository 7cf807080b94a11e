"""The Helm chart, checked offline: rendered with every CI values file, linted,
validated against the Kubernetes schemas in strict mode, and held to the
platform's rules (hardened pods, one Deployment per Procfile process, probes,
the traffic matrix of the design, hooks, secrets, observability files).

No cluster, helm binary, Docker engine or network: helm-python-sdk bundles
Helm, kubernetes-validate bundles the schemas.
"""
from __future__ import annotations

import functools
import ipaddress
import json
import re
import shlex

import pytest
import yaml

from tests.deploy import chart_tools as tools
from tests.deploy.manifests import (
    WORKLOADS,
    allows,
    by_name,
    component,
    containers,
    env_of,
    matches,
    of_kind,
    pod_labels,
    pod_spec,
    pods,
)
from tuoguan_common.config import PORTS, migrations_database_url

REPO = tools.REPO
CI_FILES = sorted(p.stem for p in tools.CI_VALUES.glob("*.yaml"))
HARDENED = ["minimal", "production"]  # ci/tilt.yaml turns readOnlyRootFilesystem off for live_update
DOMAIN_SERVICES = sorted(p.parent.name for p in REPO.glob("services/*/src/*/migrate.py"))


def procfile() -> dict[str, list[str]]:
    processes = {}
    for line in (REPO / "Procfile").read_text().splitlines():
        if ":" in line and not line.startswith("#"):
            name, command = line.split(":", 1)
            argv = shlex.split(command)
            if argv[:3] == ["uv", "run", "--no-sync"]:
                argv = argv[3:]
            processes[name.strip()] = argv
    return processes


@functools.lru_cache(maxsize=None)
def values_of(name: str) -> str:
    """A CI values file as JSON (hashable for the cache), with throwaway token keys."""
    return json.dumps(tools.with_token_keys(tools.load_values(tools.CI_VALUES / f"{name}.yaml")))


@functools.lru_cache(maxsize=None)
def _rendered(name: str) -> str:
    return json.dumps(tools.render(json.loads(values_of(name))))


def rendered(name: str) -> list[dict]:
    return json.loads(_rendered(name))


def platform_deployments(manifests: list[dict]) -> dict[str, dict]:
    return {component(d): d for d in of_kind(manifests, "Deployment")
            if "tuoguan.io/kind" in d["metadata"]["labels"]}


def merged_component(values: dict, name: str) -> dict:
    chart = yaml.safe_load((tools.CHART / "values.yaml").read_text())
    everything = tools.deep_merge(chart, values)
    return tools.deep_merge(everything["default"], everything["services"][name])


# --------------------------------------------------------------- it renders

def test_every_ci_values_file_is_checked():
    assert {"minimal", "production", "tilt"} <= set(CI_FILES)


@pytest.mark.parametrize("name", CI_FILES)
def test_renders_and_validates_strictly(name):
    manifests = rendered(name)
    assert manifests
    problems = tools.validate(manifests, tools.KUBE_VERSIONS)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("name", CI_FILES)
def test_helm_lint_strict(name):
    problems = tools.lint(json.loads(values_of(name)))
    assert not problems, "\n".join(problems)


def test_validation_is_offline_and_strict(monkeypatch):
    """The schemas ship with the package (no socket is opened), and strict mode
    rejects an unknown field."""
    import socket

    def no_network(*args, **kwargs):
        raise AssertionError("the deploy checks must not use the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    fresh = tools.render(json.loads(values_of("production")))
    assert not tools.validate(fresh, tools.KUBE_VERSIONS)
    deployment = next(iter(platform_deployments(rendered("minimal")).values()))
    bad = json.loads(json.dumps(deployment))
    pod_spec(bad)["containers"][0]["readOnlyRootFileSystem"] = True  # a typo Kubernetes would drop silently
    problems = tools.validate([bad], ["1.30"])
    assert problems and "readOnlyRootFileSystem" in problems[0]


def test_values_schema_is_a_valid_json_schema_and_accepts_the_defaults():
    import jsonschema

    schema = json.loads((tools.CHART / "values.schema.json").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    chart = yaml.safe_load((tools.CHART / "values.yaml").read_text())
    for name in CI_FILES:
        jsonschema.Draft7Validator(schema).validate(tools.deep_merge(chart, json.loads(values_of(name))))


# ------------------------------------------------- bad values do not render

@pytest.mark.parametrize("bad, message", [
    ({"services": {"gateway": {"kind": "cronjob"}}}, "/services/gateway/kind"),
    ({"services": {"gateway": {"replicas": "three"}}}, "/services/gateway/replicas"),
    ({"default": {"replicas": -1}}, "/default/replicas"),
    ({"replicaCount": 3}, "replicaCount"),
    ({"services": {"billing-api": {"uses": ["mysql"]}}}, "/services/billing-api/uses"),
    ({"services": {"assessment-api": {"kind": "api", "service": "assessment", "args": ["python"],
                                      "ports": {"http": 8080}}}}, "grpc"),
    ({"image": {"digest": "latest"}}, "/image/digest"),
    ({"secrets": {"databaseUrl": "mysql://db/tuoguan"}}, "/secrets/databaseUrl"),
    ({"migrations": {"hook": "whenever"}}, "/migrations/hook"),
    ({"services": {"billing-api": {"secretEnv": {"BILLING_PROVIDER_KEY": {"optional": True}}}}},
     "/services/billing-api/secretEnv/BILLING_PROVIDER_KEY"),
    ({"default": {"egress": [{"too": []}]}}, "/default/egress/0"),
    ({"services": {"identity-api": {"image": {"digest": "0.2.0"}}}}, "/services/identity-api/image/digest"),
    # A digest alone would run under the global tag's name, and label the pods with it.
    ({"services": {"identity-api": {"image": {"digest": "sha256:" + "a" * 64}}}}, "/services/identity-api/image"),
    ({"services": {"identity-api": {"image": {"tag": "0.2.0 "}}}}, "/services/identity-api/image/tag"),
    ({"services": {"identity-api": {"image": {"repository": "registry.example.org/tuoguan tuoguan"}}}},
     "/services/identity-api/image/repository"),
    ({"services": {"identity-api": {"image": "tuoguan:0.2.0"}}}, "at '/services/identity-api/image': got string"),
    # The pull policy stays global, and so does the image of every component: that is `image:`.
    ({"services": {"identity-api": {"image": {"pullPolicy": "Always"}}}},
     "at '/services/identity-api/image': additional properties 'pullPolicy' not allowed"),
    ({"default": {"image": {"tag": "0.2.0"}}}, "at '/default': additional properties 'image' not allowed"),
], ids=lambda v: str(v) if isinstance(v, str) else None)
def test_schema_rejects_bad_values(bad, message):
    import helm_python as helm

    with pytest.raises(helm.HelmError) as failure:
        tools.render(tools.with_token_keys(bad))
    assert message in str(failure.value)


def test_schema_rejects_a_bad_values_file_naming_every_mistake():
    import helm_python as helm

    with pytest.raises(helm.HelmError) as failure:
        tools.render(tools.with_token_keys(tools.load_values(REPO / "tests" / "deploy" / "values" / "bad.yaml")))
    for mistake in ("servces", "/services/registration-worker/replicas", "/services/registration-worker/kind",
                    "/services/gateway/ports/http", "/ingress/hosts/0/paths/0/path"):
        assert mistake in str(failure.value), mistake


@pytest.mark.parametrize("bad, message", [
    ({"services": {"billing-api": {"dependsOn": ["payments-api"]}}}, "payments-api is not an enabled component"),
    ({"services": {"billing-api": {"dependsOn": ["billing-worker"]}}}, "billing-worker is not an api"),
    ({"postgresql": {"enabled": False}}, "secrets.databaseUrl"),
    ({"rabbitmq": {"enabled": False}}, "secrets.amqpUri"),
    ({"redis": {"enabled": False}}, "secrets.redisUrl"),
    # One database, one revision: which image's migrations would run is not for the chart to guess.
    ({"services": {"registration-worker": {"migrate": True, "image": {"tag": "0.2.0"}}}},
     "services.registration-api and services.registration-worker both migrate registration"),
    ({"migrations": {"seed": True}, "services": {"ticketing-api": {"image": {"tag": "0.2.0"}},
                                                 "ticketing-worker": {"seed": True}}},
     "services.ticketing-api and services.ticketing-worker both seed ticketing"),
], ids=str)
def test_templates_refuse_inconsistent_values(bad, message):
    import helm_python as helm

    with pytest.raises(helm.HelmError) as failure:
        tools.render(tools.with_token_keys(bad))
    assert message in str(failure.value)


def test_token_keys_are_required():
    import helm_python as helm

    with pytest.raises(helm.HelmError) as failure:
        tools.render({})
    assert "token keys are required" in str(failure.value)


# ------------------------------------------------------ hardened workloads

@pytest.mark.parametrize("name", CI_FILES)
def test_every_pod_is_non_root_with_seccomp_and_no_capabilities(name):
    for workload in (m for m in rendered(name) if m["kind"] in WORKLOADS):
        what = f"{workload['kind']}/{workload['metadata']['name']}"
        spec = pod_spec(workload)
        pod_sc = spec.get("securityContext", {})
        assert pod_sc.get("seccompProfile", {}).get("type") == "RuntimeDefault", what
        assert spec.get("automountServiceAccountToken") is False, what
        for container in containers(workload):
            sc = container.get("securityContext", {})
            assert sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is True, what
            assert (sc.get("runAsUser") or pod_sc.get("runAsUser") or 0) > 0, what
            assert sc.get("allowPrivilegeEscalation") is False, what
            assert "ALL" in sc.get("capabilities", {}).get("drop", []), what
            assert not sc.get("capabilities", {}).get("add"), what
            assert sc.get("privileged") is not True, what
            for bound in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(container.get("resources", {}).get(bound, {})), (what, bound)
            image = container["image"]
            assert ":" in image.rsplit("/", 1)[-1] and not image.endswith(":latest"), (what, image)


@pytest.mark.parametrize("name", HARDENED)
def test_every_container_has_a_read_only_root_filesystem_and_a_writable_tmp(name):
    for workload in (m for m in rendered(name) if m["kind"] in WORKLOADS):
        volumes = {v["name"]: v for v in pod_spec(workload).get("volumes", [])}
        for container in containers(workload):
            what = f"{workload['kind']}/{workload['metadata']['name']}"
            assert container["securityContext"]["readOnlyRootFilesystem"] is True, what
            tmp = [m for m in container.get("volumeMounts", []) if m["mountPath"] == "/tmp"]
            assert tmp and "emptyDir" in volumes[tmp[0]["name"]], what


def test_only_the_tilt_values_make_the_code_writable():
    for name in CI_FILES:
        writable = [c["name"] for d in platform_deployments(rendered(name)).values() for c in containers(d)
                    if not c["securityContext"]["readOnlyRootFilesystem"]]
        assert bool(writable) == (name == "tilt"), name


# ------------------------------------------------ one Deployment per process

@pytest.mark.parametrize("name", CI_FILES)
def test_one_deployment_per_procfile_process_running_its_command(name):
    deployments = platform_deployments(rendered(name))
    processes = procfile()
    assert set(deployments) == set(processes)
    for process, argv in processes.items():
        (container,) = pod_spec(deployments[process])["containers"]
        args = container["args"]
        if name == "tilt":  # watchfiles "<command>" <paths>
            assert args[0] == "watchfiles" and shlex.split(args[5]) == argv, process
        else:
            assert args == argv, process
        assert "command" not in container, process


@pytest.mark.parametrize("name", CI_FILES)
def test_probes_grpc_for_apis_http_for_workers_and_gateway(name):
    for process, deployment in platform_deployments(rendered(name)).items():
        (container,) = pod_spec(deployment)["containers"]
        kind = deployment["metadata"]["labels"]["tuoguan.io/kind"]
        service = process.rsplit("-", 1)[0]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            spec = container[probe]
            if kind == "api":
                assert spec["grpc"]["port"] == ports["grpc"] == PORTS[service]["grpc"], (process, probe)
                assert ports["metrics"] == PORTS[service]["metrics"]
            elif kind == "worker":
                assert spec["httpGet"] == {"path": "/metrics", "port": "metrics"}, (process, probe)
                assert ports["metrics"] == PORTS[service]["worker_metrics"]
            else:
                assert spec["httpGet"] == {"path": "/healthz", "port": "http"}, (process, probe)
                assert ports["http"] == PORTS["gateway"]["http"]


@pytest.mark.parametrize("name", CI_FILES)
def test_environment_wires_ports_addresses_and_credentials(name):
    manifests = rendered(name)
    values = json.loads(values_of(name))
    services = by_name(manifests, "Service")
    secrets = {s["metadata"]["name"]: s for s in of_kind(manifests, "Secret")}
    external = {(values.get("secrets") or {}).get("existingSecret"),
                ((values.get("secrets") or {}).get("tokenKeys") or {}).get("existingSecret")} - {None, ""}
    for process, deployment in platform_deployments(manifests).items():
        spec = pod_spec(deployment)
        (container,) = spec["containers"]
        env = env_of(container)
        service = process.rsplit("-", 1)[0]
        up = service.upper()
        kind = deployment["metadata"]["labels"]["tuoguan.io/kind"]
        if kind == "api":
            assert env[f"{up}_GRPC_PORT"]["value"] == str(PORTS[service]["grpc"])
            assert env[f"{up}_METRICS_PORT"]["value"] == str(PORTS[service]["metrics"])
            assert "DATABASE_URL" in env and "AMQP_URI" not in env, process  # only workers relay the outbox
        elif kind == "worker":
            assert env[f"{up}_WORKER_METRICS_PORT"]["value"] == str(PORTS[service]["worker_metrics"])
            assert {"DATABASE_URL", "AMQP_URI"} <= set(env), process
        else:
            assert env["GATEWAY_PORT"]["value"] == str(PORTS["gateway"]["http"])
            assert {"REDIS_URL", "GATEWAY_SESSION_SECRET"} <= set(env) and "DATABASE_URL" not in env
            # The send guard's limit, set (and so seen) in the values, not only the code's default.
            assert {"SMS_CODES_PER_ADDRESS", "SMS_CODES_ADDRESS_WINDOW_SECONDS"} <= set(env)
        assert ("TUOGUAN_TOKEN_PRIVATE_KEY_FILE" in env) == (process == "identity-api"), process
        # The payment ticket key: registration signs, billing checks, nobody else holds it.
        assert ("TUOGUAN_PAYMENT_TICKET_KEY" in env) == (process in {"registration-api", "billing-api"}), process
        assert "TUOGUAN_TOKEN_PUBLIC_KEY_FILE" in env
        for var, entry in env.items():
            if var.endswith("_ADDR"):
                # dns:///<service>-headless.<namespace>.svc.<domain>:<port>: every replica, for round_robin
                assert entry["value"].startswith("dns:///"), (process, var)
                host, port = entry["value"].removeprefix("dns:///").split(":")
                name = host.split(".")[0]
                target = var[: -len("_ADDR")].lower()
                assert name in services and services[name]["spec"].get("clusterIP") == "None", (process, var)
                assert int(port) == PORTS[target]["grpc"], (process, var)
            ref = entry.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                assert ref["name"] in secrets or ref["name"] in external, (process, var, ref["name"])
                if ref["name"] in secrets and not ref.get("optional"):
                    assert ref["key"] in secrets[ref["name"]]["data"], (process, var)
        key_volume = next(v for v in spec["volumes"] if v["name"] == "token-keys")["secret"]
        assert key_volume["secretName"] in secrets or key_volume["secretName"] in external
        items = {i["key"] for i in key_volume["items"]}
        assert items == ({"token-verify.pem", "token-signing.pem"} if process == "identity-api"
                         else {"token-verify.pem"}), process


# identity-api texts codes, identity-worker texts the patients of a suspended session.
SMS_SENDERS = ("identity-api", "identity-worker")


@pytest.mark.parametrize("name", CI_FILES)
def test_only_identity_gets_the_sms_gateway_and_its_optional_key(name):
    """identity-api's and identity-worker's IDENTITY_SMS_API_KEY comes from the credentials Secret's
    sms-api-key, optional (a Secret without it still starts the pod); the
    production example names the gateway (IDENTITY_SMS_URL), the others do
    not: their codes and texts go to the log (IDENTITY_RESET_CODES_TO_LOG)."""
    values = json.loads(values_of(name))
    credentials = (values.get("secrets") or {}).get("existingSecret") or "tuoguan-credentials"
    for process, deployment in platform_deployments(rendered(name)).items():
        env = env_of(pod_spec(deployment)["containers"][0])
        sms = {var: entry for var, entry in env.items() if var.startswith("IDENTITY_SMS_")}
        refs = [entry for entry in env.values()
                if entry.get("valueFrom", {}).get("secretKeyRef", {}).get("key") == "sms-api-key"]
        if process not in SMS_SENDERS:
            assert not sms and not refs, process
            continue
        assert sms["IDENTITY_SMS_API_KEY"] == {"name": "IDENTITY_SMS_API_KEY", "valueFrom": {"secretKeyRef": {
            "name": credentials, "key": "sms-api-key", "optional": True}}}, process
        if name == "production":
            assert sms["IDENTITY_SMS_URL"]["value"].startswith("https://"), process
        else:
            assert "IDENTITY_SMS_URL" not in sms, process
            assert env["IDENTITY_RESET_CODES_TO_LOG"]["value"] == "true", (name, process)


@pytest.mark.parametrize("name", CI_FILES)
def test_the_gateway_trusts_as_proxies_only_the_network_a_values_file_names(name):
    """The chart trusts no proxy of its own: trusting every private network let
    anyone reaching the ingress from one (the hospital's Wi-Fi, a pod) name any
    client in X-Forwarded-For. The production example names the ingress
    controllers' pod network, one private network, not a whole private block."""
    for process, deployment in platform_deployments(rendered(name)).items():
        trusted = env_of(pod_spec(deployment)["containers"][0]).get("GATEWAY_TRUSTED_PROXIES")
        if process != "gateway" or name != "production":
            assert trusted is None, (name, process)
            continue
        networks = [ipaddress.ip_network(net.strip()) for net in trusted["value"].split(",")]
        assert networks, trusted
        for network in networks:
            assert network.is_private and network.prefixlen >= (17 if network.version == 4 else 48), network


GATEWAY_LIMITS = {"GATEWAY_LIMIT_CONCURRENCY", "GATEWAY_HEADER_TIMEOUT_SECONDS", "GATEWAY_BODY_TIMEOUT_SECONDS",
                  "GATEWAY_KEEP_ALIVE_SECONDS", "GATEWAY_WRITE_TIMEOUT_SECONDS"}


@pytest.mark.parametrize("name", CI_FILES)
def test_the_gateway_states_its_limits_on_slow_and_numerous_clients(name):
    """The gateway's cap on connections and its deadlines come from the
    values (services.gateway.env), the code's defaults, and the gateway
    starts with them; no other process gets them."""
    from gateway.limits import ServerLimits

    for process, deployment in platform_deployments(rendered(name)).items():
        env = env_of(pod_spec(deployment)["containers"][0])
        if process != "gateway":
            assert not GATEWAY_LIMITS & set(env), process
            continue
        given = {var: env[var]["value"] for var in GATEWAY_LIMITS}
        assert given == {"GATEWAY_LIMIT_CONCURRENCY": "1000", "GATEWAY_HEADER_TIMEOUT_SECONDS": "10",
                         "GATEWAY_BODY_TIMEOUT_SECONDS": "30", "GATEWAY_KEEP_ALIVE_SECONDS": "5",
                         "GATEWAY_WRITE_TIMEOUT_SECONDS": "30"}, name
        with pytest.MonkeyPatch.context() as patch:
            for var, value in given.items():
                patch.setenv(var, value)
            assert ServerLimits.from_env() == ServerLimits()


LISTEN_HOSTS = {"api": {"TUOGUAN_GRPC_HOST", "TUOGUAN_METRICS_HOST"}, "worker": {"TUOGUAN_METRICS_HOST"},
                "gateway": {"GATEWAY_HOST"}}


@pytest.mark.parametrize("name", CI_FILES)
def test_every_process_listens_on_every_interface_of_its_pod(name):
    """The processes listen on 127.0.0.1 unless told otherwise (make up): in a pod
    the probes, the Services and Prometheus would then find nothing."""
    for process, deployment in platform_deployments(rendered(name)).items():
        (container,) = pod_spec(deployment)["containers"]
        names = [e["name"] for e in container["env"]]
        assert len(names) == len(set(names)), (process, names)
        env = env_of(container)
        kind = deployment["metadata"]["labels"]["tuoguan.io/kind"]
        hosts = {var: env[var]["value"] for var in LISTEN_HOSTS[kind] if var in env}
        assert hosts == dict.fromkeys(LISTEN_HOSTS[kind], "0.0.0.0"), process
        assert not {"TUOGUAN_GRPC_HOST", "GATEWAY_HOST"} - LISTEN_HOSTS[kind] & set(env), process


def test_a_values_file_may_name_another_listening_address():
    values = tools.with_token_keys({"env": {"TUOGUAN_METRICS_HOST": "::"},
                                    "services": {"gateway": {"env": {"GATEWAY_HOST": "::"}}}})
    for process, deployment in platform_deployments(tools.render(values)).items():
        (container,) = pod_spec(deployment)["containers"]
        names = [e["name"] for e in container["env"]]
        assert len(names) == len(set(names)), (process, names)
        env = env_of(container)
        if process == "gateway":
            assert env["GATEWAY_HOST"]["value"] == "::"
        else:
            assert env["TUOGUAN_METRICS_HOST"]["value"] == "::"
            if process.endswith("-api"):
                assert env["TUOGUAN_GRPC_HOST"]["value"] == "0.0.0.0"


def test_a_values_file_may_change_one_gateway_limit_and_keep_the_others():
    values = tools.with_token_keys({"services": {"gateway": {"env": {"GATEWAY_LIMIT_CONCURRENCY": "400"}}}})
    (gateway,) = [d for process, d in platform_deployments(tools.render(values)).items() if process == "gateway"]
    env = env_of(pod_spec(gateway)["containers"][0])
    assert env["GATEWAY_LIMIT_CONCURRENCY"]["value"] == "400"
    assert env["GATEWAY_BODY_TIMEOUT_SECONDS"]["value"] == "30"


def test_production_lets_identity_alone_reach_the_sms_gateway():
    manifests = rendered("production")
    for name, pod in pods(manifests).items():
        if name == "otel-collector":
            continue  # exports wherever its configuration says
        assert allows(manifests, pod, None, 443) == (name in SMS_SENDERS), name
    for sender in SMS_SENDERS:
        policy = next(p for p in of_kind(manifests, "NetworkPolicy") if component(p) == sender)
        to_443 = [rule for rule in policy["spec"]["egress"]
                  if any(p.get("port") == 443 for p in rule.get("ports", []))]
        assert to_443 == [{"to": [{"ipBlock": {"cidr": "10.20.2.0/24"}}],
                           "ports": [{"port": 443, "protocol": "TCP"}]}], sender


def test_the_chart_made_secret_holds_an_sms_api_key_only_when_given():
    import base64

    def credentials(values):
        return by_name(tools.render(tools.with_token_keys(values)), "Secret")["tuoguan-credentials"]["data"]

    assert "sms-api-key" not in credentials({}), "never generated: a made-up key is no key"
    given = credentials({"secrets": {"smsApiKey": "sk-live-1"}})
    assert base64.b64decode(given["sms-api-key"]).decode() == "sk-live-1"


def test_billing_api_asks_registration_api():
    env = env_of(pod_spec(platform_deployments(rendered("minimal"))["billing-api"])["containers"][0])
    assert env["REGISTRATION_ADDR"]["value"] == (
        f"dns:///tuoguan-registration-api-headless.tuoguan.svc.cluster.local:{PORTS['registration']['grpc']}")


@pytest.mark.parametrize("name", CI_FILES)
def test_ticketing_api_asks_identity_api_whether_an_assignee_is_an_engineer(name):
    """ChangeTicket assign asks identity's ListStaff (staff_directory.py), on top of the revoked tokens' list:
    ticketing-api has identity's address, and the policies let it through, out of its pod and into
    identity-api's, on the gRPC port only; ticketing's worker does not call identity."""
    manifests = rendered(name)
    deployments = platform_deployments(manifests)
    env = env_of(pod_spec(deployments["ticketing-api"])["containers"][0])
    assert env["IDENTITY_ADDR"]["value"] == (
        f"dns:///tuoguan-identity-api-headless.tuoguan.svc.cluster.local:{PORTS['identity']['grpc']}")
    release = pods(manifests)
    identity, ticketing = release["identity-api"], release["ticketing-api"]
    assert allows(manifests, ticketing, identity, PORTS["identity"]["grpc"])
    assert not allows(manifests, ticketing, identity, PORTS["identity"]["metrics"])
    assert not allows(manifests, release["ticketing-worker"], identity, PORTS["identity"]["grpc"])
    assert "IDENTITY_ADDR" not in env_of(pod_spec(deployments["ticketing-worker"])["containers"][0])


# ------------------------------------------------------ PDBs, HPAs, labels

@pytest.mark.parametrize("name", CI_FILES)
def test_disruption_budgets_and_autoscalers_follow_the_values(name):
    manifests = rendered(name)
    values = json.loads(values_of(name))
    pdbs, hpas = of_kind(manifests, "PodDisruptionBudget"), by_name(manifests, "HorizontalPodAutoscaler")
    for process, deployment in platform_deployments(manifests).items():
        c = merged_component(values, process)
        selected = [p for p in pdbs if matches(p["spec"]["selector"], pod_labels(deployment))]
        assert len(selected) == (1 if c["podDisruptionBudget"]["enabled"] else 0), process
        hpa = hpas.get(deployment["metadata"]["name"])
        if c["autoscaling"]["enabled"]:
            assert hpa and hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"], process
            assert "replicas" not in deployment["spec"], process  # the HPA owns it
            assert hpa["spec"]["minReplicas"] >= 2, process
        else:
            assert hpa is None and deployment["spec"]["replicas"] == c["replicas"], process


def test_production_scales_apis_gateway_and_workers():
    hpas = {h["metadata"]["labels"]["app.kubernetes.io/component"]
            for h in of_kind(rendered("production"), "HorizontalPodAutoscaler")}
    assert set(procfile()) <= hpas
    pdbs = of_kind(rendered("production"), "PodDisruptionBudget")
    assert all(p["spec"].get("minAvailable") == 1 and "maxUnavailable" not in p["spec"] for p in pdbs)


@pytest.mark.parametrize("name", CI_FILES)
def test_standard_labels_everywhere(name):
    for obj in rendered(name):
        labels = obj["metadata"].get("labels", {})
        what = f"{obj['kind']}/{obj['metadata']['name']}"
        for key in ("app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/version",
                    "app.kubernetes.io/managed-by", "app.kubernetes.io/component", "app.kubernetes.io/part-of",
                    "helm.sh/chart"):
            assert labels.get(key), (what, key)
        assert obj["metadata"].get("namespace") == "tuoguan", what


@pytest.mark.parametrize("name", CI_FILES)
def test_services_select_their_workloads_by_named_ports(name):
    manifests = rendered(name)
    workloads = [m for m in manifests if m["kind"] in WORKLOADS]
    for service in of_kind(manifests, "Service"):
        backing = [w for w in workloads if matches({"matchLabels": service["spec"]["selector"]}, pod_labels(w))]
        assert len(backing) == 1, service["metadata"]["name"]
        port_names = {p["name"] for c in containers(backing[0]) for p in c.get("ports", [])}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in port_names, (service["metadata"]["name"], port)


# ------------------------------------------------------------ NetworkPolicies

# Who calls whom over gRPC (DESIGN.md, README "The booking saga"): the gateway
# every api; billing asks registration for the booking; every other api reads
# identity's list of revoked tokens, and ticketing asks identity which accounts
# are engineers' (an assignment names one). Nobody else.
DESIGN_GRPC_CALLS = {
    "gateway": {"identity-api", "registration-api", "billing-api", "ticketing-api"},
    "billing-api": {"identity-api", "registration-api"},
    "registration-api": {"identity-api"},
    "ticketing-api": {"identity-api"},
}


def expected_traffic(manifests: list[dict], values: dict) -> set[tuple[str, str, int]]:
    """What the design needs, and nothing else: (from, to, port) between the release's pods."""
    deployments = platform_deployments(manifests)
    kinds = {p: d["metadata"]["labels"]["tuoguan.io/kind"] for p, d in deployments.items()}
    present = set(pods(manifests))
    edges = set()

    def add(src, dst, port):
        if src in present and dst in present:
            edges.add((src, dst, port))

    for process, kind in kinds.items():
        c = merged_component(values, process)
        service = c["service"]
        calls = DESIGN_GRPC_CALLS.get(process, set()) if process in procfile() else c.get("dependsOn", [])
        for dep in calls:
            add(process, dep, PORTS[dep.rsplit("-", 1)[0]]["grpc"])
        if kind in ("api", "worker"):
            add(process, "postgresql", 5432)
        if kind == "worker":
            add(process, "rabbitmq", 5672)
        if kind == "gateway":
            add(process, "redis", 6379)
        metrics = PORTS[service].get("metrics" if kind == "api" else "worker_metrics") \
            if kind != "gateway" else PORTS["gateway"]["http"]
        add("prometheus", process, metrics)
        add(process, "otel-collector", 4317)
    add("migrate", "postgresql", 5432)
    add("migrate", "rabbitmq", 5672)
    add("grafana", "prometheus", 9090)
    # Inside a pod nothing is filtered.
    for name, pod in pods(manifests).items():
        for port in pod.ports:
            edges.add((name, name, port))
    return edges


@pytest.mark.parametrize("name", CI_FILES)
def test_network_policies_allow_exactly_the_designed_traffic(name):
    manifests = rendered(name)
    values = json.loads(values_of(name))
    release_pods = pods(manifests)
    expected = expected_traffic(manifests, values)
    wrong = []
    for src_name, src in release_pods.items():
        if src_name == "otel-collector":
            continue  # its egress is open: it exports wherever its configuration says
        for dst_name, dst in release_pods.items():
            for port in dst.ports:
                allowed = src_name == dst_name or allows(manifests, src, dst, port)
                if allowed != ((src_name, dst_name, port) in expected):
                    wrong.append(f"{src_name} -> {dst_name}:{port} {'allowed' if allowed else 'blocked'}")
    assert not wrong, "\n".join(sorted(wrong))


@pytest.mark.parametrize("name", CI_FILES)
def test_every_pod_has_its_own_network_policy_under_a_default_deny(name):
    manifests = rendered(name)
    policies = of_kind(manifests, "NetworkPolicy")
    default_deny = [p for p in policies if p["metadata"]["name"].endswith("-default-deny")]
    assert len(default_deny) == 1 and not default_deny[0]["spec"].get("ingress") \
        and not default_deny[0]["spec"].get("egress")
    for workload in (m for m in manifests if m["kind"] in WORKLOADS):
        own = [p for p in policies if p not in default_deny
               and matches(p["spec"]["podSelector"], pod_labels(workload))]
        assert len(own) == 1, workload["metadata"]["name"]
        assert matches(default_deny[0]["spec"]["podSelector"], pod_labels(workload))


def test_production_reaches_external_services_only_on_their_ports_and_networks():
    manifests = rendered("production")
    # The migrate Job reaches the primary too (migrations.extraEgress), past the pooler.
    expected = {"api": {6432}, "worker": {6432, 5671}, "gateway": {6379}, "migrate": {5432, 6432, 5671},
                "prometheus": set(), "grafana": set()}
    for name, pod in pods(manifests).items():
        if name == "otel-collector":
            continue  # exports wherever its configuration says
        kind = pod.labels.get("tuoguan.io/kind", name)
        outside = {port for port in (5432, 5671, 5672, 6379, 6432, 4317, 4318, 8000)
                   if allows(manifests, pod, None, port)}
        assert outside == expected[kind], name
    ingress = next(p for p in of_kind(manifests, "NetworkPolicy") if component(p) == "gateway")["spec"]["ingress"]
    assert all(rule.get("from") for rule in ingress), "the gateway takes traffic only from named peers"



INGRESS_NGINX = [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}]
MONITORING = [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]
NARROWED_METRICS = {
    "gatewayFrom": {"networkPolicy": {"gatewayFrom": INGRESS_NGINX}},
    "in-chart Prometheus": {"observability": {"enabled": True}},
    "both": {"networkPolicy": {"gatewayFrom": INGRESS_NGINX}, "observability": {"enabled": True}},
}


def metrics_ports(manifests: list[dict]) -> dict[str, int]:
    """Component -> the container port its ServiceMonitor scrapes."""
    found = {}
    for deployment in platform_deployments(manifests).values():
        named = {p["name"]: p["containerPort"] for c in containers(deployment) for p in c.get("ports", [])}
        found[component(deployment)] = named.get("metrics", named.get("http"))
    return found


def admits(policy: dict, peer: dict, port: int) -> bool:
    """Whether an ingress rule of the policy lets `peer` (a NetworkPolicyPeer, as given) in on `port`."""
    return any((not rule.get("ports") or any(p.get("port") == port for p in rule["ports"]))
               and (not rule.get("from") or peer in rule["from"])
               for rule in policy["spec"].get("ingress") or [])


@pytest.mark.parametrize("narrowed", NARROWED_METRICS)
def test_service_monitors_are_refused_a_metrics_from_that_names_nobody_where_the_ports_are_narrowed(narrowed):
    """The gateway serves /metrics on its HTTP port: with gatewayFrom set it
    took only gatewayFrom's peers (and the in-chart Prometheus), though an empty
    metricsFrom was documented as "any source", so the Prometheus scraping the
    ServiceMonitors was refused and TuoguanServiceDown paged for the gateway for
    good. A NetworkPolicy cannot open one path of a port: the chart refuses to
    render until metricsFrom names that Prometheus, and then admits it."""
    import helm_python as helm

    values = tools.with_token_keys(tools.deep_merge({"serviceMonitor": {"force": True}}, NARROWED_METRICS[narrowed]))
    with pytest.raises(helm.HelmError) as failure:
        tools.render(values)
    assert "networkPolicy.metricsFrom" in str(failure.value)

    manifests = tools.render(tools.deep_merge(values, {"networkPolicy": {"metricsFrom": MONITORING}}))
    policies = {component(p): p for p in of_kind(manifests, "NetworkPolicy") if "app.kubernetes.io/component" in
                p["metadata"]["labels"]}
    scraped = {component(m) for m in of_kind(manifests, "ServiceMonitor")}
    assert "gateway" in scraped
    for process, port in metrics_ports(manifests).items():
        assert process in scraped and admits(policies[process], MONITORING[0], port), process
    # Without ServiceMonitors an empty metricsFrom stays valid, the in-chart Prometheus a peer of every process.
    manifests = tools.render(tools.deep_merge(values, {"serviceMonitor": {"enabled": False}}))
    assert not of_kind(manifests, "ServiceMonitor")
    release = pods(manifests)
    if "prometheus" in release:
        for process, port in metrics_ports(manifests).items():
            assert allows(manifests, release["prometheus"], release[process], port), process


def test_service_monitors_with_nothing_narrowing_the_metrics_ports_need_no_metrics_from():
    manifests = tools.render(tools.with_token_keys({"serviceMonitor": {"force": True}}))
    policies = {component(p): p for p in of_kind(manifests, "NetworkPolicy") if "app.kubernetes.io/component" in
                p["metadata"]["labels"]}
    for process, port in metrics_ports(manifests).items():
        assert admits(policies[process], MONITORING[0], port), process

# ------------------------------------------------------------- migrations

@pytest.mark.parametrize("name", CI_FILES)
def test_migrations_run_as_a_hook_job_for_every_domain_service(name):
    manifests = rendered(name)
    values = json.loads(values_of(name))
    (job,) = of_kind(manifests, "Job")
    annotations = job["metadata"]["annotations"]
    in_chart = values.get("postgresql", {}).get("enabled", True) or values.get("rabbitmq", {}).get("enabled", True)
    hook = values.get("migrations", {}).get("hook") or \
        ("post-install,pre-upgrade" if in_chart else "pre-install,pre-upgrade")
    assert annotations["helm.sh/hook"] == hook
    assert "pre-upgrade" in hook
    script = "\n".join(c["args"][0] for c in containers(job))
    migrated = re.findall(r"python -m (\w+)\.migrate", script)
    assert sorted(migrated) == DOMAIN_SERVICES
    seeded = re.findall(r"python -m (\w+)\.seed", script)
    if values.get("migrations", {}).get("seed"):
        assert sorted(seeded) == sorted(p.parent.name for p in REPO.glob("services/*/src/*/seed.py"))
    else:
        assert not seeded
    env = {var: entry for c in containers(job) for var, entry in env_of(c).items()}
    assert all({"DATABASE_URL", "AMQP_URI"} <= set(env_of(c)) for c in containers(job))  # it declares queues too
    # What the Job reads exists before it: a hook of lower weight, or a Secret outside the chart.
    for entry in env.values():
        ref = entry.get("valueFrom", {}).get("secretKeyRef")
        if ref and ref["name"] in by_name(manifests, "Secret"):
            secret = by_name(manifests, "Secret")[ref["name"]]
            assert int(secret["metadata"]["annotations"]["helm.sh/hook-weight"]) < \
                int(annotations["helm.sh/hook-weight"])



def job_environments(manifests: list[dict]) -> list[tuple[list[str], dict[str, str]]]:
    """(services migrated, environment as the kubelet gives it) of each of the
    migrate Job's containers: the chart's Secret read, absent optional keys left out."""
    import base64

    secret = {k: base64.b64decode(v).decode()
              for k, v in by_name(manifests, "Secret")["tuoguan-credentials"]["data"].items()}
    (job,) = of_kind(manifests, "Job")
    found = []
    for container in containers(job):
        env = {}
        for name, entry in env_of(container).items():
            ref = entry.get("valueFrom", {}).get("secretKeyRef")
            if ref is None:
                env[name] = entry["value"]
            elif ref["key"] in secret:
                env[name] = secret[ref["key"]]
            else:
                assert ref.get("optional"), f"{name}: the Job would not start without {ref['key']}"
        found.append((re.findall(r"python -m (\w+)\.migrate", container["args"][0]), env))
    return found


POOLED = "postgresql://u:pw@pgbouncer:6432/postgres"


@pytest.mark.parametrize("given, expected", [
    ({}, {"billing": "postgresql://u:pw@bouncer-2:6432/billing", "*": "postgresql://u:pw@pgbouncer:6432/tuoguan_{}"}),
    ({"migrationsDatabaseUrl": "postgresql://u:pw@primary:5432/postgres",
      "serviceMigrationsDatabaseUrls": {"billing": "postgresql://u:pw@billing-primary:5432/billing"}},
     {"billing": "postgresql://u:pw@billing-primary:5432/billing", "*": "postgresql://u:pw@primary:5432/tuoguan_{}"}),
], ids=["the services' urls", "past the pooler"])
def test_the_migrate_job_connects_past_the_pooler_when_given_a_url(given, expected):
    """Behind a transaction pooler CREATE INDEX CONCURRENTLY may lose the lock
    timeout set before it: `migrations-database-url` (and
    `<service>-migrations-database-url`) give the Job a connection of its own."""
    values = {"secrets": {"databaseUrl": POOLED, "serviceDatabaseUrls": {"billing": "postgresql://u:pw@bouncer-2:6432/billing"},
                          **given}}
    manifests = tools.render(tools.with_token_keys(values))
    migrated = []
    for services, env in job_environments(manifests):
        for service in services:
            assert migrations_database_url(service, env) == expected.get(service, expected["*"].format(service))
            migrated.append(service)
    assert sorted(migrated) == DOMAIN_SERVICES
    for deployment in platform_deployments(manifests).values():
        assert not any("MIGRATIONS" in name for name in env_of(containers(deployment)[0])), component(deployment)


# `kubectl ... logs [-f] job/<name>` in the docs, across a line break too.
DOC_JOB_LOGS = re.compile(r"\blogs\s+(?:-\S+\s+)*job/([a-z0-9-]+)")


def documented_job_logs() -> dict[str, set[str]]:
    """Job name -> the docs that tell operators to read its log."""
    found: dict[str, set[str]] = {}
    docs = [*REPO.glob("docs/**/*.md"), *REPO.glob("services/*/README.md"), REPO / "README.md"]
    for doc in docs:
        if doc.is_file():
            for job in DOC_JOB_LOGS.findall(doc.read_text()):
                found.setdefault(job, set()).add(doc.relative_to(REPO).as_posix())
    return found


@pytest.mark.parametrize("name", CI_FILES)
def test_a_job_whose_log_the_docs_send_operators_to_outlives_its_success(name):
    """Registration's migration 0004 names the sessions it detaches only in
    the migrate Job's log, and docs/deploy.md has the office read it after
    the upgrade: a `hook-succeeded` delete policy (or a TTL) deleted the Job
    and its log as soon as it succeeded, and the command answered NotFound."""
    documented = documented_job_logs()
    assert "tuoguan-migrate" in documented  # the docs' release is named tuoguan, as the render's
    jobs = by_name(rendered(name), "Job")
    for job_name, docs in documented.items():
        assert job_name in jobs, f"{sorted(docs)} read the log of a Job the chart does not make: {job_name}"
        job = jobs[job_name]
        policy = job["metadata"].get("annotations", {}).get("helm.sh/hook-delete-policy", "")
        assert "hook-succeeded" not in policy.split(","), (job_name, sorted(docs))
        assert "ttlSecondsAfterFinished" not in job["spec"], (job_name, sorted(docs))
        if "helm.sh/hook" in job["metadata"].get("annotations", {}):  # replaced by the next run's Job
            assert policy == "before-hook-creation", job_name

def test_credentials_made_by_the_chart_or_taken_from_existing_secrets():
    minimal = by_name(rendered("minimal"), "Secret")
    assert set(minimal) == {"tuoguan-credentials", "tuoguan-token-keys"}
    import base64

    data = {k: base64.b64decode(v).decode() for k, v in minimal["tuoguan-credentials"]["data"].items()}
    assert data["database-url"].startswith(f"postgresql://postgres:{data['postgres-password']}@tuoguan-postgresql:5432/")
    assert data["amqp-uri"] == f"amqp://tuoguan:{data['rabbitmq-password']}@tuoguan-rabbitmq:5672//"
    assert data["redis-url"] == "redis://tuoguan-redis:6379/0"
    assert len(data["session-secret"]) >= 32
    assert len(data["payment-ticket-key"]) >= 32 and data["payment-ticket-key"] != data["session-secret"]
    assert not by_name(rendered("production"), "Secret"), "production uses existing Secrets only"


# ------------------------------------------------------ monitoring, ingress

def test_service_monitors_only_when_forced_or_the_operator_is_there():
    # Offline there is no monitoring.coreos.com/v1 API: only the forced production values render them.
    assert not of_kind(rendered("minimal"), "ServiceMonitor")
    monitors = of_kind(rendered("production"), "ServiceMonitor")
    services = of_kind(rendered("production"), "Service")
    assert {component(m) for m in monitors} == set(procfile())
    for monitor in monitors:
        assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
        assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
        selected = [s for s in services if matches(monitor["spec"]["selector"], s["metadata"]["labels"])]
        assert len(selected) == 1, monitor["metadata"]["name"]  # the ClusterIP Service, not the headless one
        (endpoint,) = monitor["spec"]["endpoints"]
        assert endpoint["port"] in {p["name"] for p in selected[0]["spec"]["ports"]}
        assert endpoint["path"] == "/metrics"


def relabel(labels: dict[str, str], rules: list[dict]) -> dict[str, str]:
    """Prometheus's `replace` relabelling (the operator's relabelings, camelCase)."""
    out = dict(labels)
    for rule in rules:
        assert rule.get("action", "replace") == "replace", rule
        source = rule.get("separator", ";").join(out.get(name, "") for name in rule.get("sourceLabels", []))
        match = re.fullmatch(rule.get("regex", "(.*)"), source)
        if match:
            replacement = re.sub(r"\$\{?(\d+)\}?", r"\\g<\1>", rule.get("replacement", "$1"))
            out[rule["targetLabel"]] = match.expand(replacement)
    return out


def test_service_monitors_give_their_targets_the_service_and_process_the_rules_select():
    """kube-prometheus-stack labels each target service=<the Kubernetes Service's name>
    and no process; every rule selecting service= or process= was dead. The
    ServiceMonitors' relabelings (after the operator's own) give both, as the
    chart's own Prometheus does; honorLabels keeps the apis' and workers'
    own `service` label rather than renaming it exported_service."""
    manifests = rendered("production")
    deployments = platform_deployments(manifests)
    config = prometheus_config(manifests)
    own = {}  # what the chart's own Prometheus gives each component
    for job in config["scrape_configs"]:
        for sd in job.get("dns_sd_configs", []):
            (dns,) = sd["names"]
            own[dns.split("-metrics.")[0].removeprefix("tuoguan-")] = (
                {r["target_label"]: r["replacement"] for r in job["relabel_configs"] if re.fullmatch(r["regex"], dns)},
                job["honor_labels"])
    for monitor in of_kind(manifests, "ServiceMonitor"):
        process = component(monitor)
        kind = deployments[process]["metadata"]["labels"]["tuoguan.io/kind"]
        (endpoint,) = monitor["spec"]["endpoints"]
        operator = {"job": monitor["metadata"]["name"], "service": monitor["metadata"]["name"],
                    "namespace": "tuoguan", "pod": f"{monitor['metadata']['name']}-0", "endpoint": endpoint["port"]}
        labels = relabel(operator, endpoint.get("relabelings", []))
        expected = {"service": process.rsplit("-", 1)[0] if kind != "gateway" else "gateway", "process": kind}
        assert {k: labels.get(k) for k in expected} == expected == own[process][0], process
        assert endpoint.get("honorLabels", False) is own[process][1] is (kind != "gateway"), process


def test_with_the_operator_the_rules_come_as_a_prometheus_rule(tmp_path):
    from tests.observability.support import binary

    assert not of_kind(rendered("minimal"), "PrometheusRule")
    manifests = rendered("production")
    (rule,) = of_kind(manifests, "PrometheusRule")
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"  # kube-prometheus-stack's ruleSelector
    groups = [g for path in sorted((REPO / "observability" / "prometheus" / "rules").glob("*.yml"))
              for g in yaml.safe_load(path.read_text())["groups"]]
    (deployment,) = [g for g in rule["spec"]["groups"] if g["name"] == "tuoguan-deployment.recording"]
    assert sorted((g for g in rule["spec"]["groups"] if g is not deployment), key=lambda g: g["name"]) == \
        sorted(groups, key=lambda g: g["name"])
    # The operator's targets carry their namespace: the components are this release's.
    assert deployed(deployment) == {("tuoguan", s, k) for _n, s, k in components_of(manifests)}
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}, sort_keys=False))
    import subprocess

    done = subprocess.run([binary("promtool"), "check", "rules", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert not of_kind(with_values("production", {"serviceMonitor": {"prometheusRule": False}}), "PrometheusRule")


def components_of(manifests: list[dict]) -> set[tuple[str, str, str]]:
    """(process, service, kind) of every platform Deployment."""
    return {(p, p.rsplit("-", 1)[0] if d["metadata"]["labels"]["tuoguan.io/kind"] != "gateway" else "gateway",
             d["metadata"]["labels"]["tuoguan.io/kind"]) for p, d in platform_deployments(manifests).items()}


def deployed(group: dict) -> set[tuple[str | None, str, str]]:
    """(namespace, service, process) of the deployment's recorded components (TuoguanServiceAbsent's input)."""
    from tests.observability.support import DEPLOYMENT_SERIES

    assert {r["record"] for r in group["rules"]} == DEPLOYMENT_SERIES and all(r["expr"] == "vector(1)"
                                                                          for r in group["rules"])
    found = [(r["labels"].get("namespace"), r["labels"]["service"], r["labels"]["process"]) for r in group["rules"]]
    assert len(found) == len(set(found))
    return set(found)


def deployment_rule_file(manifests: list[dict]) -> str:
    return by_name(manifests, "ConfigMap")["tuoguan-prometheus-rules"]["data"]["tuoguan-deployment.generated.yml"]


@pytest.mark.parametrize("name", [n for n in CI_FILES if n != "minimal"])
def test_the_in_chart_prometheus_knows_which_components_the_release_runs(name):
    manifests = rendered(name)
    (group,) = yaml.safe_load(deployment_rule_file(manifests))["groups"]
    assert deployed(group) == {(None, s, k) for _p, s, k in components_of(manifests)}


def test_a_component_the_release_runs_with_no_target_alerts_and_one_it_does_not_run_does_not(tmp_path):
    """The chart's generated group with the repository's rules, through promtool: a release
    without ticketing-worker and with registration-worker at 0 replicas (no autoscaler)
    expects neither; of the others, the one with no target at all alerts."""
    from tests.observability.support import RULES_DIR, binary

    manifests = with_values("tilt", {"services": {"ticketing-worker": {"enabled": False},
                                                  "registration-worker": {"replicas": 0}}})
    (group,) = yaml.safe_load(deployment_rule_file(manifests))["groups"]
    expected = deployed(group)
    assert (None, "ticketing", "worker") not in expected and (None, "registration", "worker") not in expected
    (tmp_path / "deployment.yml").write_text(deployment_rule_file(manifests))
    up = [f'up{{service="{s}", process="{k}", instance="10.0.0.{i}:1"}}'
          for i, (_ns, s, k) in enumerate(sorted(expected)) if (s, k) != ("billing", "worker")]
    tests = {
        "rule_files": [str(tmp_path / "deployment.yml"), str(RULES_DIR / "alerts-platform.yml")],
        "evaluation_interval": "1m",
        "tests": [{"interval": "1m", "input_series": [{"series": s, "values": "1x10"} for s in up],
                   "alert_rule_test": [{"eval_time": "10m", "alertname": "TuoguanServiceAbsent", "exp_alerts": [{
                       "exp_labels": {"severity": "critical", "subsystem": "REG-ONLINE", "service": "billing",
                                      "process": "worker"},
                       "exp_annotations": {
                           "summary": "No billing worker runs: Prometheus finds no replica to scrape",
                           "description": "The deployment runs the billing worker, but for 3 minutes Prometheus has "
                                          "found no replica of it, ready or not: none is running (scaled to zero, "
                                          "every pod pending or evicted, the Deployment gone) or its discovery is "
                                          "broken.",
                           "runbook_url": "docs/runbooks/TuoguanServiceAbsent.md"}}]}]}]}
    (tmp_path / "absent.test.yml").write_text(yaml.safe_dump(tests, sort_keys=False))
    import subprocess

    done = subprocess.run([binary("promtool"), "test", "rules", str(tmp_path / "absent.test.yml")],
                          capture_output=True, text=True)
    assert done.returncode == 0 and "FAILED" not in done.stdout, done.stdout + done.stderr


def test_ingress_routes_to_the_gateway():
    (ingress,) = of_kind(rendered("production"), "Ingress")
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": "tuoguan-gateway", "port": {"number": PORTS["gateway"]["http"]}}
    assert not of_kind(rendered("minimal"), "Ingress")


# ------------------------------------------------------------ observability

def test_the_chart_reads_the_repositorys_observability_files():
    drift = tools.observability_drift()
    assert not drift, "deploy/helm/tuoguan/files/observability " + "\n".join(drift)


@pytest.mark.parametrize("name", [n for n in CI_FILES if n != "minimal"])
def test_observability_stack_uses_the_repository_files(name):
    manifests = rendered(name)
    maps = by_name(manifests, "ConfigMap")
    rules = maps["tuoguan-prometheus-rules"].get("data") or {}
    for path in sorted((REPO / "observability" / "prometheus" / "rules").glob("*.yml")):
        assert rules.get(path.name) == path.read_text(), path.name
    dashboards = maps["tuoguan-grafana-dashboards"].get("data") or {}
    for path in sorted((REPO / "observability" / "grafana" / "dashboards").glob("*.json")):
        assert dashboards.get(path.name) == path.read_text(), path.name
    for folder, config_map in (("datasources", "tuoguan-grafana-datasources"),
                               ("dashboards", "tuoguan-grafana-dashboard-providers")):
        for path in sorted((REPO / "observability" / "grafana" / "provisioning" / folder).glob("*.y*ml")):
            assert maps[config_map]["data"].get(path.name) == path.read_text(), path.name
    grafana = by_name(manifests, "Deployment")["tuoguan-grafana"]
    grafana_env = env_of(pod_spec(grafana)["containers"][0])
    assert grafana_env["PROMETHEUS_URL"]["value"] == "http://tuoguan-prometheus:9090"
    mounts = {m["mountPath"] for m in pod_spec(grafana)["containers"][0]["volumeMounts"]}
    providers = yaml.safe_load(next(iter(maps["tuoguan-grafana-dashboard-providers"]["data"].values())))
    assert {p["options"]["path"] for p in providers["providers"]} <= mounts


@pytest.mark.parametrize("name", [n for n in CI_FILES if n != "minimal"])
def test_prometheus_scrapes_every_process_with_the_labels_the_rules_use(name):
    manifests = rendered(name)
    config = yaml.safe_load(by_name(manifests, "ConfigMap")["tuoguan-prometheus"]["data"]["prometheus.yml"])
    labelled = {}
    for job in config["scrape_configs"]:
        for sd in job.get("dns_sd_configs", []):
            (dns,) = sd["names"]
            labels = {r["target_label"]: r["replacement"] for r in job.get("relabel_configs", [])
                      if re.fullmatch(r["regex"], dns)}
            labelled[dns.split("-metrics.")[0].removeprefix("tuoguan-")] = (labels, sd["port"], dns.split(".")[0])
    deployments = platform_deployments(manifests)
    assert set(labelled) == set(deployments)
    services = by_name(manifests, "Service")
    for process, (labels, port, name) in labelled.items():
        kind = deployments[process]["metadata"]["labels"]["tuoguan.io/kind"]
        assert labels == {"service": process.rsplit("-", 1)[0] if kind != "gateway" else "gateway",
                          "process": kind}, process
        # Its metrics Service: headless, every pod ready or not (a crash-looping replica is a target
        # at up == 0, not gone), the metrics port only. The gRPC clients' headless Service keeps
        # ready pods only.
        metrics = services[name]
        assert name == f"tuoguan-{process}-metrics"
        assert metrics["spec"]["clusterIP"] == "None" and metrics["spec"]["publishNotReadyAddresses"] is True
        assert [p["port"] for p in metrics["spec"]["ports"]] == [port]
        assert matches({"matchLabels": metrics["spec"]["selector"]}, pod_labels(deployments[process]))
        headless = services[f"tuoguan-{process}-headless"]
        assert not headless["spec"].get("publishNotReadyAddresses"), process
        assert not services[f"tuoguan-{process}"]["spec"].get("publishNotReadyAddresses"), process


def prometheus_config(manifests: list[dict]) -> dict:
    """The in-chart Prometheus's generated prometheus.yml."""
    return yaml.safe_load(by_name(manifests, "ConfigMap")["tuoguan-prometheus"]["data"]["prometheus.yml"])


@pytest.mark.parametrize("name", [n for n in CI_FILES if n != "minimal"])
def test_the_in_chart_prometheus_sends_alerts_nowhere_unless_the_values_name_an_alertmanager(name):
    assert "alerting" not in prometheus_config(rendered(name))


@pytest.mark.parametrize("namespace", ["tuoguan", "tuoguan-staging"])
def test_the_in_chart_prometheus_labels_its_alerts_with_the_release_namespace(namespace):
    """Its targets carry no namespace (it sees one release), so its alerts
    would carry none either: an Alertmanager hearing staging and production
    would tie their inhibitions across both (alertmanager.yml's `equal`
    starts with the namespace)."""
    from tests.observability.support import DEPLOYMENT_LABEL

    config = prometheus_config(tools.render(json.loads(values_of("tilt")), namespace=namespace))
    assert config["global"]["external_labels"] == {DEPLOYMENT_LABEL: namespace}
    for job in config["scrape_configs"]:  # an external label never overrides the alert's own
        assert DEPLOYMENT_LABEL not in {r.get("target_label") for r in job.get("relabel_configs", [])}


def test_the_in_chart_prometheus_sends_its_alerts_to_the_alertmanagers_the_values_name(tmp_path):
    from tests.observability.support import binary

    peers = [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]
    manifests = with_values("production", {"observability": {"prometheus": {"alerting": {
        "alertmanagers": ["alertmanager-operated.monitoring.svc:9093", "alertmanager-1.monitoring.svc:9093"],
        "scheme": "https", "pathPrefix": "/alertmanager", "networkPeers": peers}}}})
    config = prometheus_config(manifests)
    assert config["alerting"] == {"alertmanagers": [{
        "scheme": "https", "path_prefix": "/alertmanager",
        "static_configs": [{"targets": ["alertmanager-operated.monitoring.svc:9093",
                                        "alertmanager-1.monitoring.svc:9093"]}]}]}
    # What the chart generates, Prometheus accepts.
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    import subprocess

    done = subprocess.run([binary("promtool"), "check", "config", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    # Its NetworkPolicy lets it reach them on their port, and nothing else new.
    prometheus = pods(manifests)["prometheus"]
    assert allows(manifests, prometheus, None, 9093)
    assert not allows(manifests, prometheus, None, 9094)
    policy = by_name(manifests, "NetworkPolicy")["tuoguan-prometheus"]
    assert policy["spec"]["egress"][-1] == {"ports": [{"port": 9093, "protocol": "TCP"}], "to": peers}
    assert not tools.validate(manifests, ["1.30"])
    assert not tools.lint(tools.deep_merge(json.loads(values_of("production")), {"observability": {
        "prometheus": {"alerting": {"alertmanagers": ["alertmanager-operated.monitoring.svc:9093"]}}}}))



@pytest.mark.parametrize("interval, timeout", [("5s", "5s"), ("500ms", "500ms"), ("10s", "10s"), ("15s", "10s"),
                                               ("1m", "10s")])
def test_the_in_chart_prometheus_accepts_its_config_at_any_scrape_interval(tmp_path, interval, timeout):
    """scrape_timeout was a fixed 10s: with observability.prometheus.scrapeInterval
    under 10s Prometheus refused the config ("global scrape timeout greater than
    scrape interval") and crash-looped, and the release had no alerts at all.
    The timeout is 10s, or the interval when that is shorter."""
    import subprocess

    from tests.observability.support import binary

    manifests = with_values("tilt", {"observability": {"prometheus": {"scrapeInterval": interval}}})
    text = by_name(manifests, "ConfigMap")["tuoguan-prometheus"]["data"]["prometheus.yml"]
    assert yaml.safe_load(text)["global"]["scrape_timeout"] == timeout
    path = tmp_path / "prometheus.yml"
    path.write_text(text)
    done = subprocess.run([binary("promtool"), "check", "config", "--syntax-only", str(path)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr

@pytest.mark.parametrize("address", ["alertmanager-operated.monitoring.svc", "http://am:9093", "am:9093/api"])
def test_an_alertmanager_is_named_host_and_port(address):
    import helm_python as helm

    with pytest.raises(helm.HelmError) as failure:
        tools.render(tools.with_token_keys({"observability": {"enabled": True, "prometheus": {
            "alerting": {"alertmanagers": [address]}}}}))
    assert "/observability/prometheus/alerting/alertmanagers/0" in str(failure.value)


def test_collector_configuration_keeps_the_file_and_points_traces_where_the_values_say():
    source = yaml.safe_load((REPO / "observability" / "otel-collector" / "config.yaml").read_text())
    for name, endpoint in (("production", "tempo-distributor.monitoring.svc.cluster.local:4317"), ("tilt", None)):
        config = yaml.safe_load(by_name(rendered(name), "ConfigMap")["tuoguan-otel-collector"]["data"]["config.yaml"])
        assert config["receivers"] == source["receivers"]
        exporters = config["exporters"]
        if endpoint:
            assert exporters["otlp/traces"]["endpoint"] == endpoint
        else:
            assert "otlp/traces" not in exporters
        for pipeline in config["service"]["pipelines"].values():
            assert set(pipeline["exporters"]) <= set(exporters) and pipeline["exporters"]


# ----------------------------------------------- a new service, values only

def test_a_service_added_in_values_gets_everything():
    added = {"services": {"assessment-api": {
        "kind": "api", "service": "assessment", "args": ["python", "-m", "assessment.api"],
        "ports": {"grpc": 50055, "metrics": 9105}, "uses": ["postgres"], "migrate": True}},
        "serviceMonitor": {"force": True}}
    manifests = tools.render(tools.with_token_keys(added))
    kinds = {m["kind"] for m in manifests if m["metadata"]["labels"].get("app.kubernetes.io/component")
             == "assessment-api"}
    assert kinds == {"Deployment", "Service", "PodDisruptionBudget", "NetworkPolicy", "ServiceMonitor"}
    (job,) = of_kind(manifests, "Job")
    assert "python -m assessment.migrate" in job["spec"]["template"]["spec"]["containers"][0]["args"][0]
    assert not tools.validate(manifests, ["1.30"])


# ------------------------------------- one component's own image (rolling)

PINNED_DIGEST = "sha256:" + "1" * 64


def with_values(base: str, extra: dict) -> list[dict]:
    """A CI values file with more values over it, rendered."""
    return tools.render(tools.deep_merge(json.loads(values_of(base)), extra))


def images_of(manifests: list[dict]) -> dict[str, str]:
    return {process: pod_spec(d)["containers"][0]["image"] for process, d in platform_deployments(manifests).items()}


def migrate_steps(manifests: list[dict]) -> list[tuple[str, str]]:
    """(image, command) of every `python -m` the migrate Job runs, in order."""
    (job,) = of_kind(manifests, "Job")
    return [(c["image"], line) for c in containers(job) for line in c["args"][0].splitlines()
            if line.startswith("python -m ")]


def production_image(tag: str | None = None, digest: str | None = None) -> str:
    image = json.loads(values_of("production"))["image"]
    return f"{image['repository']}:{tag or image['tag']}@{digest or image['digest']}"


@pytest.mark.parametrize("own, expected", [
    ({}, production_image()),
    ({"repository": "", "tag": "", "digest": ""}, production_image()),
    # Not the global digest: it is the global tag's image, which would run under the new tag's name.
    ({"tag": "0.2.0"}, "registry.example.org/tuoguan/tuoguan:0.2.0"),
    ({"tag": "0.2.0", "digest": PINNED_DIGEST}, production_image("0.2.0", PINNED_DIGEST)),
    ({"repository": "mirror.example.org/tuoguan"}, "mirror.example.org/tuoguan:0.1.0"),
], ids=str)
def test_a_component_pinned_to_its_own_image_runs_it_and_the_others_keep_the_global_one(own, expected):
    manifests = with_values("production", {"services": {"identity-api": {"image": own}}})
    images = images_of(manifests)
    assert images.pop("identity-api") == expected
    assert images == {process: production_image() for process in procfile() if process != "identity-api"}
    # A step of a rolling upgrade replaces no other component's pods.
    before = platform_deployments(rendered("production"))
    for process, deployment in platform_deployments(manifests).items():
        if process != "identity-api":
            assert deployment["spec"]["template"] == before[process]["spec"]["template"], process
    assert not tools.validate(manifests, ["1.30"])


def test_moving_the_global_image_to_a_components_pin_does_not_restart_it():
    """The last step of a rolling upgrade: image.* becomes the release, the pins go."""
    release = {"tag": "0.2.0", "digest": PINNED_DIGEST}
    pinned = platform_deployments(with_values("production", {"services": {"identity-api": {"image": release}}}))
    moved = platform_deployments(with_values("production", {"image": release}))
    assert pinned["identity-api"]["spec"]["template"] == moved["identity-api"]["spec"]["template"]
    assert pinned["gateway"]["spec"]["template"] != moved["gateway"]["spec"]["template"]


def test_the_version_label_is_the_tag_a_component_runs():
    app_version = yaml.safe_load((tools.CHART / "Chart.yaml").read_text())["appVersion"]
    assert app_version != "0.2.0"
    manifests = with_values("minimal", {"services": {
        "identity-api": {"image": {"tag": "0.2.0"}}, "gateway": {"image": {"tag": "0.2.1", "digest": PINNED_DIGEST}}},
        "ingress": {"enabled": True}})
    images = images_of(manifests)
    assert images["identity-api"] == "tuoguan:0.2.0"
    assert images["gateway"] == f"tuoguan:0.2.1@{PINNED_DIGEST}"
    assert of_kind(manifests, "Ingress"), "the gateway's Ingress is labelled too"
    for obj in manifests:
        labels = [obj["metadata"]["labels"]] + ([pod_labels(obj)] if obj["kind"] in WORKLOADS else [])
        expected = {"identity-api": "0.2.0", "gateway": "0.2.1"}.get(component(obj), app_version)
        for found in labels:
            assert found["app.kubernetes.io/version"] == expected, f"{obj['kind']}/{obj['metadata']['name']}"
    # The selector has no version in it: a Deployment's selector is immutable, and a pin must
    # update the Deployment, not have the upgrade refused.
    before, after = platform_deployments(rendered("minimal")), platform_deployments(manifests)
    assert {p: d["spec"]["selector"] for p, d in after.items()} == \
        {p: d["spec"]["selector"] for p, d in before.items()}
    assert not tools.lint(tools.deep_merge(json.loads(values_of("minimal")),
                                           {"services": {"identity-api": {"image": {"tag": "0.2.0"}}}}))


def test_each_services_migrations_and_seed_run_in_the_image_of_the_component_that_asks_for_them():
    """identity-api pinned: identity's migrations and seed run in its image (its database at the
    revision its code expects, before its new pods start), the others' in the global image (not
    migrated ahead of their pods), in the order they always run, the wait once, first."""
    seed = {"migrations": {"seed": True}}
    unpinned = with_values("production", seed)
    manifests = with_values("production", tools.deep_merge(seed, {"services": {
        "identity-api": {"image": {"tag": "0.2.0", "digest": PINNED_DIGEST}}}}))
    pinned = production_image("0.2.0", PINNED_DIGEST)
    before = migrate_steps(unpinned)
    assert {image for image, _ in before} == {production_image()}
    commands = [command for _, command in before]
    assert {"python -m identity.migrate", "python -m identity.seed"} <= set(commands)
    assert max(i for i, c in enumerate(commands) if c.endswith(".migrate")) < \
        min(i for i, c in enumerate(commands) if c.endswith(".seed"))
    assert migrate_steps(manifests) == [
        (pinned if command.split()[2].startswith("identity.") else production_image(), command)
        for command in commands]

    (job,) = of_kind(manifests, "Job")
    (single,) = containers(of_kind(unpinned, "Job")[0])
    steps = containers(job)
    assert len(steps) > 2 and pod_spec(job)["containers"][0]["name"] == "migrate"
    assert len({c["name"] for c in steps}) == len(steps)
    assert [("psycopg.connect" in c["args"][0]) for c in steps] == [True] + [False] * (len(steps) - 1)
    for container in steps:
        assert {k: v for k, v in container.items() if k not in ("name", "image", "args")} == \
            {k: v for k, v in single.items() if k not in ("name", "image", "args")}, container["name"]
    assert not tools.validate(manifests, ["1.30"])


@pytest.mark.parametrize("services, expected", [
    # The worker is not the one that migrates: ticketing still migrates in ticketing-api's image.
    ({"ticketing-worker": {"image": {"tag": "0.2.0"}}}, {}),
    # Pinned to the global image itself: nothing to split, one container as before.
    ({"billing-api": {"image": {"tag": "0.1.0", "digest": production_image().split("@")[1]}}}, {}),
    # Two components migrating one service in one image: it migrates once, in that image.
    ({"registration-api": {"image": {"tag": "0.2.0"}},
      "registration-worker": {"migrate": True, "image": {"tag": "0.2.0"}}},
     {"registration": "registry.example.org/tuoguan/tuoguan:0.2.0"}),
], ids=["worker-pinned", "pinned-to-the-global-image", "api-and-worker-together"])
def test_the_migrate_job_follows_the_components_that_migrate(services, expected):
    manifests = with_values("production", {"services": services})
    steps = migrate_steps(manifests)
    assert sorted(command.split()[2].split(".")[0] for _, command in steps) == DOMAIN_SERVICES
    for image, command in steps:
        assert image == expected.get(command.split()[2].split(".")[0], production_image()), command
    # A container per run of consecutive steps in one image.
    (job,) = of_kind(manifests, "Job")
    runs = [image for i, (image, _) in enumerate(steps) if i == 0 or steps[i - 1][0] != image]
    assert [c["image"] for c in containers(job)] == runs and len(runs) == (3 if expected else 1)


# ---------------------------------------------------------------- the image

def test_dockerfile_is_one_pinned_multi_stage_non_root_image_from_the_lock():
    text = (REPO / "Dockerfile").read_text()
    stages = re.findall(r"^FROM\s+(\S+)(?:\s+AS\s+(\S+))?", text, flags=re.M | re.I)
    assert [s[1] for s in stages][-1] == "runtime", "the production stage is the default (last) target"
    assert "dev" in [s[1] for s in stages]
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)", text, flags=re.M).group(1)
    assert re.fullmatch(r"python:3\.11\.\d+-slim(-\w+)?(@sha256:[0-9a-f]{64})?", base), base
    assert re.search(r"^ARG UV_IMAGE=\S+:\d+\.\d+\.\d+", text, flags=re.M)
    assert "uv sync --frozen --no-dev" in text
    users = re.findall(r"^USER\s+(\S+)", text, flags=re.M)
    assert users[-1] == "10001:10001"
    assert "PYTHONDONTWRITEBYTECODE=1" in text
    # A container's processes are called from outside it: every interface (the code's default is 127.0.0.1).
    for var in ("GATEWAY_HOST", "TUOGUAN_GRPC_HOST", "TUOGUAN_METRICS_HOST"):
        assert re.search(rf"^ENV (?:.*\\\n)*?\s*{var}=0\.0\.0\.0\b", text, flags=re.M), var
    ignored = (REPO / ".dockerignore").read_text().split()
    assert "*" in ignored and "**/tests/" in ignored
    # The chart runs it as the same user.
    default = yaml.safe_load((tools.CHART / "values.yaml").read_text())["default"]
    assert default["podSecurityContext"]["runAsUser"] == 10001


def test_production_lets_its_alertmanager_post_to_the_gateway_and_nothing_else_new():
    """Through the ingress the webhook is 404 (pod_only.py): the Alertmanager posts to the gateway's
    Service, which the policy lets it reach on the gateway's port only."""
    alertmanager = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
                    "podSelector": {"matchLabels": {"app.kubernetes.io/name": "alertmanager"}}}
    for name, allowed in (("production", True), ("minimal", False)):
        policies = of_kind(rendered(name), "NetworkPolicy")
        reaching = [rule for p in policies for rule in p["spec"].get("ingress", [])
                    if alertmanager in rule.get("from", [])]
        if not allowed:
            assert reaching == []
            continue
        (gateway,) = [p for p in policies if component(p) == "gateway"]
        (rule,) = [r for r in gateway["spec"]["ingress"] if alertmanager in r.get("from", [])]
        assert [port["port"] for port in rule["ports"]] == [8000]
        assert all(alertmanager not in r.get("from", []) for p in policies if p is not gateway
                   for r in p["spec"].get("ingress", []))
