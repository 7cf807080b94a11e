"""The office's view of a session lists its bookings in every status; the
existing partial index covers only held and confirmed ones.

Revision ID: 0003
Revises: 0002
"""
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE INDEX IF NOT EXISTS bookings_of_session ON bookings (session_id, starts_at)")


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS bookings_of_session")
