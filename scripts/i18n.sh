#!/usr/bin/env bash
# Refreshes the portal's message catalogues from the code and templates:
# new texts appear untranslated in every language's messages.po (translate
# them there), texts gone from the code are dropped. The tests fail while any
# Chinese text is missing.
set -euo pipefail
cd "$(dirname "$0")/../services/gateway"
pot=$(mktemp --suffix .pot)
trap 'rm -f "$pot"' EXIT
uv run --no-sync pybabel extract -F babel.cfg -k N_ -k _ -k translate:2 --no-location --sort-output -w 120 \
  --project "Tuoguan portal" -o "$pot" . 2>/dev/null
uv run --no-sync pybabel update -i "$pot" -d src/gateway/portal/locale -D messages --no-fuzzy-matching \
  --ignore-obsolete -w 120
