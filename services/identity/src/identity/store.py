"""All SQL of identity's own tables: accounts and sign-in failures."""
from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

import psycopg

from tuoguan_common.db import Database

from .domain.accounts import NewAccount


@dataclass(frozen=True)
class AccountRecord:
    account_id: str
    login: str
    display_name: str
    roles: tuple[str, ...]
    password_hash: str


def _record(row: dict | None) -> AccountRecord | None:
    if row is None:
        return None
    return AccountRecord(
        account_id=str(row["id"]), login=row["login"], display_name=row["display_name"],
        roles=tuple(row["roles"]), password_hash=row["password_hash"],
    )


_COLUMNS = "id, login, display_name, roles, password_hash"


class IdentityStore:
    def __init__(self, database: Database):
        self.database = database
        # The api opens the transaction when a write must share it with its
        # idempotency key.
        self.transaction = database.transaction

    # Accounts.

    def insert_account(self, cur: psycopg.Cursor, account: NewAccount, password_hash: str) -> AccountRecord | None:
        """Adds the account inside the caller's transaction; None when the login is taken."""
        cur.execute(
            f"INSERT INTO accounts (login, password_hash, display_name, roles) VALUES (%s, %s, %s, %s) "
            f"ON CONFLICT (login) DO NOTHING RETURNING {_COLUMNS}",
            (account.login, password_hash, account.display_name, list(account.roles)),
        )
        return _record(cur.fetchone())

    def account_by_login(self, login: str) -> AccountRecord | None:
        with self.transaction() as cur:
            cur.execute(f"SELECT {_COLUMNS} FROM accounts WHERE login = %s", (login,))
            return _record(cur.fetchone())

    def account_by_id(self, account_id: str) -> AccountRecord | None:
        try:
            key = uuid.UUID(account_id)
        except ValueError:
            # Tokens of services and devices carry other subjects; they have no account here.
            return None
        with self.transaction() as cur:
            cur.execute(f"SELECT {_COLUMNS} FROM accounts WHERE id = %s", (key,))
            return _record(cur.fetchone())

    def replace_password_hash(self, account_id: str, password_hash: str) -> None:
        with self.transaction() as cur:
            cur.execute("UPDATE accounts SET password_hash = %s WHERE id = %s", (password_hash, account_id))

    # The sign-in throttle.

    def begin_attempt(self, login: str, at: dt.datetime, *, since: dt.datetime, limit: int) -> int:
        """Counts the login's failures in the window and, below the limit, records
        this attempt as one until it succeeds: parallel guesses cannot all slip in
        under the limit, because each holds a place before the password is checked.
        Returns the failures counted before this attempt."""
        with self.transaction() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(hashtext('sign-in:' || %s))", (login,))
            cur.execute(
                "SELECT count(*) AS n FROM sign_in_failures WHERE login = %s AND failed_at >= %s", (login, since),
            )
            failures = int(cur.fetchone()["n"])
            if failures < limit:
                cur.execute("INSERT INTO sign_in_failures (login, failed_at) VALUES (%s, %s)", (login, at))
            # Failures older than the window count for nothing; keep the table small.
            cur.execute("DELETE FROM sign_in_failures WHERE failed_at < %s", (since,))
            return failures

    def clear_failures(self, login: str) -> None:
        with self.transaction() as cur:
            cur.execute("DELETE FROM sign_in_failures WHERE login = %s", (login,))
