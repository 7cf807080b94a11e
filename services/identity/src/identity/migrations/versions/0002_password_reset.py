"""Password reset codes: one current code per phone number.

Revision ID: 0002
Revises: 0001
"""
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Only a keyed hash of the code is kept. A phone number without an account
    # gets a row too (account_id and code_digest NULL), so the resend limit
    # treats it like any other and its answers reveal nothing.
    op.execute("""
        CREATE TABLE password_reset_codes (
            phone       text        PRIMARY KEY,
            account_id  uuid        REFERENCES accounts (id) ON DELETE CASCADE,
            code_digest bytea       CHECK (octet_length(code_digest) = 32),
            issued_at   timestamptz NOT NULL,
            expires_at  timestamptz NOT NULL,
            attempts    integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
            CHECK ((account_id IS NULL) = (code_digest IS NULL))
        )
    """)
    op.execute("CREATE INDEX password_reset_codes_expiry ON password_reset_codes (expires_at)")


def downgrade() -> None:
    op.execute("DROP TABLE password_reset_codes")
