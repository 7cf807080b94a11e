"""The texts identity sent in each clock hour: its budget of texts per hour
(domain/text_budget.py), one count across the replicas, kept a month to check
the SMS provider's bill against. No phone numbers: counts only.

Revision ID: 0010
Revises: 0009
"""
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
        CREATE TABLE texts_per_hour (
            hour  timestamptz PRIMARY KEY,
            texts integer NOT NULL CHECK (texts >= 0)
        )
    """)


def downgrade() -> None:
    op.execute("DROP TABLE texts_per_hour")
