"""The worker's sweep of payments billing failed without the provider's word
(never_authorized, not_found_at_provider): a charge may land on one after
all, and its money must go back.

Revision ID: 0005
Revises: 0004
"""
from tuoguan_common.db import create_index_concurrently, drop_index_concurrently

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The sweep reads a recent window of these, in failure order, every round:
    # crashes and provider outages only, never the bulk of the table. Built
    # concurrently: payments take every booking's writes, which a plain
    # CREATE INDEX would stop for as long as it scanned the table.
    create_index_concurrently(
        "payments_failed_unheard",
        "ON payments (settled_at, payment_id) "
        "WHERE status = 'FAILED' AND failure_reason IN ('never_authorized', 'not_found_at_provider') "
        "AND refund_requested_reason IS NULL")


def downgrade() -> None:
    drop_index_concurrently("payments_failed_unheard")
