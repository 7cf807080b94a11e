#!/usr/bin/env bash
# The deployment checks, offline (no cluster, Docker engine, helm binary or
# network): the chart's files/observability links to observability/, then tests/deploy
# renders the chart with every ci/*.yaml values file, runs `helm lint --strict`
# and strict Kubernetes schema validation, checks the platform's rules on what
# it renders, and runs the Tiltfile against stub Tilt builtins.
set -euo pipefail
cd "$(dirname "$0")/.."

uv run --no-sync python -m tests.deploy.chart_tools check-sync
uv run --no-sync pytest tests/deploy -q
