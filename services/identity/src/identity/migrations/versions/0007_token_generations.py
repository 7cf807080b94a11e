"""Token generations: an account's tokens can be withdrawn all at once.

A token says who the caller is and, for an engineer, the grade that prices
their hours. When that goes stale (an admin changes the grade) or must not
be trusted any more (the password was reset, maybe after a theft), identity
moves the account's generation on; tokens signed with an earlier one are
refused by every api once it reads identity's revocation list.

A table of its own rather than a column of ``accounts``: sign-ins read
accounts on while it runs (its foreign key locks out only writers of
accounts, for the instant of creating an empty table, or gives up after the
lock timeout), and only the accounts ever withdrawn have a row. ``withdrawn_at`` finds the ones a verifier still
needs to know of (withdrawn within a token's lifetime).

Revision ID: 0007
Revises: 0006
"""
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
        CREATE TABLE account_token_generations (
            account_id   uuid        PRIMARY KEY REFERENCES accounts (id),
            generation   integer     NOT NULL CHECK (generation > 0),
            withdrawn_at timestamptz NOT NULL
        )
    """)
    op.execute("CREATE INDEX account_token_generations_withdrawn ON account_token_generations (withdrawn_at)")


def downgrade() -> None:
    op.execute("DROP TABLE account_token_generations")
