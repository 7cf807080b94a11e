"""Engineers' rate grades: what the contract prices an engineer's logged
hours by. An admin gives the grade; sign-in puts it in the engineer's token,
so ticketing records a worklog at the grade the account holds, never one the
engineer chose. Only an account holding the engineer role has one."""
from __future__ import annotations

from typing import Iterable

from tuoguan_common.roles import ENGINEER, GRADES

from ..exceptions import InvalidAccountField, NotAnEngineer, OwnGrade

FIELD = "grade"


def grade(raw: str, field: str = FIELD) -> str:
    """A grade as stored: stripped, lower case, one of the contract's four."""
    value = (raw or "").strip().lower()
    if not value:
        raise InvalidAccountField(field, f"is required; choose from {', '.join(GRADES)}", "required")
    if value not in GRADES:
        # The value is not echoed: the answer lists what is accepted.
        raise InvalidAccountField(field, f"must be one of {', '.join(GRADES)}", "unknown_grade")
    return value


def is_engineer(roles: Iterable[str]) -> bool:
    return ENGINEER in set(roles)


def new_account_grade(raw: str, roles: Iterable[str], field: str = FIELD) -> str | None:
    """The grade a new staff account opens with: None when none is given (an
    engineer may be graded later); a grade only for an account that will hold
    the engineer role."""
    if not (raw or "").strip():
        return None
    value = grade(raw, field)
    if not is_engineer(roles):
        raise InvalidAccountField(field, "only an account holding the engineer role has a rate grade",
                                  "not_an_engineer")
    return value


def refuse_own_grade(admin_id: str, account_id: str) -> None:
    """Nobody sets the price of their own hours: an admin who is also an
    engineer is graded by another admin (``OwnGrade``)."""
    if admin_id == account_id:
        raise OwnGrade()


def grade_change(roles: Iterable[str], current: str | None, wanted: str) -> bool:
    """Whether giving ``wanted`` to an account holding ``roles`` and graded
    ``current`` changes anything. Refuses (``NotAnEngineer``) an account that
    is not an engineer's, whatever it holds now."""
    if not is_engineer(roles):
        raise NotAnEngineer()
    return current != wanted


def token_grade(roles: Iterable[str], current: str | None) -> str:
    """The grade a sign-in token carries: the engineer's, or nothing (anyone
    else, and an engineer no admin has graded yet)."""
    return (current or "") if is_engineer(roles) else ""
