"""Engineers' rate grades: the grade an admin gave each engineer (what the
contract prices their logged hours by), and every change of it, for audit:
who changed an engineer's price, and when.

Existing engineers get no grade: the grades they picked on their own worklogs
were never trusted, so an admin grades each of them.

Revision ID: 0006
Revises: 0005
"""
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The grades as the contract lists them today (tuoguan_common.roles.GRADES),
    # written out: a migration keeps the schema it made, whatever the code says later.
    op.execute("""
        ALTER TABLE accounts
            ADD COLUMN grade text,
            ADD CONSTRAINT accounts_grade_known
                CHECK (grade IS NULL OR grade IN ('junior', 'intermediate', 'senior', 'expert')),
            ADD CONSTRAINT accounts_grade_engineers_only
                CHECK (grade IS NULL OR 'engineer' = ANY(roles))
    """)
    # One row per grade given (at creation or by SetStaffGrade); setting the
    # grade an engineer already holds writes none. set_by is the admin's token
    # subject (their account id), or "seed" for the demo data.
    op.execute("""
        CREATE TABLE staff_grade_changes (
            id         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            account_id uuid        NOT NULL REFERENCES accounts (id),
            grade      text        NOT NULL CHECK (grade IN ('junior', 'intermediate', 'senior', 'expert')),
            set_by     text        NOT NULL,
            set_at     timestamptz NOT NULL
        )
    """)
    op.execute("CREATE INDEX staff_grade_changes_account ON staff_grade_changes (account_id, set_at)")


def downgrade() -> None:
    op.execute("DROP TABLE staff_grade_changes")
    op.execute("ALTER TABLE accounts DROP COLUMN grade")
