"""The notification port: how identity reaches a person's phone.

``Notifier`` is the port; the api and the worker each receive one at start-up
(``choose_notifier`` builds it, tests pass their own). ``send_code`` sends a
code in one of the texts of ``CodeMessage`` (password reset, sign-up) and
returns once it is on its way, or raises ``SmsUnavailable`` when it is not:
the api has stored the code and its resend wait before it sends, holding no
lock, and tells the patient to ask again after that wait. ``send_notice``
sends a text about a patient's booking (``domain.notices``: a suspended
session), for identity's worker, which records each notice before it sends
it and tries a failed one again later.

* ``sms.HttpSmsNotifier``, the production adapter: a text message through the
  SMS gateway that ``IDENTITY_SMS_URL`` names.
* ``LogNotifier``, the development adapter: instead of sending a text message
  it writes one log line (``"password reset code"``, ``"sign-up code"``,
  ``"patient notice"``) with the phone number masked, so a
  developer running ``make up`` can read the code from identity-api's log.
  Chosen when ``IDENTITY_SMS_URL`` is unset and ``IDENTITY_RESET_CODES_TO_LOG``
  is true, with a warning at start-up; with neither, identity does not start.
"""
from __future__ import annotations

import logging
from typing import Protocol

from .config import IdentityConfig
from .domain.notices import PatientNotice
from .domain.password_reset import CodeMessage, mask_phone
from .sms import HttpSmsNotifier

log = logging.getLogger(__name__)


class Notifier(Protocol):
    def send_code(self, phone: str, code: str, message: CodeMessage) -> None:
        """Sends ``code`` to ``phone`` in the text ``message``; raises
        ``exceptions.SmsUnavailable`` when it could not."""

    def send_notice(self, phone: str, notice: PatientNotice) -> None:
        """Sends ``notice``'s text to ``phone``; raises ``exceptions.SmsUnavailable`` when it could not."""


class LogNotifier:
    """Development adapter: one log line, never the full phone number."""

    def __init__(self, logger: logging.Logger | None = None):
        self._log = logger or log

    def send_code(self, phone: str, code: str, message: CodeMessage) -> None:
        self._log.info(message.what, extra={"phone_masked": mask_phone(phone), "code": code})

    def send_notice(self, phone: str, notice: PatientNotice) -> None:
        # The text names no patient: the doctor, the department and the day only.
        self._log.info("patient notice", extra={"phone_masked": mask_phone(phone), "kind": notice.kind,
                                                "booking_id": notice.booking_id, "text": notice.text()})


def choose_notifier(config: IdentityConfig, what: str = "password reset and sign-up codes") -> Notifier:
    """The adapter of this process, chosen at start-up (logging is set up by
    then): the SMS gateway when ``IDENTITY_SMS_URL`` names one; otherwise the
    development adapter, which a production deployment must not run unnoticed.
    ``what``: what this process texts, for its log."""
    if config.sms is not None:
        log.info(f"{what} go by SMS", extra={"sms_timeout_seconds": config.sms.timeout_seconds,
                                             "sms_api_key_set": config.sms.api_key is not None})
        return HttpSmsNotifier(config.sms, minutes=config.reset.lifetime_minutes)
    if not config.codes_to_log:
        # Whoever reads the log could reset any patient's password: never by default.
        raise SystemExit(f"IDENTITY_SMS_URL is not set: set it to the SMS gateway that texts {what}, "
                         "or IDENTITY_RESET_CODES_TO_LOG=true to write them to this log (development only)")
    log.warning(f"{what} are written to this log, not sent to anyone: set IDENTITY_SMS_URL to send them by SMS")
    return LogNotifier()
