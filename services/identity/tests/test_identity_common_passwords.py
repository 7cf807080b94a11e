"""The common passwords' list identity ships (identity/data/), as identity.common_passwords reads it."""
from __future__ import annotations

from importlib import resources

import pytest

from identity import common_passwords
from identity.domain import accounts as rules
from identity.exceptions import InvalidAccountField

# The security review's examples, and passwords the analyses of the CSDN and Tianya leaks list.
REVIEWED = ["password1", "abc12345", "qwer1234", "a1234567", "woaini1314", "1qaz2wsx", "a123456789", "qq123456",
            "zxcvbnm123", "abc123456", "Password1", "WoAiNi1314"]


def test_the_generated_file_is_zxcvbn_s_list_as_the_generator_writes_it():
    # Fails after an upgrade of zxcvbn (or a change of the shape rules) until
    # `uv run python -m identity.common_passwords` is run again.
    shipped = resources.files("identity").joinpath("data", common_passwords.GENERATED).read_text(encoding="utf-8")
    assert shipped == common_passwords.generate(*common_passwords.zxcvbn_list())


def test_every_entry_is_one_a_new_password_could_otherwise_be_in_lower_case():
    listed = common_passwords.load()
    assert 4000 < len(listed) < 5000
    for entry in listed:
        assert entry == entry.lower() and rules.password_shape(entry) == entry


@pytest.mark.parametrize("password", REVIEWED)
def test_the_reviewed_passwords_are_refused(password):
    with pytest.raises(InvalidAccountField) as err:
        rules.password(password, common_passwords.policy())
    assert err.value.reason == "password_common"


def test_the_supplement_adds_what_zxcvbn_lacks():
    assert "woaini1314" in common_passwords.load()
    assert "woaini1314" not in common_passwords.generate(*common_passwords.zxcvbn_list())


def test_read_once():
    assert common_passwords.load() is common_passwords.load()
    assert common_passwords.policy().personal


@pytest.mark.parametrize("password", ["Patient2026", "Renewed2027", "Secret2026", "Engineer2026", "x7Kq2mPv"])
def test_passwords_of_no_list_pass(password):
    assert rules.password(password, common_passwords.policy()) == password
