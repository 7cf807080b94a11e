"""How many reset codes a phone has had in its day: at most
ResetCodePolicy.max_codes_per_day (a fresh code a minute would otherwise give
fresh guesses a minute).

Revision ID: 0004
Revises: 0003
"""
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
        ALTER TABLE password_reset_codes
            ADD COLUMN day_started_at timestamptz,
            ADD COLUMN codes_today    integer NOT NULL DEFAULT 0 CHECK (codes_today >= 0)
    """)


def downgrade() -> None:
    op.execute("ALTER TABLE password_reset_codes DROP COLUMN codes_today, DROP COLUMN day_started_at")
