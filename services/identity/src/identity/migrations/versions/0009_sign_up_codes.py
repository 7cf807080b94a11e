"""Sign-up codes: a phone without an account may hold a code too.

Before, a row without an account never had a digest: only an account's phone
was sent a reset code. A patient signing up proves the phone is theirs with a
code sent to a number that has no account yet, so the rule is now one-way:
an account's row has a digest; a row without an account may have one.

Revision ID: 0009
Revises: 0008
"""
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Every row already meets the new rule (the old one implies it). Both
    # statements run in this migration's one transaction, under the first's
    # ACCESS EXCLUSIVE lock: brief, as the table holds a day of codes at most
    # (sign-ins do not read it; code requests and resets wait that instant).
    op.execute("""
        ALTER TABLE password_reset_codes
            DROP CONSTRAINT password_reset_codes_check,
            ADD CONSTRAINT password_reset_codes_account_has_digest
                CHECK (account_id IS NULL OR code_digest IS NOT NULL) NOT VALID
    """)
    op.execute("ALTER TABLE password_reset_codes VALIDATE CONSTRAINT password_reset_codes_account_has_digest")


def downgrade() -> None:
    # Sign-up codes cannot be kept under the old rule: they stop working (the
    # rows stay, with the phones' resend waits and days of codes).
    op.execute("UPDATE password_reset_codes SET code_digest = NULL WHERE account_id IS NULL")
    op.execute("""
        ALTER TABLE password_reset_codes
            DROP CONSTRAINT password_reset_codes_account_has_digest,
            ADD CONSTRAINT password_reset_codes_check CHECK ((account_id IS NULL) = (code_digest IS NULL))
    """)
