#!/usr/bin/env bash
# Regenerates libs/protos/src/tuoguan from proto/. CI runs it and fails when
# the checked-in code differs (scripts/check_proto_drift.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
out=libs/protos/src
rm -rf "$out/tuoguan"
mkdir -p "$out"
mapfile -t files < <(cd proto && find tuoguan -name '*.proto' | sort)
(cd proto && uv run --no-sync python -m grpc_tools.protoc -I. \
  --python_out="../$out" --pyi_out="../$out" --grpc_python_out="../$out" "${files[@]}")
# Every generated folder is a regular package so tools and type checkers find it.
find "$out/tuoguan" -type d -exec touch {}/__init__.py \;
