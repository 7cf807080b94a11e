"""Password hashing with argon2id (argon2-cffi's RFC 9106 low-memory profile)."""
from __future__ import annotations

import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError


class Passwords:
    def __init__(self, hasher: PasswordHasher | None = None):
        self._hasher = hasher or PasswordHasher()
        # Checked when the login does not exist, so an unknown login costs as
        # much time as a wrong password and timing does not reveal accounts.
        self._decoy = self._hasher.hash(secrets.token_urlsafe(16))

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, password_hash: str | None, password: str) -> bool:
        """True when ``password`` matches; with no hash, spends the same time and says False."""
        try:
            return self._hasher.verify(password_hash or self._decoy, password) and password_hash is not None
        except (VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, password_hash: str) -> bool:
        """True when the hash was made with weaker parameters than today's."""
        return self._hasher.check_needs_rehash(password_hash)
