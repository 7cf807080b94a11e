"""A FAILED payment whose charge, made after the failure, was given back
shows what went back and when (refunded_fen stays 0: the CHECK on REFUNDED
keeps it for the refund of a captured fee).

Revision ID: 0007
Revises: 0006
"""
from alembic import op
from tuoguan_common.db import own_transaction

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_CHECK = ("refunded_after_failure_fen >= 0 "
          "AND (refunded_after_failure_fen = 0 OR status = 'FAILED') "
          "AND (refunded_after_failure_fen > 0) = (refunded_after_failure_at IS NOT NULL)")


# The charges given back before this revision, as their refunds say. Also the
# query to run once the old billing workers are gone (docs/deploy.md): they
# give charges back without these columns until then.
BACKFILL = """
    UPDATE payments p SET refunded_after_failure_fen = r.amount_fen, refunded_after_failure_at = r.refunded_at
      FROM refunds r
     WHERE r.payment_id = p.payment_id AND r.reason = 'charged_after_failure' AND p.status = 'FAILED'
       AND p.refunded_after_failure_fen = 0
"""


def upgrade() -> None:
    # A constant default rewrites no row, and the check is added NOT VALID;
    # the backfill and the validation run after this transaction: payments
    # takes every booking's writes, which a scan under the ALTER's lock would
    # stop. Written to run again if the upgrade stopped after that commit.
    op.execute(f"""
        ALTER TABLE payments
            DROP CONSTRAINT IF EXISTS payments_refunded_after_failure,
            ADD COLUMN IF NOT EXISTS refunded_after_failure_fen bigint NOT NULL DEFAULT 0,
            ADD COLUMN IF NOT EXISTS refunded_after_failure_at  timestamptz,
            ADD CONSTRAINT payments_refunded_after_failure CHECK ({_CHECK}) NOT VALID
    """)
    with op.get_context().autocommit_block():
        # Each in a transaction of its own, its lock waits bounded as the ALTER's are.
        with own_transaction():
            op.execute(BACKFILL)
        with own_transaction():
            op.execute("ALTER TABLE payments VALIDATE CONSTRAINT payments_refunded_after_failure")


def downgrade() -> None:
    op.execute("ALTER TABLE payments DROP COLUMN refunded_after_failure_fen, DROP COLUMN refunded_after_failure_at")
