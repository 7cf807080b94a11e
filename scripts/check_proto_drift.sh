#!/usr/bin/env bash
# Fails when the checked-in generated code differs from what proto/ generates,
# when buf lint finds a proto out of house style, or when proto/ breaks the
# recorded v1 contract (scripts/proto_contract.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/gen_protos.sh
if ! git diff --quiet --exit-code -- libs/protos/src || [ -n "$(git status --porcelain -- libs/protos/src)" ]; then
  echo "error: generated protobuf code is out of date; run scripts/gen_protos.sh and commit" >&2
  git status --short -- libs/protos/src >&2
  exit 1
fi
(cd proto && npx --yes @bufbuild/buf@1.75.0 lint)
./scripts/proto_contract.sh check
echo "protos: generated code matches, buf lint clean, v1 contract kept"
