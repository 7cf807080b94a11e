"""All SQL of identity's own tables: accounts (and their grade changes),
sign-in failures, password reset codes, device tokens and signed-out tokens."""
from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

import psycopg

from tuoguan_common.auth import CLOCK_SKEW_SECONDS, DEFAULT_TTL_SECONDS
from tuoguan_common.db import Database
from tuoguan_common.revocations import Revoked

from .domain.accounts import NewAccount
from .domain.password_reset import StoredCode


@dataclass(frozen=True)
class AccountRecord:
    account_id: str
    login: str
    display_name: str
    roles: tuple[str, ...]
    password_hash: str
    # An engineer's rate grade; None for everyone else and the ungraded.
    grade: str | None = None
    # What the account's tokens must carry (claim "gen"): moved on when they are withdrawn.
    token_generation: int = 0


def _record(row: dict | None) -> AccountRecord | None:
    if row is None:
        return None
    return AccountRecord(
        account_id=str(row["id"]), login=row["login"], display_name=row["display_name"],
        roles=tuple(row["roles"]), password_hash=row["password_hash"], grade=row["grade"],
        token_generation=row["token_generation"],
    )


# The generation in the same statement as the grade: a token signed from one
# plain read (sign-in's account_by_login) never pairs a grade with the
# generation of another. Not so for lock_account's FOR UPDATE after a wait
# (PostgreSQL rechecks the locked row, not the subquery): nothing signs from it.
_COLUMNS = ("id, login, display_name, roles, password_hash, grade, "
            "coalesce((SELECT g.generation FROM account_token_generations g WHERE g.account_id = accounts.id), 0) "
            "AS token_generation")
# A verifier accepts a token this long past its "exp": so long it stays listed.
TOKEN_LEEWAY = dt.timedelta(seconds=CLOCK_SKEW_SECONDS)
# Sign-in tokens live this long (identity signs them with its issuer's default).
SIGN_IN_TOKEN_LIFETIME = dt.timedelta(seconds=DEFAULT_TTL_SECONDS)
# A sign-in reads the account's generation, then checks the password (argon2,
# slow on purpose) and signs: a withdrawal committed meanwhile leaves a token
# of the old generation whose life starts after the withdrawal. Identity pods'
# clocks differ too. So an account stays listed this much longer than a token
# signed at its withdrawal could live; the list stays small all the same.
WITHDRAWAL_MARGIN = dt.timedelta(minutes=5)


@dataclass(frozen=True)
class DeviceTokenRecord:
    token_id: str
    device_name: str
    issued_by: str
    issued_at: dt.datetime
    expires_at: dt.datetime
    revoked_at: dt.datetime | None
    revoked_by: str | None
    revoke_reason: str | None


MAX_LISTED_DEVICE_TOKENS = 1000
_DEVICE_COLUMNS = "token_id, device_name, issued_by, issued_at, expires_at, revoked_at, revoked_by, revoke_reason"


class IdentityStore:
    def __init__(self, database: Database):
        self.database = database
        # The api opens the transaction when a write must share it with its
        # idempotency key.
        self.transaction = database.transaction

    # Accounts.

    def insert_account(self, cur: psycopg.Cursor, account: NewAccount, password_hash: str, *,
                       by: str, at: dt.datetime) -> AccountRecord | None:
        """Adds the account inside the caller's transaction; None when the login
        is taken. An account opened with a grade records that grade as given
        ``by`` (the admin's account id) ``at`` that time."""
        cur.execute(
            f"INSERT INTO accounts (login, password_hash, display_name, roles, grade) VALUES (%s, %s, %s, %s, %s) "
            f"ON CONFLICT (login) DO NOTHING RETURNING {_COLUMNS}",
            (account.login, password_hash, account.display_name, list(account.roles), account.grade),
        )
        record = _record(cur.fetchone())
        if record is not None and record.grade is not None:
            self._grade_given(cur, record.account_id, record.grade, by, at)
        return record

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

    def accounts_with_role(self, role: str) -> list[AccountRecord]:
        """Every account holding ``role``, by display name then login."""
        with self.transaction() as cur:
            cur.execute(f"SELECT {_COLUMNS} FROM accounts WHERE %s = ANY(roles) ORDER BY display_name, login",
                        (role,))
            return [_record(row) for row in cur.fetchall()]

    def lock_account(self, cur: psycopg.Cursor, account_id: str) -> AccountRecord | None:
        """The account, locked for the caller's transaction: changes of one
        account's grade take turns (two identical ones write one change)."""
        cur.execute(f"SELECT {_COLUMNS} FROM accounts WHERE id = %s FOR UPDATE", (uuid.UUID(account_id),))
        return _record(cur.fetchone())

    def set_grade(self, cur: psycopg.Cursor, account_id: str, grade: str, by: str, at: dt.datetime) -> AccountRecord:
        """In the caller's transaction (that of ``lock_account``): the account's
        new grade, the change recorded as given ``by`` ``at`` that time, and
        the account's tokens withdrawn: they carry the old grade, and the new
        price applies from the engineer's next sign-in, not a token's life later."""
        self.withdraw_tokens(cur, account_id, at)
        cur.execute(f"UPDATE accounts SET grade = %s WHERE id = %s RETURNING {_COLUMNS}",
                    (grade, uuid.UUID(account_id)))
        record = _record(cur.fetchone())
        self._grade_given(cur, account_id, grade, by, at)
        return record

    @staticmethod
    def _grade_given(cur: psycopg.Cursor, account_id: str, grade: str, by: str, at: dt.datetime) -> None:
        cur.execute("INSERT INTO staff_grade_changes (account_id, grade, set_by, set_at) VALUES (%s, %s, %s, %s)",
                    (uuid.UUID(account_id), grade, by, at))

    @staticmethod
    def withdraw_tokens(cur: psycopg.Cursor, account_id: str, at: dt.datetime) -> int:
        """In the caller's transaction: moves the account's token generation on,
        so every token signed before is refused; returns the new generation."""
        cur.execute(
            "INSERT INTO account_token_generations AS g (account_id, generation, withdrawn_at) VALUES (%s, 1, %s) "
            "ON CONFLICT (account_id) DO UPDATE SET generation = g.generation + 1, withdrawn_at = excluded.withdrawn_at "
            "RETURNING generation",
            (uuid.UUID(account_id), at),
        )
        return cur.fetchone()["generation"]

    def rehash_password(self, account_id: str, checked_hash: str, password_hash: str) -> bool:
        """Stores a stronger hash of the password just checked against
        ``checked_hash``, unless the password changed meanwhile (a reset racing
        the sign-in): the old password must not come back. False when it did."""
        with self.transaction() as cur:
            cur.execute("UPDATE accounts SET password_hash = %s WHERE id = %s AND password_hash = %s",
                        (password_hash, account_id, checked_hash))
            return cur.rowcount == 1

    # The sign-in throttle.

    def begin_attempt(self, login: str, at: dt.datetime, *, since: dt.datetime,
                      limit: int) -> tuple[int, dt.datetime | None]:
        """Counts the login's failures in the window and, below the limit, records
        this attempt as one until it succeeds: parallel guesses cannot all slip in
        under the limit, because each holds a place before the password is checked.
        Returns the failures counted before this attempt and the oldest of them
        (None when there are none): when it leaves the window, a locked login unlocks."""
        with self.transaction() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(hashtext('sign-in:' || %s))", (login,))
            cur.execute(
                "SELECT count(*) AS n, min(failed_at) AS oldest FROM sign_in_failures "
                "WHERE login = %s AND failed_at > %s", (login, since),
            )
            row = cur.fetchone()
            failures = int(row["n"])
            if failures < limit:
                cur.execute("INSERT INTO sign_in_failures (login, failed_at) VALUES (%s, %s)", (login, at))
            # Failures older than the window count for nothing; keep the table small.
            cur.execute("DELETE FROM sign_in_failures WHERE failed_at <= %s", (since,))
            return failures, row["oldest"]

    def last_attempt_at(self, login: str) -> dt.datetime | None:
        """When the login's newest attempt still counted (a failure, or a check not ended) began."""
        with self.transaction() as cur:
            cur.execute("SELECT max(failed_at) AS newest FROM sign_in_failures WHERE login = %s", (login,))
            return cur.fetchone()["newest"]

    def clear_failures(self, login: str) -> None:
        with self.transaction() as cur:
            cur.execute("DELETE FROM sign_in_failures WHERE login = %s", (login,))

    # Password reset codes.

    def lock_reset_code(self, cur: psycopg.Cursor, phone: str) -> StoredCode | None:
        """The phone's current code, locked for the caller's transaction (even
        when there is none yet), so that parallel requests for one phone take
        turns: two cannot both slip past the resend limit or the attempt limit."""
        cur.execute("SELECT pg_advisory_xact_lock(hashtext('password-reset:' || %s))", (phone,))
        cur.execute(
            "SELECT code_digest, issued_at, expires_at, attempts, day_started_at, codes_today, account_id "
            "FROM password_reset_codes WHERE phone = %s",
            (phone,),
        )
        row = cur.fetchone()
        if row is None:
            return None
        digest = row["code_digest"]
        return StoredCode(
            digest=bytes(digest) if digest is not None else None,
            issued_at=row["issued_at"], expires_at=row["expires_at"], attempts=row["attempts"],
            day_started_at=row["day_started_at"], codes_today=row["codes_today"],
            account_id=str(row["account_id"]) if row["account_id"] is not None else None,
        )

    def put_reset_code(
        self, cur: psycopg.Cursor, phone: str, digest: bytes, issued_at: dt.datetime, expires_at: dt.datetime,
        day: tuple[dt.datetime, int], *, sign_up: bool = False,
    ) -> str | None:
        """Replaces the phone's code with a new one and its attempts with none;
        ``day`` is the phone's day of codes with this one counted
        (``ResetCodePolicy.count_code``). Returns the account the phone signs
        in to, or None. A reset code for a phone without an account keeps no
        digest (nothing was sent, nothing can match); a ``sign_up`` code is
        sent to every phone and keeps its digest."""
        day_started_at, codes_today = day
        cur.execute(
            """
            INSERT INTO password_reset_codes (phone, account_id, code_digest, issued_at, expires_at, attempts,
                                              day_started_at, codes_today)
            SELECT %(phone)s, a.id, CASE WHEN a.id IS NULL AND NOT %(sign_up)s THEN NULL ELSE %(digest)s::bytea END,
                   %(issued_at)s, %(expires_at)s, 0, %(day_started_at)s, %(codes_today)s
            FROM (SELECT (SELECT id FROM accounts WHERE login = %(phone)s) AS id) a
            ON CONFLICT (phone) DO UPDATE SET
                account_id = EXCLUDED.account_id, code_digest = EXCLUDED.code_digest,
                issued_at = EXCLUDED.issued_at, expires_at = EXCLUDED.expires_at, attempts = 0,
                day_started_at = EXCLUDED.day_started_at, codes_today = EXCLUDED.codes_today
            RETURNING account_id
            """,
            {"phone": phone, "digest": digest, "issued_at": issued_at, "expires_at": expires_at,
             "day_started_at": day_started_at, "codes_today": codes_today, "sign_up": sign_up},
        )
        account_id = cur.fetchone()["account_id"]
        return str(account_id) if account_id is not None else None

    def forget_reset_codes(self, cur: psycopg.Cursor, expired_before: dt.datetime) -> None:
        """Keeps the table small: codes long expired are answered as unknown."""
        # Rows another request has locked (it is writing a new code over one)
        # are left for later: waiting on them while holding this phone's row,
        # as that request may wait on ours, would deadlock.
        cur.execute("DELETE FROM password_reset_codes WHERE phone IN (SELECT phone FROM password_reset_codes "
                    "WHERE expires_at < %s FOR UPDATE SKIP LOCKED)", (expired_before,))

    @staticmethod
    def spend_text(cur: psycopg.Cursor, hour: dt.datetime, per_hour: int) -> bool:
        """Counts one text in ``hour`` if it has had fewer than ``per_hour``;
        False, counting nothing, if it has had them. The hour's row stays
        locked until the caller's transaction ends, so concurrent requests
        cannot both take the last text."""
        cur.execute(
            "INSERT INTO texts_per_hour (hour, texts) VALUES (%(hour)s, 1) "
            "ON CONFLICT (hour) DO UPDATE SET texts = texts_per_hour.texts + 1 "
            "WHERE texts_per_hour.texts < %(per_hour)s RETURNING texts",
            {"hour": hour, "per_hour": per_hour})
        return cur.fetchone() is not None

    @staticmethod
    def forget_texts_per_hour(cur: psycopg.Cursor, before: dt.datetime) -> None:
        cur.execute("DELETE FROM texts_per_hour WHERE hour < %s", (before,))

    def count_reset_attempt(self, cur: psycopg.Cursor, phone: str) -> None:
        cur.execute("UPDATE password_reset_codes SET attempts = attempts + 1 WHERE phone = %s", (phone,))

    def spend_sign_up_code(self, cur: psycopg.Cursor, phone: str, account_id: str, spent_attempts: int,
                           resend_wait_over: dt.datetime) -> None:
        """In the transaction that opens the phone's account: its code is spent
        (attempts at ``spent_attempts``, the policy's maximum) and now the
        account's, and the phone's resend wait is over (``issued_at`` no later
        than ``resend_wait_over``): only the phone's holder brings its code, and
        they may ask for a reset code at once. The phone's day of codes stays: a
        sign-up must not start it afresh (nor tell whoever used it up that the
        number now has an account)."""
        cur.execute(
            "UPDATE password_reset_codes SET account_id = %s, attempts = greatest(attempts, %s), "
            "issued_at = least(issued_at, %s) WHERE phone = %s",
            (account_id, spent_attempts, resend_wait_over, phone))

    def complete_password_reset(self, cur: psycopg.Cursor, phone: str, password_hash: str,
                                spent_attempts: int, at: dt.datetime) -> str | None:
        """In the caller's transaction: the account of the phone's code gets the
        new password hash, the code is spent (its attempts set to
        ``spent_attempts``, the policy's maximum), the login's sign-in
        failures are forgotten and the account's tokens are withdrawn (whoever
        signed in with the old password, maybe a thief, is signed out). The code's row stays until it is forgotten
        with the others: it carries the phone's day of codes, which a reset
        must not start afresh. Returns the account id (None when the code has none)."""
        cur.execute(
            """
            UPDATE accounts a SET password_hash = %s
            FROM password_reset_codes r
            WHERE r.phone = %s AND a.id = r.account_id
            RETURNING a.id, a.login
            """,
            (password_hash, phone),
        )
        row = cur.fetchone()
        cur.execute("UPDATE password_reset_codes SET attempts = greatest(attempts, %s) WHERE phone = %s",
                    (spent_attempts, phone))
        if row is None:
            return None
        cur.execute("DELETE FROM sign_in_failures WHERE login = %s", (row["login"],))
        self.withdraw_tokens(cur, str(row["id"]), at)
        return str(row["id"])

    # Device tokens.

    def record_device_token(self, token: DeviceTokenRecord) -> None:
        """``insert_device_token`` in a transaction of its own (tests record tokens no route would issue)."""
        with self.transaction() as cur:
            self.insert_device_token(cur, token)

    def insert_device_token(self, cur: psycopg.Cursor, token: DeviceTokenRecord) -> None:
        """Records an issued token inside the caller's transaction (that of its idempotency key)."""
        cur.execute(
            f"INSERT INTO device_tokens ({_DEVICE_COLUMNS}) VALUES (%s, %s, %s, %s, %s, NULL, NULL, NULL)",
            (token.token_id, token.device_name, token.issued_by, token.issued_at, token.expires_at),
        )

    def device_token(self, cur: psycopg.Cursor, token_id: str) -> DeviceTokenRecord | None:
        cur.execute(f"SELECT {_DEVICE_COLUMNS} FROM device_tokens WHERE token_id = %s", (token_id,))
        row = cur.fetchone()
        return DeviceTokenRecord(**row) if row else None

    def device_tokens(self, device_name: str | None, include_expired: bool, now: dt.datetime) -> list[DeviceTokenRecord]:
        with self.transaction() as cur:
            cur.execute(
                f"SELECT {_DEVICE_COLUMNS} FROM device_tokens "
                "WHERE (%(device)s::text IS NULL OR device_name = %(device)s) AND (%(all)s OR expires_at > %(now)s) "
                "ORDER BY issued_at DESC, recorded_at DESC LIMIT %(limit)s",
                {"device": device_name, "all": include_expired, "now": now, "limit": MAX_LISTED_DEVICE_TOKENS},
            )
            return [DeviceTokenRecord(**row) for row in cur.fetchall()]

    def revoke_device_token(self, token_id: str, revoked_by: str, reason: str,
                            now: dt.datetime) -> DeviceTokenRecord | None:
        """Revokes the token once: a second revocation keeps the first's time,
        admin and reason. None when no such token was issued."""
        with self.transaction() as cur:
            cur.execute(
                "UPDATE device_tokens SET revoked_at = %s, revoked_by = %s, revoke_reason = %s "
                "WHERE token_id = %s AND revoked_at IS NULL",
                (now, revoked_by, reason, token_id),
            )
            cur.execute(f"SELECT {_DEVICE_COLUMNS} FROM device_tokens WHERE token_id = %s", (token_id,))
            row = cur.fetchone()
            return DeviceTokenRecord(**row) if row else None

    def sign_out(self, token_id: str, account_id: str, expires_at: dt.datetime, now: dt.datetime) -> bool:
        """Revokes a sign-in token; False when it was already signed out. The
        tokens past their expiry (and its leeway) leave the table here: the
        table holds at most a token lifetime's sign-outs."""
        with self.transaction() as cur:
            cur.execute("DELETE FROM signed_out_tokens WHERE expires_at <= %s", (now - TOKEN_LEEWAY,))
            cur.execute(
                "INSERT INTO signed_out_tokens (token_id, account_id, expires_at, signed_out_at) "
                "VALUES (%s, %s, %s, %s) ON CONFLICT (token_id) DO NOTHING RETURNING 1",
                (token_id, account_id, expires_at, now),
            )
            return cur.fetchone() is not None

    def revoked(self, now: dt.datetime) -> Revoked:
        """What a verifier could still accept and must not: the revoked and
        signed-out tokens not past their expiry and its leeway (an expired one
        is refused anyway), and the accounts withdrawn since the oldest
        sign-in token still alive was signed (with ``WITHDRAWAL_MARGIN``)."""
        with self.transaction() as cur:
            cur.execute("SELECT token_id FROM device_tokens WHERE revoked_at IS NOT NULL AND expires_at > %(since)s "
                        "UNION SELECT token_id FROM signed_out_tokens WHERE expires_at > %(since)s "
                        "ORDER BY token_id", {"since": now - TOKEN_LEEWAY})
            token_ids = frozenset(row["token_id"] for row in cur.fetchall())
            cur.execute("SELECT account_id, generation FROM account_token_generations WHERE withdrawn_at > %s",
                        (now - TOKEN_LEEWAY - SIGN_IN_TOKEN_LIFETIME - WITHDRAWAL_MARGIN,))
            return Revoked(token_ids, {str(row["account_id"]): row["generation"] for row in cur.fetchall()})
