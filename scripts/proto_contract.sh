#!/usr/bin/env bash
# The v1 contract as released, guarded by `buf breaking` (DESIGN.md: "buf
# breaking guards v1"). proto/contract-v1.json is the buf image of proto/ as
# last recorded (pretty JSON, so a recording shows in review what changed).
#
#   scripts/proto_contract.sh check    fails on a breaking change against the
#                                      recording, or when proto/ has grown past it
#   scripts/proto_contract.sh record   records proto/ (refuses a breaking change:
#                                      a break is a v2 package, not a new v1)
set -euo pipefail
cd "$(dirname "$0")/../proto"
buf() { npx --yes @bufbuild/buf@1.75.0 "$@"; }
contract=contract-v1.json
current=$(mktemp --suffix=.json)
trap 'rm -f "$current"' EXIT
buf build --exclude-source-info -o "$current"
python3 -c 'import json, sys; json.dump(json.load(open(sys.argv[1])), sys.stdout, indent=2, sort_keys=True, ensure_ascii=False); print()' \
  "$current" > "$current.pretty" && mv "$current.pretty" "$current"

breaking() {
  if ! buf breaking --against "$contract"; then
    echo "error: the change above breaks the v1 contract (proto/$contract); add a v2 package instead" >&2
    exit 1
  fi
}

case "${1:-check}" in
  check)
    [ -f "$contract" ] || { echo "error: proto/$contract is missing; run scripts/proto_contract.sh record" >&2; exit 1; }
    breaking
    if ! cmp -s "$current" "$contract"; then
      echo "error: proto/ has changed since proto/$contract was recorded (compatibly);" \
           "run scripts/proto_contract.sh record and commit it" >&2
      exit 1
    fi
    echo "protos: no breaking change against proto/$contract" ;;
  record)
    if [ -f "$contract" ]; then breaking; fi
    cp "$current" "$contract"
    echo "recorded proto/$contract" ;;
  *) echo "usage: $0 check|record" >&2; exit 2 ;;
esac
