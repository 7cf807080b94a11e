"""Identity's own settings, read from the environment once at start-up."""
from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tuoguan_common.config import env_number

from .domain.password_reset import ResetCodePolicy

_RESET_KEY_LABEL = b"tuoguan-identity/password-reset-code/v1"


@dataclass(frozen=True)
class IdentityConfig:
    reset: ResetCodePolicy = field(default_factory=ResetCodePolicy)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> IdentityConfig:
        env = os.environ if env is None else env
        minutes = env_number("IDENTITY_RESET_CODE_MINUTES", ResetCodePolicy.lifetime.total_seconds() / 60, float,
                             env, minimum=0)
        resend = env_number("IDENTITY_RESET_RESEND_SECONDS", ResetCodePolicy.resend_after.total_seconds(), float,
                            env, minimum=0)
        return cls(reset=ResetCodePolicy(lifetime=dt.timedelta(minutes=minutes),
                                         resend_after=dt.timedelta(seconds=resend)))


def reset_code_key(private_key_file: str | None) -> bytes:
    """The secret that keys the reset codes' hashes.

    Derived from identity's token signing key, the one secret every identity
    replica already holds: codes stay checkable across replicas and restarts,
    and a copy of the database alone does not reveal them. Without a key file
    (tests that pass their own token issuer) a random key serves this process.
    """
    if not private_key_file:
        return secrets.token_bytes(32)
    return hmac.new(Path(private_key_file).read_bytes(), _RESET_KEY_LABEL, hashlib.sha256).digest()
