"""Writes the Tiltfile's secret values (git-ignored, under .run/): the token
keys `make up` uses (.run/keys, made when missing), the portal's session
secret and payment ticket key, and fixed development passwords for the
in-chart PostgreSQL, RabbitMQ and Grafana, so re-deploys keep the databases'
passwords.

    uv run --no-sync python scripts/tilt_values.py .run/tilt-values.yaml
"""
from __future__ import annotations

import secrets
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def tilt_values(keys_dir: Path) -> dict:
    private, public = keys_dir / "token-signing.pem", keys_dir / "token-verify.pem"
    if not (private.exists() and public.exists()):
        from tuoguan_common.auth import generate_keypair

        generate_keypair(keys_dir)
    session, ticket_key = keys_dir / "session-secret", keys_dir / "payment-ticket-key"
    for secret in (session, ticket_key):
        if not secret.exists():
            secret.write_text(secrets.token_urlsafe(32) + "\n")
    return {
        "secrets": {
            "sessionSecret": session.read_text().strip(),
            "paymentTicketKey": ticket_key.read_text().strip(),
            "postgresPassword": "tuoguan-dev",
            "rabbitmqPassword": "tuoguan-dev",
            "grafanaAdminPassword": "admin",
            "tokenKeys": {"privateKey": private.read_text(), "publicKey": public.read_text()},
        }
    }


def main(argv: list[str]) -> int:
    out = Path(argv[1] if len(argv) > 1 else REPO / ".run" / "tilt-values.yaml")
    keys_dir = Path(argv[2]) if len(argv) > 2 else REPO / ".run" / "keys"
    out.parent.mkdir(parents=True, exist_ok=True)
    text = "# Written by scripts/tilt_values.py for the Tiltfile: development secrets only.\n"
    text += yaml.safe_dump(tilt_values(keys_dir), sort_keys=False)
    if not out.exists() or out.read_text() != text:
        out.write_text(text)
        out.chmod(0o600)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
