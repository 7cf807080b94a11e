#!/usr/bin/env bash
# make up: install, check the infrastructure, migrate, seed demo data, then run
# every process under one supervisor (honcho) until Ctrl-C, which stops them all.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "==> installing (uv sync)"
uv sync --frozen --quiet
./scripts/infra.sh

mkdir -p .run/keys
if [ ! -f .run/keys/token-signing.pem ]; then
  echo "==> generating a development token-signing key in .run/keys"
  uv run --no-sync python -c "from pathlib import Path; from tuoguan_common.auth import generate_keypair; generate_keypair(Path('.run/keys'))"
fi
export TUOGUAN_TOKEN_PRIVATE_KEY_FILE=$PWD/.run/keys/token-signing.pem
export TUOGUAN_TOKEN_PUBLIC_KEY_FILE=$PWD/.run/keys/token-verify.pem

for service in identity registration billing; do
  echo "==> migrating $service"
  uv run --no-sync python -m "$service.migrate"
done
echo "==> seeding demo data"
uv run --no-sync python -m identity.seed
uv run --no-sync python -m registration.seed

cat <<'BANNER'

  Tuoguan is starting. When the processes below report they listen:

    Patients and staff (HTTP API)  http://127.0.0.1:8000/        OpenAPI: http://127.0.0.1:8000/docs
    gRPC APIs                      identity 127.0.0.1:50051, registration :50052, billing :50053
    Metrics                        gateway :8000/metrics; apis :9101-9103; workers :9112-9113

    Demo accounts                  patient 13800000001 / Patient1234
                                   registration office: office / Office1234
                                   admin / Admin1234     finance / Finance1234

  Ctrl-C stops everything.

BANNER
exec uv run --no-sync honcho start -f Procfile
