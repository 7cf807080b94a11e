"""The notification port's production adapter: codes by text message,
through an HTTP SMS gateway.

``HttpSmsNotifier.send_code`` POSTs one JSON message to
``IDENTITY_SMS_URL`` and returns once the gateway answered 2xx. Anything else
(another status, a redirect, which is not followed, a timeout, no connection)
raises ``SmsUnavailable``: the caller has stored the code and its resend
wait first, so a send that failed (or timed out after the text went) is not
tried again before that wait. Neither the code nor the full phone number is
ever logged; each send counts in ``tuoguan_identity_sms_sends_total`` by template and outcome.

The standard library's HTTP client: the production image installs the
lock's runtime dependencies only, and a send a minute needs no pool. It
honours ``HTTPS_PROXY``/``NO_PROXY``, as a hospital's egress proxy wants.
"""
from __future__ import annotations

import http.client
import json
import logging
import time
import urllib.error
import urllib.request
import uuid
from typing import Callable

from tuoguan_common import metrics

from .config import SmsGatewayConfig
from .domain.notices import KINDS, PatientNotice
from .domain.password_reset import CodeMessage, mask_phone
from .exceptions import SmsUnavailable

log = logging.getLogger(__name__)

# sent: the gateway answered 2xx; rejected: any other status; timeout: no
# answer in time; unreachable: no connection (refused, DNS, TLS, reset).
OUTCOMES = ("sent", "rejected", "timeout", "unreachable")


def code_message(phone: str, code: str, minutes: int, sign_name: str,
                 message: CodeMessage = CodeMessage.PASSWORD_RESET) -> dict:
    """The gateway's JSON body: the template and its parameters, not a text
    (the provider keeps the approved wording of each template and its signature)."""
    return {"phone": phone, "template": message.value, "params": {"code": code, "minutes": minutes},
            "sign_name": sign_name}


def count_from_zero() -> None:
    """Every outcome's series exists before the first send (and in development,
    where nothing goes by SMS), so rates and alerts read 0, not nothing."""
    for outcome in OUTCOMES:
        for message in CodeMessage:
            metrics.IDENTITY_SMS_SENDS.labels(message.value, outcome)
        for kind in KINDS:
            metrics.IDENTITY_SMS_SENDS.labels(kind, outcome)


def notice_message(phone: str, notice: PatientNotice, sign_name: str) -> dict:
    """A notice's JSON body: its template and parameters, and its whole text
    (``params.text``) for a gateway that sends texts as they are."""
    return {"phone": phone, "template": notice.kind,
            "params": {**notice.template_params(), "text": notice.text(sign_name)}, "sign_name": sign_name}


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    # A redirect is an answer other than 2xx: not followed (a POST with a code
    # in it goes where it was configured to go, nowhere else).
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


class HttpSmsNotifier:
    """Sends codes through an HTTP SMS gateway; ``minutes`` is the codes'
    lifetime, for the message's text."""

    def __init__(self, config: SmsGatewayConfig, minutes: int, *,
                 request_id: Callable[[], str] = lambda: uuid.uuid4().hex):
        self.config = config
        self.minutes = minutes
        self._request_id = request_id
        self._opener = urllib.request.build_opener(_NoRedirects)

    def send_code(self, phone: str, code: str, message: CodeMessage) -> None:
        # One id per message: the gateway drops a repeat of it, and its records
        # and identity's log meet on it.
        self._send(phone, code_message(phone, code, self.minutes, self.config.sign_name, message),
                   self._request_id(), message.value, message.what)

    def send_notice(self, phone: str, notice: PatientNotice) -> None:
        """One text about a booking. Its request id is the notice's own, the
        same on every try: a send tried again after a timeout (the text may
        have gone) is dropped by the gateway as a repeat."""
        self._send(phone, notice_message(phone, notice, self.config.sign_name), notice.request_id, notice.kind,
                   "patient notice", booking_id=notice.booking_id)

    def _send(self, phone: str, message: dict, request_id: str, template: str, what: str, **logged) -> None:
        headers = {"Content-Type": "application/json", "Accept": "application/json",
                   "Idempotency-Key": request_id, "X-Request-Id": request_id, "User-Agent": "tuoguan-identity"}
        if self.config.api_key:
            headers["Authorization"] = f"Bearer {self.config.api_key}"
        request = urllib.request.Request(self.config.url, data=json.dumps(message).encode(), headers=headers,
                                         method="POST")
        started = time.monotonic()
        outcome, status = self._post(request)
        metrics.IDENTITY_SMS_SENDS.labels(template, outcome).inc()
        # The gateway's answer's body is not logged: it may repeat the number or the code.
        extra = {"outcome": outcome, "status": status, "request_id": request_id, "phone_masked": mask_phone(phone),
                 "duration_ms": round((time.monotonic() - started) * 1000), **logged}
        if outcome != "sent":
            log.warning(f"{what} not sent by SMS", extra=extra)
            raise SmsUnavailable()
        log.info(f"{what} sent by SMS", extra=extra)

    def _post(self, request: urllib.request.Request) -> tuple[str, int | None]:
        """The outcome of one POST and the status the gateway answered (None without one)."""
        try:
            with self._opener.open(request, timeout=self.config.timeout_seconds) as response:
                status = response.status
        except urllib.error.HTTPError as answer:  # a status other than 2xx, redirects included
            answer.close()
            return "rejected", answer.code
        except urllib.error.URLError as failure:
            return ("timeout" if isinstance(failure.reason, TimeoutError) else "unreachable"), None
        except TimeoutError:  # the answer did not come in time
            return "timeout", None
        except (OSError, http.client.HTTPException):  # the connection broke, or no HTTP came back
            return "unreachable", None
        return ("sent" if 200 <= status < 300 else "rejected"), status
