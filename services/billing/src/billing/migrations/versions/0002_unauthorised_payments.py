"""A payment is committed before the provider is asked: what the worker needs
to finish or give up an authorisation the api did not finish.

Revision ID: 0002
Revises: 0001
"""
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
        ALTER TABLE payments
            -- The payment page's token, kept only until the provider's reference is stored.
            ADD COLUMN method_token    text,
            -- The booking's hold as registration stated it when the payment opened.
            ADD COLUMN hold_expires_at timestamptz,
            -- When the provider's reference was stored: the online answer's timeout runs from here.
            ADD COLUMN authorized_at   timestamptz
    """)
    # Before this revision the reference was stored with the payment.
    op.execute("UPDATE payments SET authorized_at = created_at WHERE provider_reference IS NOT NULL")
    # The worker's queue of payments opened but not authorised: empty but for a crash or a provider outage.
    op.execute("CREATE INDEX payments_unauthorized ON payments (created_at) "
               "WHERE status = 'PENDING' AND provider_reference IS NULL")


def downgrade() -> None:
    op.execute("DROP INDEX payments_unauthorized")
    op.execute("ALTER TABLE payments DROP COLUMN method_token, DROP COLUMN hold_expires_at, "
               "DROP COLUMN authorized_at")
