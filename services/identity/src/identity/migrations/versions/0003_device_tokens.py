"""Device tokens as issued (never the token itself), and their revocation.

Revision ID: 0003
Revises: 0002
"""
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
        CREATE TABLE device_tokens (
            token_id      text        PRIMARY KEY CHECK (token_id ~ '^[0-9a-f]{32}$'),
            device_name   text        NOT NULL,
            issued_by     text        NOT NULL,
            issued_at     timestamptz NOT NULL,
            expires_at    timestamptz NOT NULL,
            revoked_at    timestamptz,
            revoked_by    text,
            revoke_reason text,
            -- Orders tokens issued within one second (issued_at is the token's, in whole seconds).
            recorded_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
            CHECK ((revoked_at IS NULL) = (revoked_by IS NULL))
        )
    """)
    op.execute("CREATE INDEX device_tokens_device ON device_tokens (device_name, issued_at DESC, recorded_at DESC)")
    # What every api asks for every refresh: the revoked tokens still unexpired.
    op.execute("CREATE INDEX device_tokens_revoked ON device_tokens (expires_at) WHERE revoked_at IS NOT NULL")


def downgrade() -> None:
    op.execute("DROP TABLE device_tokens")
