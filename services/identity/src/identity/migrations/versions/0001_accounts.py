"""Accounts, the sign-in throttle's failure log, and the shared outbox,
inbox and idempotency-key tables.

Revision ID: 0001
Revises:
"""
from alembic import op

from tuoguan_common.outbox import DDL

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(DDL)
    op.execute("""
        CREATE TABLE accounts (
            id            uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
            login         text        NOT NULL UNIQUE,
            password_hash text        NOT NULL CHECK (password_hash LIKE '$argon2id$%'),
            display_name  text        NOT NULL,
            roles         text[]      NOT NULL CHECK (cardinality(roles) > 0),
            created_at    timestamptz NOT NULL DEFAULT now()
        )
    """)
    # One row per wrong password, kept only as long as the throttle window.
    op.execute("""
        CREATE TABLE sign_in_failures (
            login     text        NOT NULL,
            failed_at timestamptz NOT NULL
        )
    """)
    op.execute("CREATE INDEX sign_in_failures_login ON sign_in_failures (login, failed_at)")
    op.execute("CREATE INDEX sign_in_failures_age ON sign_in_failures (failed_at)")


def downgrade() -> None:
    op.execute("DROP TABLE sign_in_failures")
    op.execute("DROP TABLE accounts")
