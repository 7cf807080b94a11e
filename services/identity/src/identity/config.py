"""Identity's own settings, read from the environment once at start-up."""
from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from tuoguan_common.config import env_flag, env_number

from .domain.notices import NoticeRetry
from .domain.password_reset import ResetCodePolicy
from .domain.text_budget import TextBudget

_RESET_KEY_LABEL = b"tuoguan-identity/password-reset-code/v1"
# Printable ASCII only: the API key goes into an HTTP header as it is.
_HEADER_TEXT = re.compile(r"[\x21-\x7e]+")


@dataclass(frozen=True)
class SmsGatewayConfig:
    """The SMS gateway that texts reset codes (``sms.HttpSmsNotifier``)."""

    url: str
    api_key: str | None = None
    sign_name: str = "Tuoguan"
    # Each of connect, send and read; a slower gateway counts as down.
    timeout_seconds: float = 3.0

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> SmsGatewayConfig | None:
        """None when ``IDENTITY_SMS_URL`` is unset: codes then go to the log."""
        url = (env.get("IDENTITY_SMS_URL") or "").strip()
        if not url:
            return None
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            # Not echoed: a URL may carry credentials.
            raise SystemExit("IDENTITY_SMS_URL must be an http:// or https:// URL with a host")
        # Secrets often end in a line break: stripped, as nobody means one in a key.
        api_key = (env.get("IDENTITY_SMS_API_KEY") or "").strip() or None
        if api_key is not None and not _HEADER_TEXT.fullmatch(api_key):
            raise SystemExit("IDENTITY_SMS_API_KEY must be printable ASCII without spaces")
        sign_name = (env.get("IDENTITY_SMS_SIGN_NAME") or "").strip() or cls.sign_name
        timeout = env_number("IDENTITY_SMS_TIMEOUT_SECONDS", cls.timeout_seconds, float, env, minimum=0.1)
        return cls(url=url, api_key=api_key, sign_name=sign_name, timeout_seconds=timeout)


@dataclass(frozen=True)
class IdentityConfig:
    reset: ResetCodePolicy = field(default_factory=ResetCodePolicy)
    # None: no SMS gateway; then reset codes go to the log (the development
    # adapter) only when ``codes_to_log`` says so, else identity does not start.
    sms: SmsGatewayConfig | None = None
    codes_to_log: bool = False
    texts: TextBudget = field(default_factory=TextBudget)
    # The worker's texts to patients: when a failed one is tried again, and
    # how often it looks for those due (seconds).
    notices: NoticeRetry = field(default_factory=NoticeRetry)
    notice_sweep_seconds: float = 5.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> IdentityConfig:
        env = os.environ if env is None else env
        minutes = env_number("IDENTITY_RESET_CODE_MINUTES", ResetCodePolicy.lifetime.total_seconds() / 60, float,
                             env, minimum=0)
        resend = env_number("IDENTITY_RESET_RESEND_SECONDS", ResetCodePolicy.resend_after.total_seconds(), float,
                            env, minimum=0)
        return cls(reset=ResetCodePolicy(lifetime=dt.timedelta(minutes=minutes),
                                         resend_after=dt.timedelta(seconds=resend)),
                   sms=SmsGatewayConfig.from_env(env),
                   codes_to_log=env_flag("IDENTITY_RESET_CODES_TO_LOG", env=env),
                   texts=TextBudget(per_hour=env_number("IDENTITY_SMS_TEXTS_PER_HOUR", TextBudget.per_hour, int, env,
                                                        minimum=0)),
                   notices=NoticeRetry(
                       first=dt.timedelta(seconds=env_number("IDENTITY_NOTICE_RETRY_FIRST_SECONDS",
                                                             NoticeRetry.first.total_seconds(), float, env,
                                                             minimum=0.01)),
                       longest=dt.timedelta(seconds=env_number("IDENTITY_NOTICE_RETRY_MAX_SECONDS",
                                                               NoticeRetry.longest.total_seconds(), float, env,
                                                               minimum=0.01)),
                       max_attempts=env_number("IDENTITY_NOTICE_MAX_ATTEMPTS", NoticeRetry.max_attempts, int, env,
                                               minimum=1)),
                   notice_sweep_seconds=env_number("IDENTITY_NOTICE_SWEEP_SECONDS", cls.notice_sweep_seconds, float,
                                                   env, minimum=0.05))


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
