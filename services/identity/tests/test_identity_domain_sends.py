"""The pure parts of sending codes by SMS: what a phone without an account is
answered (domain/sends.py), the gateway's settings and message. No I/O."""
from __future__ import annotations

import datetime as dt
import logging

import pytest

from identity.config import IdentityConfig, SmsGatewayConfig
from identity.domain.password_reset import CodeMessage, ResetCodePolicy
from identity.domain.sends import Decoy, RecentSends
from identity.notifications import LogNotifier, choose_notifier
from identity.sms import HttpSmsNotifier, code_message


def last(values):
    return values[-1]


def test_before_any_send_a_phone_without_an_account_waits_a_typical_sends_time():
    assert RecentSends().decoy(at=100.0) == Decoy(fails=False, seconds=0.3)
    assert RecentSends(first_seconds=1.2).decoy(at=100.0) == Decoy(fails=False, seconds=1.2)


def test_it_waits_as_long_as_a_recent_send_took():
    sends = RecentSends(choice=last)
    sends.record(True, 0.2, at=10.0)
    sends.record(True, 0.3, at=11.0)
    assert sends.decoy(at=12.0) == Decoy(fails=False, seconds=0.3)


def test_the_wait_is_drawn_from_the_recent_sends_only():
    offered = []
    sends = RecentSends(keep=3, choice=lambda values: offered.append(list(values)) or values[0])
    for i in range(5):
        sends.record(True, float(i), at=float(i))
    sends.decoy(at=5.0)
    assert offered == [[2.0, 3.0, 4.0]]


def test_while_the_last_send_failed_it_is_refused_after_a_failed_sends_wait():
    sends = RecentSends(failing_for=60.0, choice=last)
    sends.record(True, 0.2, at=10.0)
    sends.record(False, 3.0, at=20.0)
    assert sends.decoy(at=21.0) == Decoy(fails=True, seconds=3.0)
    assert sends.decoy(at=79.9) == Decoy(fails=True, seconds=3.0)
    # Long after the failure, with no send since, it is answered as a send would have been.
    assert sends.decoy(at=80.0) == Decoy(fails=False, seconds=0.2)


def test_a_send_that_goes_through_ends_the_refusals():
    sends = RecentSends(choice=last)
    sends.record(False, 3.0, at=20.0)
    sends.record(True, 0.25, at=25.0)
    assert sends.decoy(at=26.0) == Decoy(fails=False, seconds=0.25)


def test_no_gateway_configured_means_none():
    assert SmsGatewayConfig.from_env({}) is None
    assert SmsGatewayConfig.from_env({"IDENTITY_SMS_URL": "  ", "IDENTITY_SMS_API_KEY": "k"}) is None
    assert IdentityConfig.from_env({}).sms is None


def test_the_gateway_settings_from_the_environment():
    config = IdentityConfig.from_env({
        "IDENTITY_SMS_URL": "https://sms.example.org/v1/messages", "IDENTITY_SMS_API_KEY": "sk-live-1\n",
        "IDENTITY_SMS_SIGN_NAME": "肿瘤医院", "IDENTITY_SMS_TIMEOUT_SECONDS": "1.5",
    })
    assert config.sms == SmsGatewayConfig(url="https://sms.example.org/v1/messages", api_key="sk-live-1",
                                          sign_name="肿瘤医院", timeout_seconds=1.5)
    defaults = SmsGatewayConfig.from_env({"IDENTITY_SMS_URL": "http://sms-relay:8080/send"})
    assert (defaults.api_key, defaults.sign_name, defaults.timeout_seconds) == (None, "Tuoguan", 3.0)


@pytest.mark.parametrize("env, problem", [
    ({"IDENTITY_SMS_URL": "sms.example.org/send"}, "IDENTITY_SMS_URL"),
    ({"IDENTITY_SMS_URL": "ftp://sms.example.org/send"}, "IDENTITY_SMS_URL"),
    ({"IDENTITY_SMS_URL": "https:///send"}, "IDENTITY_SMS_URL"),
    ({"IDENTITY_SMS_URL": "https://sms.example.org", "IDENTITY_SMS_API_KEY": "two words"}, "IDENTITY_SMS_API_KEY"),
    ({"IDENTITY_SMS_URL": "https://sms.example.org", "IDENTITY_SMS_TIMEOUT_SECONDS": "0"},
     "IDENTITY_SMS_TIMEOUT_SECONDS"),
    ({"IDENTITY_SMS_URL": "https://sms.example.org", "IDENTITY_SMS_TIMEOUT_SECONDS": "soon"},
     "IDENTITY_SMS_TIMEOUT_SECONDS"),
])
def test_bad_gateway_settings_stop_the_start(env, problem):
    with pytest.raises(SystemExit) as stopped:
        SmsGatewayConfig.from_env(env)
    assert problem in str(stopped.value)
    assert "two words" not in str(stopped.value)


@pytest.mark.parametrize("message, template", [
    (CodeMessage.PASSWORD_RESET, "password_reset"), (CodeMessage.SIGN_UP, "sign_up"),
])
def test_the_message_names_the_template_and_its_parameters(message, template):
    assert code_message("13800000001", "012345", 10, "Tuoguan", message) == {
        "phone": "13800000001", "template": template, "params": {"code": "012345", "minutes": 10},
        "sign_name": "Tuoguan"}


@pytest.mark.parametrize("lifetime, minutes", [
    (dt.timedelta(minutes=10), 10), (dt.timedelta(seconds=150), 2), (dt.timedelta(seconds=30), 1),
])
def test_the_lifetime_the_patient_is_told_in_whole_minutes(lifetime, minutes):
    assert ResetCodePolicy(lifetime=lifetime).lifetime_minutes == minutes


def test_with_a_gateway_the_codes_go_by_sms(caplog):
    caplog.set_level(logging.INFO)
    config = IdentityConfig.from_env({"IDENTITY_SMS_URL": "https://sms.example.org/send",
                                      "IDENTITY_RESET_CODE_MINUTES": "5"})
    notifier = choose_notifier(config)
    assert isinstance(notifier, HttpSmsNotifier) and notifier.minutes == 5
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_without_a_gateway_identity_does_not_start_unless_told_the_codes_may_go_to_the_log():
    with pytest.raises(SystemExit, match="IDENTITY_SMS_URL.*IDENTITY_RESET_CODES_TO_LOG=true"):
        choose_notifier(IdentityConfig.from_env({}))
    with pytest.raises(SystemExit):
        choose_notifier(IdentityConfig.from_env({"IDENTITY_RESET_CODES_TO_LOG": "no"}))


def test_told_so_the_codes_go_to_the_log_with_a_warning(caplog):
    caplog.set_level(logging.INFO)
    assert isinstance(choose_notifier(IdentityConfig.from_env({"IDENTITY_RESET_CODES_TO_LOG": "true"})), LogNotifier)
    [warning] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "written to this log" in warning.getMessage() and "IDENTITY_SMS_URL" in warning.getMessage()


def test_the_hours_texts_are_counted_by_clock_hour_and_their_refusal_says_until_when():
    from identity.domain.text_budget import TextBudget
    from identity.exceptions import SmsHourlyLimitReached

    budget = TextBudget(per_hour=3)
    at = dt.datetime(2026, 12, 1, 8, 59, 30, 250_000, tzinfo=dt.timezone.utc)
    assert budget.hour_of(at) == dt.datetime(2026, 12, 1, 8, tzinfo=dt.timezone.utc)
    assert budget.seconds_until_next_hour(at) == 30, "rounded up"
    assert budget.seconds_until_next_hour(budget.hour_of(at)) == 3600
    assert budget.enabled and not TextBudget(per_hour=0).enabled, "0: no budget"
    refusal = budget.refusal(at)
    assert isinstance(refusal, SmsHourlyLimitReached) and refusal.retry_after_seconds == 30
    assert "1 minute" in str(refusal)
    assert budget.forget_before(at) == dt.datetime(2026, 10, 30, 8, tzinfo=dt.timezone.utc)


def test_the_hours_texts_come_from_the_environment():
    assert IdentityConfig.from_env({}).texts.per_hour == 2000
    assert IdentityConfig.from_env({"IDENTITY_SMS_TEXTS_PER_HOUR": "0"}).texts.enabled is False
    with pytest.raises(SystemExit, match="IDENTITY_SMS_TEXTS_PER_HOUR"):
        IdentityConfig.from_env({"IDENTITY_SMS_TEXTS_PER_HOUR": "-1"})
