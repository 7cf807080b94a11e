"""Payments, refunds, the double-entry ledger, the sandbox provider's books,
and the shared outbox, inbox and idempotency-key tables.

Revision ID: 0001
Revises:
"""
from alembic import op

from tuoguan_common.outbox import DDL

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(DDL)
    op.execute("""
        CREATE TABLE payments (
            payment_id              uuid        PRIMARY KEY,
            booking_id              text        NOT NULL,
            patient_id              text        NOT NULL,
            amount_fen              bigint      NOT NULL CHECK (amount_fen > 0),
            status                  text        NOT NULL
                                    CHECK (status IN ('PENDING', 'CAPTURED', 'FAILED', 'UNKNOWN', 'REFUNDED')),
            provider                text        NOT NULL,
            provider_reference      text        UNIQUE,
            failure_reason          text,
            refunded_fen            bigint      NOT NULL DEFAULT 0 CHECK (refunded_fen BETWEEN 0 AND amount_fen),
            refund_requested_reason text,
            created_at              timestamptz NOT NULL,
            settled_at              timestamptz,
            updated_at              timestamptz NOT NULL DEFAULT now(),
            -- The paying request's trace context: settling events continue its trace.
            trace_carrier           jsonb       NOT NULL DEFAULT '{}'::jsonb,
            -- A registration fee goes back whole or not at all.
            CHECK ((status = 'REFUNDED') = (refunded_fen = amount_fen)),
            CHECK ((status = 'FAILED') = (failure_reason IS NOT NULL))
        )
    """)
    # At most one payment per booking that is paid or being paid; a failed
    # one leaves room for another attempt.
    op.execute("CREATE UNIQUE INDEX payments_one_live_per_booking ON payments (booking_id) WHERE status <> 'FAILED'")
    op.execute("CREATE INDEX payments_by_booking ON payments (booking_id, created_at)")
    op.execute("CREATE INDEX payments_by_patient ON payments (patient_id, created_at)")
    # The worker's queues: small partial indexes the timers scan many times a second.
    op.execute("CREATE INDEX payments_pending ON payments (created_at) WHERE status = 'PENDING'")
    op.execute("CREATE INDEX payments_unknown ON payments (created_at) WHERE status = 'UNKNOWN'")
    op.execute("CREATE INDEX payments_refund_requested ON payments (created_at) "
               "WHERE refund_requested_reason IS NOT NULL AND status = 'CAPTURED'")

    op.execute("""
        CREATE TABLE refunds (
            refund_id          uuid        PRIMARY KEY,
            -- One refund per payment: never twice, whatever the redeliveries.
            payment_id         uuid        NOT NULL UNIQUE REFERENCES payments,
            amount_fen         bigint      NOT NULL CHECK (amount_fen > 0),
            reason             text        NOT NULL,
            provider_reference text        NOT NULL UNIQUE,
            refunded_at        timestamptz NOT NULL,
            created_at         timestamptz NOT NULL DEFAULT now()
        )
    """)

    op.execute("""
        CREATE TABLE ledger_accounts (
            code        text PRIMARY KEY
                        CHECK (code ~ '^(asset|liability|equity|revenue|expense):[a-z0-9_]+(:[a-z0-9_]+)*$'),
            description text NOT NULL
        )
    """)
    op.execute("""
        INSERT INTO ledger_accounts (code, description) VALUES
        ('asset:provider_clearing:sandbox', 'Fees collected by the sandbox payment provider, not yet paid out'),
        ('revenue:registration_fees', 'Registration fees earned, net of refunds')
    """)
    op.execute("""
        CREATE TABLE journal_entries (
            entry_id     uuid        PRIMARY KEY,
            kind         text        NOT NULL CHECK (kind IN ('registration_fee_capture', 'registration_fee_refund')),
            payment_id   uuid        REFERENCES payments,
            refund_id    uuid        UNIQUE REFERENCES refunds,
            -- When the money moved at the provider: the entry's business date.
            effective_at timestamptz NOT NULL,
            posted_at    timestamptz NOT NULL DEFAULT now(),
            -- One capture and one refund per payment, never two.
            CONSTRAINT journal_entries_once_per_payment UNIQUE (kind, payment_id),
            CHECK (kind NOT LIKE 'registration_fee_%' OR payment_id IS NOT NULL),
            CHECK ((kind = 'registration_fee_refund') = (refund_id IS NOT NULL))
        )
    """)
    op.execute("CREATE INDEX journal_entries_effective ON journal_entries (effective_at)")
    op.execute("""
        CREATE TABLE journal_lines (
            entry_id   uuid     NOT NULL REFERENCES journal_entries,
            line_no    smallint NOT NULL,
            account    text     NOT NULL REFERENCES ledger_accounts,
            side       text     NOT NULL CHECK (side IN ('debit', 'credit')),
            amount_fen bigint   NOT NULL CHECK (amount_fen > 0),
            PRIMARY KEY (entry_id, line_no)
        )
    """)
    op.execute("CREATE INDEX journal_lines_account ON journal_lines (account)")
    # Every entry balances, checked when its transaction commits (lines are
    # inserted one statement after another, so a per-statement check would
    # see half an entry). It fires for the entry and for each of its lines,
    # so neither an entry without lines nor a line added later gets through.
    op.execute("""
        CREATE FUNCTION journal_entry_must_balance() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            debits  bigint;
            credits bigint;
            lines   integer;
        BEGIN
            SELECT coalesce(sum(amount_fen) FILTER (WHERE side = 'debit'), 0),
                   coalesce(sum(amount_fen) FILTER (WHERE side = 'credit'), 0),
                   count(*)
              INTO debits, credits, lines
              FROM journal_lines WHERE entry_id = NEW.entry_id;
            IF lines < 2 OR debits <> credits THEN
                RAISE EXCEPTION 'journal entry % does not balance: debits %, credits %, % lines',
                    NEW.entry_id, debits, credits, lines
                    USING ERRCODE = 'check_violation';
            END IF;
            RETURN NULL;
        END $$
    """)
    op.execute("""
        CREATE CONSTRAINT TRIGGER journal_entries_balance AFTER INSERT ON journal_entries
        DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION journal_entry_must_balance()
    """)
    op.execute("""
        CREATE CONSTRAINT TRIGGER journal_lines_balance AFTER INSERT ON journal_lines
        DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION journal_entry_must_balance()
    """)
    # The ledger is append-only: a mistake is corrected by a new entry.
    op.execute("""
        CREATE FUNCTION ledger_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'the ledger is append-only: post a correcting entry instead'
                USING ERRCODE = 'insufficient_privilege';
        END $$
    """)
    for table in ("journal_entries", "journal_lines"):
        op.execute(f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                   "FOR EACH ROW EXECUTE FUNCTION ledger_is_append_only()")
        op.execute(f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                   "FOR EACH STATEMENT EXECUTE FUNCTION ledger_is_append_only()")

    # The sandbox provider's own books, as if on the provider's side.
    op.execute("CREATE SCHEMA sandbox_provider")
    op.execute("""
        CREATE TABLE sandbox_provider.charges (
            reference           text        PRIMARY KEY,
            merchant_payment_id text        NOT NULL,
            idempotency_key     text        NOT NULL UNIQUE,
            amount_fen          bigint      NOT NULL CHECK (amount_fen > 0),
            method_token        text        NOT NULL,
            outcome             text        NOT NULL CHECK (outcome IN ('captured', 'declined')),
            decline_reason      text,
            answers_online      boolean     NOT NULL,
            created_at          timestamptz NOT NULL,
            settles_at          timestamptz NOT NULL
        )
    """)
    op.execute("CREATE INDEX sandbox_charges_captured ON sandbox_provider.charges (settles_at) "
               "WHERE outcome = 'captured'")
    op.execute("""
        CREATE TABLE sandbox_provider.refunds (
            reference        text        PRIMARY KEY,
            charge_reference text        NOT NULL REFERENCES sandbox_provider.charges,
            idempotency_key  text        NOT NULL UNIQUE,
            amount_fen       bigint      NOT NULL CHECK (amount_fen > 0),
            created_at       timestamptz NOT NULL
        )
    """)
    op.execute("CREATE INDEX sandbox_refunds_charge ON sandbox_provider.refunds (charge_reference)")
    op.execute("CREATE INDEX sandbox_refunds_created ON sandbox_provider.refunds (created_at)")
    op.execute("""
        CREATE VIEW sandbox_provider.charge_book AS
        SELECT reference, merchant_payment_id, amount_fen, method_token, created_at, settles_at,
               CASE WHEN settles_at <= now() THEN outcome ELSE 'pending' END AS status,
               CASE WHEN settles_at <= now() THEN decline_reason END AS decline_reason
          FROM sandbox_provider.charges
    """)


def downgrade() -> None:
    op.execute("DROP SCHEMA sandbox_provider CASCADE")
    for table in ("journal_lines", "journal_entries", "ledger_accounts", "refunds", "payments"):
        op.execute(f"DROP TABLE {table} CASCADE")
    op.execute("DROP FUNCTION journal_entry_must_balance(), ledger_is_append_only()")
