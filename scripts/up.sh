#!/usr/bin/env bash
# make up: install, check the infrastructure, migrate, seed demo data, then run
# every process under one supervisor (honcho) until Ctrl-C, which stops them all.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "==> installing (uv sync)"
uv sync --frozen --quiet
./scripts/infra.sh

# Secrets: readable by their owner only (the directory and every key in it).
mkdir -p .run/keys && chmod 700 .run/keys
if [ ! -f .run/keys/token-signing.pem ]; then
  echo "==> generating a development token-signing key in .run/keys"
  uv run --no-sync python -c "from pathlib import Path; from tuoguan_common.auth import generate_keypair; generate_keypair(Path('.run/keys'))"
fi
export TUOGUAN_TOKEN_PRIVATE_KEY_FILE=$PWD/.run/keys/token-signing.pem
export TUOGUAN_TOKEN_PUBLIC_KEY_FILE=$PWD/.run/keys/token-verify.pem
# Signs the portal's session cookies: kept, so a restart does not sign everyone out.
if [ ! -f .run/keys/session-secret ]; then
  (umask 077 && uv run --no-sync python -c "import secrets; print(secrets.token_urlsafe(32))" > .run/keys/session-secret)
fi
export GATEWAY_SESSION_SECRET=$(cat .run/keys/session-secret)
# Registration signs each hold's payment ticket with it, billing checks them
# (honcho gives every process one environment; the chart gives it to those two only).
if [ ! -f .run/keys/payment-ticket-key ]; then
  (umask 077 && uv run --no-sync python -c "import secrets; print(secrets.token_urlsafe(32))" > .run/keys/payment-ticket-key)
fi
# Made by an earlier version with the default umask: closed now.
chmod 600 .run/keys/token-signing.pem .run/keys/session-secret .run/keys/payment-ticket-key
export TUOGUAN_PAYMENT_TICKET_KEY=$(cat .run/keys/payment-ticket-key)
# A developer's platform: password-reset codes go to identity-api's log (set
# IDENTITY_SMS_URL to a gateway to text them instead).
export IDENTITY_RESET_CODES_TO_LOG=${IDENTITY_RESET_CODES_TO_LOG:-true}

for service in identity registration billing ticketing; do
  echo "==> migrating $service"
  uv run --no-sync python -m "$service.migrate"
done
echo "==> seeding demo data"
uv run --no-sync python -m identity.seed
uv run --no-sync python -m registration.seed
uv run --no-sync python -m ticketing.seed

cat <<'BANNER'

  Tuoguan is starting. When the processes below report they listen:

    Patient portal                 http://127.0.0.1:8000/         (简体中文; English in the header)
    Registration office console    http://127.0.0.1:8000/office   (sign in as office / Office1234;
                                   today's demo sessions have bookings to check in and mark no-show)
    HTTP API                       http://127.0.0.1:8000/api/v1/departments   OpenAPI: http://127.0.0.1:8000/docs
    gRPC APIs                      identity 127.0.0.1:50051, registration :50052, billing :50053, ticketing :50054
    Metrics                        gateway :8000/metrics; apis :9101-9104; workers :9111-9114

    Demo accounts                  patient 13800000001 / Patient1234
                                   registration office: office / Office1234
                                   admin / Admin1234     finance / Finance1234
                                   O&M: clinician / Clinician1234, dispatcher / Dispatcher1234,
                                   engineer (senior) and engineer2 (intermediate) / Engineer1234
    Sign-up and password-reset     printed in the identity-api log (development notifier):
    codes                          "msg": "sign-up code", "password reset code"
    Texts to patients              printed in the identity-worker log (phone masked):
    (a suspended session)          "msg": "patient notice"

  Ctrl-C stops everything.

BANNER
exec uv run --no-sync honcho start -f Procfile
