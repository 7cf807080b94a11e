"""Indexes for the retention purge (tuoguan_common.retention): ``inbox`` by
``handled_at`` and ``idempotency_keys`` by ``created_at``, so each run's
deletion of the oldest rows walks an index instead of reading the whole
table (the outbox goes by its primary key and needs none).

Built CONCURRENTLY: every payment claims its idempotency key and every refund event an inbox row, which a plain CREATE INDEX would stop for as
long as it read the table (a table that grew unpurged until this release:
minutes). A build that failed leaves an invalid index, dropped and built
again on the next run. New databases get them here too: the shared DDL does
not hold them.

Revision ID: 0006
Revises: 0005
"""
from tuoguan_common.db import create_index_concurrently, drop_index_concurrently
from tuoguan_common.retention import INDEXES

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for name, definition in INDEXES.items():
        create_index_concurrently(name, definition)


def downgrade() -> None:
    for name in INDEXES:
        drop_index_concurrently(name)
