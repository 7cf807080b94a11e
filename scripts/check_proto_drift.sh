#!/usr/bin/env bash
# Fails when the checked-in generated code differs from what proto/ generates,
# or when buf lint finds a proto out of house style.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/gen_protos.sh
if ! git diff --quiet --exit-code -- libs/protos/src || [ -n "$(git status --porcelain -- libs/protos/src)" ]; then
  echo "error: generated protobuf code is out of date; run scripts/gen_protos.sh and commit" >&2
  git status --short -- libs/protos/src >&2
  exit 1
fi
(cd proto && npx --yes @bufbuild/buf@1.75.0 lint)
echo "protos: generated code matches, buf lint clean"
