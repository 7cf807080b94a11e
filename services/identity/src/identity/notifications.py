"""The notification port: how identity reaches a person's phone.

``Notifier`` is the port; the api receives one at start-up (``identity.api``'s
``main`` builds it, tests pass their own). ``LogNotifier`` is the development
adapter: instead of sending a text message it writes one log line with the
phone number masked and the code, so a developer running ``make up`` can read
the code from identity-api's log. A production adapter (an SMS gateway)
implements the same one method.
"""
from __future__ import annotations

import logging
from typing import Protocol

from .domain.password_reset import mask_phone

log = logging.getLogger(__name__)


class Notifier(Protocol):
    def send_reset_code(self, phone: str, code: str) -> None:
        """Sends the password reset ``code`` to ``phone``."""


class LogNotifier:
    """Development adapter: one log line, never the full phone number."""

    def __init__(self, logger: logging.Logger | None = None):
        self._log = logger or log

    def send_reset_code(self, phone: str, code: str) -> None:
        self._log.info("password reset code", extra={"phone_masked": mask_phone(phone), "code": code})
