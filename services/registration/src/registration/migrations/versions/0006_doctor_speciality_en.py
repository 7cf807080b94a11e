"""A doctor's speciality in English, beside the Chinese one: the seed wrote
both languages in one field ("肺癌微创手术 (minimally invasive lung cancer
surgery)"), and the portal's Chinese pages carried the English in brackets.
The seed fills it on its next run; until then English pages show the Chinese.

Revision ID: 0006
Revises: 0005
"""
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A constant default: no table rewrite, a moment's lock.
    op.execute("ALTER TABLE doctors ADD COLUMN speciality_en text NOT NULL DEFAULT ''")


def downgrade() -> None:
    op.execute("ALTER TABLE doctors DROP COLUMN speciality_en")
