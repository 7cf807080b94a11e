"""Runs the Tiltfile with the `starlark` package and stand-ins for Tilt's
builtins that record every call instead of building or deploying anything.

Only Tilt's documented builtins exist here, so a misspelt or invented one
fails the check as it would fail `tilt up`. The few whose results the Tiltfile
uses (read_yaml, listdir, helm, blob, local) return something of the right
shape; `local` runs nothing.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import starlark
import yaml
from starlark import BuiltinFunction, Dict, StarlarkList, namespace, to_value

# Tilt's API (https://docs.tilt.dev/api.html): builtins and the values of its namespaces.
TILT_BUILTINS = {
    "allow_k8s_contexts", "analytics_settings", "blob", "ci_settings", "custom_build", "dc_resource",
    "decode_json", "decode_yaml", "decode_yaml_stream", "default_registry", "disable_snapshots",
    "docker_build", "docker_compose", "docker_prune_settings", "enable_feature", "encode_json",
    "encode_yaml", "encode_yaml_stream", "exec_action", "fail", "fall_back_on", "filter_yaml", "helm",
    "http_get_action", "include", "initial_sync", "k8s_attach", "k8s_context", "k8s_custom_deploy",
    "k8s_image_json_path", "k8s_kind", "k8s_namespace", "k8s_resource", "k8s_yaml", "link", "listdir",
    "load_dynamic", "local", "local_resource", "port_forward", "probe", "read_file", "read_json",
    "read_yaml", "restart_container", "run", "secret_settings", "set_team", "sync", "tcp_socket_action",
    "update_settings", "version_settings", "warn", "watch_file", "watch_settings",
    "workload_to_resource_function",
}
TILT_CONSTANTS = {"TRIGGER_MODE_AUTO": "auto", "TRIGGER_MODE_MANUAL": "manual"}


@dataclass
class Blob:
    text: str
    source: Any = None

    def __str__(self) -> str:
        return self.text


@dataclass
class Call:
    name: str
    args: tuple
    kwargs: dict


@dataclass
class TiltRun:
    calls: list[Call] = field(default_factory=list)

    def of(self, name: str) -> list[Call]:
        return [c for c in self.calls if c.name == name]


def plain(value: Any) -> Any:
    """Starlark values as Python data; host objects (Blob, records) stay as they are."""
    if isinstance(value, Dict):
        return {plain(k): plain(v) for k, v in value.items()}
    if isinstance(value, (StarlarkList, list, tuple)):
        return [plain(v) for v in value]
    return value


def run_tiltfile(path: Path, *, repo: Path) -> TiltRun:
    run = TiltRun()

    def resolve(p: str) -> Path:
        q = Path(p)
        return q if q.is_absolute() else repo / q

    def record(name: str, result=None):
        def impl(*args, **kwargs):
            args, kwargs = tuple(plain(a) for a in args), {k: plain(v) for k, v in kwargs.items()}
            call = Call(name, args, kwargs)
            run.calls.append(call)
            return result(call) if result else None
        return BuiltinFunction(name=name, impl=impl)

    def listdir(call):
        directory = resolve(call.args[0])
        recursive = call.kwargs.get("recursive", call.args[1] if len(call.args) > 1 else False)
        paths = directory.rglob("*") if recursive else directory.iterdir()
        return to_value(sorted(str(p) for p in paths if p.is_file()))

    def read_yaml(call):
        target = resolve(call.args[0])
        if not target.exists() and len(call.args) > 1:
            return to_value(call.args[1])
        return to_value(yaml.safe_load(target.read_text()))

    def read_file(call):
        target = resolve(call.args[0])
        if not target.exists() and len(call.args) > 1:
            return Blob(str(call.args[1]))
        return Blob(target.read_text())

    def fail(call):
        raise starlark.EvalError(f"fail(): {call.args[0] if call.args else ''}")

    special = {
        "blob": lambda call: Blob(str(call.args[0])),
        "helm": lambda call: Blob("", source=call),
        "local": lambda call: Blob(""),
        "listdir": listdir,
        "read_yaml": read_yaml,
        "read_file": read_file,
        "fail": fail,
        "port_forward": lambda call: ("port_forward", call.args, call.kwargs),
        "link": lambda call: ("link", call.args, call.kwargs),
        "sync": lambda call: ("sync", call.args, call.kwargs),
        "run": lambda call: ("run", call.args, call.kwargs),
        "fall_back_on": lambda call: ("fall_back_on", call.args, call.kwargs),
    }
    predeclared: dict[str, Any] = {name: record(name, special.get(name)) for name in TILT_BUILTINS}
    predeclared.update(TILT_CONSTANTS)
    predeclared["os"] = namespace("os", {
        "getcwd": lambda: str(repo),
        "getenv": lambda key, default=None: os.environ.get(key, default),
        "environ": to_value({}),
        "name": "posix",
        "path": namespace("os.path", {
            "join": lambda *parts: os.path.join(*parts),
            "exists": lambda p: resolve(p).exists(),
            "basename": os.path.basename,
            "dirname": os.path.dirname,
            "abspath": lambda p: str(resolve(p)),
        }),
    })
    predeclared["config"] = namespace("config", {
        "main_dir": str(repo),
        "main_path": str(path),
        "tilt_subcommand": "up",
    })

    def no_extensions(module: str):
        raise starlark.EvalError(f"load({module!r}): the check knows no Tilt extensions; use builtins")

    starlark.exec_file(path.read_text(), filename=str(path), predeclared=predeclared, loader=no_extensions)
    return run
