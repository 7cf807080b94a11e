"""Identity's rules, no I/O."""
from __future__ import annotations

import datetime as dt

import pytest

from identity.domain import accounts as rules
from identity.domain.throttle import SignInThrottle
from identity.exceptions import InvalidAccountField, NotASignInToken, TooManyAttempts
from tuoguan_common import auth


# The list here is the test's own: domain/ reads no file (identity.common_passwords does).
POLICY = rules.PasswordPolicy(common=frozenset({"password1", "woaini1314", "qwer1234"}))


def _broken(fn, *args, **kwargs):
    with pytest.raises(InvalidAccountField) as err:
        fn(*args, **kwargs)
    return err.value


@pytest.mark.parametrize("phone", ["13800000001", "19912345678", " 15000000000 "])
def test_mainland_mobile_numbers_are_accepted(phone):
    assert rules.patient_phone(phone) == phone.strip()


@pytest.mark.parametrize("phone", [
    "12800000001",    # second digit 2: not a mobile prefix
    "1380000000",     # 10 digits
    "138000000012",   # 12 digits
    "+8613800000001",
    "138-0000-0001",
    "1380000000a",
    "１３８０００００００１",  # full-width digits
])
def test_other_numbers_are_refused_with_the_field(phone):
    err = _broken(rules.patient_phone, phone)
    assert (err.field, err.reason) == ("phone", "phone_format")


def test_missing_phone_is_required():
    assert _broken(rules.patient_phone, "  ").reason == "required"


@pytest.mark.parametrize("password,reason", [
    ("", "required"),
    ("abc1234", "password_too_short"),
    ("abcdefgh", "password_letters_and_digits"),
    ("12345678", "password_letters_and_digits"),
    ("a1" * 65, "password_too_long"),
])
def test_password_policy(password, reason):
    err = _broken(rules.password, password, POLICY)
    assert (err.field, err.reason) == ("password", reason)


@pytest.mark.parametrize("password", ["Patient1234", "abcdefg1", "密码密码密码12", " spaced 1 "])
def test_passwords_with_letters_and_digits_pass_unchanged(password):
    assert rules.password(password, POLICY) == password


@pytest.mark.parametrize("password", ["password1", "Password1", "WOAINI1314", "qWeR1234"])
def test_a_listed_password_is_refused_whatever_its_case(password):
    err = _broken(rules.password, password, POLICY, field="new_password")
    assert (err.field, err.reason) == ("new_password", "password_common")
    assert password.lower() not in err.problem.lower()


@pytest.mark.parametrize("password", ["password12", "xwoaini1314", "password 1", "qwer12345"])
def test_only_the_listed_password_itself_is_refused(password):
    assert rules.password(password, POLICY) == password


def test_the_shape_is_judged_before_the_list():
    # A short listed password is told it is short: the list only matters once the rest passes.
    assert _broken(rules.password, "abc123", rules.PasswordPolicy(common=frozenset({"abc123"}))).reason == \
        "password_too_short"


@pytest.mark.parametrize("password", ["a13800138000", "13800138000Zz", "Ab00138000x", "00138000abc"])
def test_a_password_holding_the_phone_number_or_its_last_8_digits_is_refused(password):
    err = _broken(rules.password, password, POLICY, phone="13800138000")
    assert (err.field, err.reason) == ("password", "password_contains_phone")
    assert "13800138000" not in err.problem


@pytest.mark.parametrize("password", ["a0138000", "1380013800a", "Zz13912345678"])
def test_a_password_holding_less_of_the_phone_or_another_number_passes(password):
    # 7 of the last 8 digits, the first 10 digits, another number.
    assert rules.password(password, POLICY, phone="13800138000") == password


@pytest.mark.parametrize("password", ["li.qiang2026", "2026LI.QIANG", "Li.Qiang-1234"])
def test_a_password_holding_the_staff_id_is_refused_whatever_its_case(password):
    err = _broken(rules.password, password, POLICY, login="li.qiang")
    assert (err.field, err.reason) == ("password", "password_contains_login")


def test_without_the_phone_or_login_nothing_personal_is_checked():
    assert rules.password("a13800138000", POLICY) == "a13800138000"
    assert rules.password("li.qiang2026", POLICY) == "li.qiang2026"


def test_the_demo_policy_holds_the_shape_only():
    # Why the seed has a policy of its own: the published demo passwords hold their staff ids.
    assert _broken(rules.new_staff, "admin", "Admin1234", "陈建国", [auth.ADMIN], policy=POLICY).reason == \
        "password_contains_login"
    assert rules.new_staff("admin", "Admin1234", "陈建国", [auth.ADMIN], policy=rules.DEMO_PASSWORDS).login == "admin"
    assert rules.password("Admin1234", rules.DEMO_PASSWORDS, login="admin") == "Admin1234"
    assert rules.password("password1", rules.DEMO_PASSWORDS) == "password1"
    assert _broken(rules.password, "admin", rules.DEMO_PASSWORDS).reason == "password_too_short"


def test_a_new_patient_s_password_may_not_hold_their_phone_or_be_common():
    assert _broken(rules.new_patient, "13800000001", "a13800000001", "张晓明", POLICY).reason == \
        "password_contains_phone"
    assert _broken(rules.new_patient, "13800000001", "Woaini1314", "张晓明", POLICY).reason == "password_common"


def test_a_new_staff_account_s_password_may_not_hold_its_login_or_be_common():
    # The login as stored (lower case), whatever case it was typed in.
    assert _broken(rules.new_staff, "Li.Qiang", "li.qiang2026", "李强", [auth.ADMIN], policy=POLICY).reason == \
        "password_contains_login"
    assert _broken(rules.new_staff, "li.qiang", "Password1", "李强", [auth.ADMIN], policy=POLICY).reason == \
        "password_common"


def test_sign_in_password_is_not_held_to_todays_policy():
    assert rules.presented_password("short") == "short"
    assert _broken(rules.presented_password, "").reason == "required"
    assert _broken(rules.presented_password, "x" * 129).reason == "password_too_long"


@pytest.mark.parametrize("name", ["张晓明", "欧阳娜娜", "A", "x" * 40, " 李秀英 "])
def test_display_names_of_1_to_40_characters(name):
    assert rules.display_name(name) == name.strip()


@pytest.mark.parametrize("name,reason", [
    ("", "required"), ("   ", "required"), ("张" * 41, "display_name_length"), ("张\n明", "display_name_characters"),
    ("张\x00明", "display_name_characters"),
])
def test_display_name_refusals(name, reason):
    err = _broken(rules.display_name, name)
    assert (err.field, err.reason) == ("display_name", reason)


def test_staff_ids_are_lower_case_and_cannot_look_like_a_phone_number():
    assert rules.staff_login("Office") == "office"
    assert rules.staff_login("zhang.wei-2") == "zhang.wei-2"
    for bad in ("13800000001", "ab", "a b", "王丽华", "x" * 33):
        assert _broken(rules.staff_login, bad).reason == "login_format"


def test_staff_roles_exclude_patients_services_and_devices():
    assert rules.staff_roles([auth.FINANCE, auth.ADMIN, auth.FINANCE]) == (auth.ADMIN, auth.FINANCE)
    assert _broken(rules.staff_roles, []).reason == "required"
    for outsider in (auth.PATIENT, auth.SERVICE, auth.DEVICE, "unknown_role_42"):
        err = _broken(rules.staff_roles, [auth.ADMIN, outsider])
        assert (err.field, err.reason) == ("roles", "role_not_staff")


def test_new_patient_checks_fields_in_form_order():
    assert _broken(rules.new_patient, "bad", "bad", "", POLICY).field == "phone"
    assert _broken(rules.new_patient, "13800000001", "bad", "", POLICY).field == "password"
    assert _broken(rules.new_patient, "13800000001", "Patient1234", "", POLICY).field == "display_name"
    account = rules.new_patient("13800000001", "Patient1234", "张晓明", POLICY)
    assert account == rules.NewAccount("13800000001", "张晓明", (auth.PATIENT,))


def test_idempotency_key_is_required_and_bounded():
    assert rules.idempotency_key(" k1 ") == "k1"
    assert _broken(rules.idempotency_key, "").field == "idempotency_key"
    assert _broken(rules.idempotency_key, "k" * 129).reason == "too_long"
    err = _broken(rules.idempotency_key, "k\x001")
    assert (err.field, err.reason) == ("idempotency_key", "control_characters")


@pytest.mark.parametrize("login,expected", [
    ("Office ", "office"), ("13800000001", "13800000001"), ("old-style login", "old-style login"), ("a" * 64, "a" * 64),
])
def test_a_sign_in_login_is_not_held_to_todays_rules(login, expected):
    assert rules.sign_in_login(login) == expected


@pytest.mark.parametrize("login,reason", [
    ("", "required"), ("  ", "required"), ("a" * 65, "too_long"), ("ab" * 1600, "too_long"),
    ("office\x00", "control_characters"), ("off\x1bice", "control_characters"), ("office\x7f", "control_characters"),
])
def test_a_sign_in_login_that_can_be_no_login_is_refused(login, reason):
    err = _broken(rules.sign_in_login, login)
    assert (err.field, err.reason) == ("login", reason)


def test_control_characters_are_refused_in_free_text_naming_the_field():
    err = _broken(rules.plain, "a\x00b", "display_name")
    assert (err.field, err.reason) == ("display_name", "control_characters")
    # Lines and tabs are text, as the platform's rule has it.
    assert rules.plain("line one\nline two\tend", "reason") == "line one\nline two\tend"


def test_throttle_locks_at_the_fifth_failure_within_the_window():
    throttle = SignInThrottle(max_failures=5, window=dt.timedelta(minutes=5))
    now = dt.datetime(2026, 12, 1, 8, 0, tzinfo=dt.timezone.utc)
    assert throttle.window_start(now) == now - dt.timedelta(minutes=5)
    assert not throttle.is_locked(4)
    assert throttle.is_locked(5)


def test_a_locked_login_waits_until_its_oldest_failure_leaves_the_window():
    throttle = SignInThrottle(max_failures=5, window=dt.timedelta(minutes=5))
    now = dt.datetime(2026, 12, 1, 8, 0, tzinfo=dt.timezone.utc)
    assert throttle.seconds_until_unlocked(now, now) == 300
    assert throttle.seconds_until_unlocked(now - dt.timedelta(seconds=250), now) == 50
    assert throttle.seconds_until_unlocked(now - dt.timedelta(seconds=250.5), now) == 50
    # Whole seconds, never 0: a client told to wait 0 would ask again at once.
    assert throttle.seconds_until_unlocked(now - dt.timedelta(seconds=299.9), now) == 1
    assert throttle.seconds_until_unlocked(now - dt.timedelta(minutes=6), now) == 1


def test_a_locked_sign_in_says_how_long_to_wait():
    locked = TooManyAttempts(50)
    assert locked.retry_after_seconds == 50 and "1 minute" in locked.message
    assert "5 minutes" in TooManyAttempts(300).message


@pytest.mark.parametrize("roles,token_id,allowed", [
    ({auth.PATIENT}, "a" * 32, True), ({auth.REGISTRATION_OFFICE, auth.ADMIN}, "a" * 32, True),
    ({auth.DEVICE}, "a" * 32, False), ({auth.SERVICE}, "a" * 32, False), ({auth.PATIENT}, "", False),
])
def test_only_a_sign_in_token_with_an_id_is_signed_out(roles, token_id, allowed):
    if allowed:
        rules.check_sign_out(frozenset(roles), token_id)
    else:
        with pytest.raises(NotASignInToken):
            rules.check_sign_out(frozenset(roles), token_id)
