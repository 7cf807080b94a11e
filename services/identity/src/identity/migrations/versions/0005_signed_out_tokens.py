"""Tokens their holders signed out: on the revocation list until they expire,
then of no use to keep (an expired token is refused anyway).

Revision ID: 0005
Revises: 0004
"""
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
        CREATE TABLE signed_out_tokens (
            token_id      text PRIMARY KEY,
            account_id    text NOT NULL,
            expires_at    timestamptz NOT NULL,
            signed_out_at timestamptz NOT NULL
        )
    """)
    op.execute("CREATE INDEX signed_out_tokens_expiry ON signed_out_tokens (expires_at)")


def downgrade() -> None:
    op.execute("DROP TABLE signed_out_tokens")
