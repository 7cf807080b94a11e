"""Engineers' rate grades, the rules alone (no I/O): what a grade is, who may
hold one, when giving one changes anything, and what a token carries."""
from __future__ import annotations

import uuid

import pytest

from identity.domain import accounts as rules
from identity.domain import grades
from identity.exceptions import InvalidAccountField, NotAnEngineer
from tuoguan_common import auth
from tuoguan_common.roles import GRADES


# No list to check against here: grades are what these tests are about.
POLICY = rules.PasswordPolicy(common=frozenset())


def _refused(fn, *args, **kwargs):
    with pytest.raises(InvalidAccountField) as err:
        fn(*args, **kwargs)
    return err.value


@pytest.mark.parametrize(("raw", "stored"), [
    ("junior", "junior"), ("intermediate", "intermediate"), ("senior", "senior"), ("expert", "expert"),
    (" Senior ", "senior"), ("EXPERT", "expert"), ("\tJunior\n", "junior"),
])
def test_a_grade_is_stored_stripped_and_in_lower_case(raw, stored):
    assert grades.grade(raw) == stored


def test_the_four_grades_are_the_contracts():
    assert tuple(grades.grade(g) for g in GRADES) == ("junior", "intermediate", "senior", "expert")


@pytest.mark.parametrize("raw", ["principal", "seniors", "sen ior", "高级", "3", "GRADE_SENIOR", "senior\x00",
                                 "x" * 10_000])
def test_anything_else_is_refused_naming_the_field_and_listing_the_four(raw):
    err = _refused(grades.grade, raw)
    assert (err.code, err.field, err.reason) == ("INVALID_ARGUMENT", "grade", "unknown_grade")
    assert err.problem == "must be one of junior, intermediate, senior, expert"


@pytest.mark.parametrize("raw", ["", "   ", None])
def test_a_grade_to_set_is_required(raw):
    err = _refused(grades.grade, raw)
    assert (err.field, err.reason) == ("grade", "required")
    assert "junior, intermediate, senior, expert" in err.problem


def test_a_new_engineer_may_open_with_a_grade_or_without_one():
    account = rules.new_staff("li.qiang", "Engineer2026", "李强", [auth.ENGINEER], " Senior ", policy=POLICY)
    assert (account.roles, account.grade) == ((auth.ENGINEER,), "senior")
    assert rules.new_staff("li.qiang", "Engineer2026", "李强", [auth.ENGINEER], policy=POLICY).grade is None
    assert rules.new_staff("li.qiang", "Engineer2026", "李强", [auth.ENGINEER], "  ", policy=POLICY).grade is None
    # Another role beside engineer does not stand in the way.
    both = rules.new_staff("li.qiang", "Engineer2026", "李强", [auth.DISPATCHER, auth.ENGINEER], "expert",
                           policy=POLICY)
    assert both.grade == "expert"


@pytest.mark.parametrize("roles", [[auth.DISPATCHER], [auth.CLINICIAN], [auth.ADMIN], [auth.FINANCE, auth.CONSULTANT]])
def test_a_new_account_without_the_engineer_role_may_not_have_a_grade(roles):
    err = _refused(rules.new_staff, "li.qiang", "Engineer2026", "李强", roles, "senior", policy=POLICY)
    assert (err.code, err.field, err.reason) == ("INVALID_ARGUMENT", "grade", "not_an_engineer")
    # Without a grade it is a valid account.
    assert rules.new_staff("li.qiang", "Engineer2026", "李强", roles, policy=POLICY).grade is None


def test_a_new_accounts_bad_grade_is_refused_as_a_grade():
    err = _refused(rules.new_staff, "li.qiang", "Engineer2026", "李强", [auth.ENGINEER], "principal", policy=POLICY)
    assert (err.field, err.reason) == ("grade", "unknown_grade")


def test_a_patient_never_has_a_grade():
    assert rules.new_patient("13800000001", "Patient1234", "张晓明", POLICY).grade is None


def test_giving_an_engineer_a_grade_changes_something_only_when_it_differs():
    engineer = (auth.ENGINEER,)
    assert grades.grade_change(engineer, None, "junior") is True
    assert grades.grade_change(engineer, "junior", "senior") is True
    assert grades.grade_change(engineer, "senior", "senior") is False
    assert grades.grade_change((auth.DISPATCHER, auth.ENGINEER), "senior", "expert") is True


@pytest.mark.parametrize(("roles", "current"), [
    ((auth.PATIENT,), None), ((auth.DISPATCHER,), None), ((auth.ADMIN,), None), ((auth.CLINICIAN,), "senior"),
])
def test_an_account_that_is_not_an_engineers_cannot_be_graded(roles, current):
    with pytest.raises(NotAnEngineer) as err:
        grades.grade_change(roles, current, "senior")
    assert (err.value.code, err.value.reason) == ("FAILED_PRECONDITION", "not_an_engineer")


@pytest.mark.parametrize(("roles", "current", "claim"), [
    ((auth.ENGINEER,), "senior", "senior"),
    ((auth.ENGINEER, auth.DISPATCHER), "expert", "expert"),
    ((auth.ENGINEER,), None, ""),        # not graded yet: the token says nothing
    ((auth.DISPATCHER,), "senior", ""),  # whatever a row holds, only an engineer's token carries a grade
    ((auth.PATIENT,), None, ""),
])
def test_only_an_engineers_token_carries_a_grade(roles, current, claim):
    assert grades.token_grade(roles, current) == claim


def test_an_account_id_is_a_uuid_in_its_canonical_form():
    key = uuid.uuid4()
    assert rules.account_id(f"  {str(key).upper()} ") == str(key)
    assert (_refused(rules.account_id, "engineer").field, _refused(rules.account_id, "engineer").reason) == \
        ("account_id", "account_id_format")
    assert _refused(rules.account_id, "").reason == "required"
