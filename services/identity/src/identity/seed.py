"""``python -m identity.seed``: the demo accounts, created once.

Patients sign in with their phone number, staff with their staff id. Running
it again changes nothing (and keeps the passwords people may have changed),
but gives a demo engineer its grade if it has none (a database seeded before
grades existed); a grade an admin set stays.
"""
from __future__ import annotations

import logging

from tuoguan_common import auth
from tuoguan_common.config import service_database_url
from tuoguan_common.db import Database, migrate_service
from tuoguan_common.logs import setup_logging
from tuoguan_common.outbox import utcnow

from .domain import accounts as rules
from .domain import grades
from .passwords import Passwords
from .store import IdentityStore

log = logging.getLogger(__name__)

# (phone, password, name) and (staff id, password, name, roles).
DEMO_PATIENTS = [
    ("13800000001", "Patient1234", "张晓明"),
    ("13800000002", "Patient1234", "李秀英"),
]
DEMO_STAFF = [
    ("office", "Office1234", "王丽华", [auth.REGISTRATION_OFFICE]),
    ("admin", "Admin1234", "陈建国", [auth.ADMIN]),
    ("finance", "Finance1234", "刘芳", [auth.FINANCE]),
    # The O&M side: a clinician who reports problems, the contractor's dispatcher and engineers.
    ("clinician", "Clinician1234", "赵敏", [auth.CLINICIAN]),
    ("dispatcher", "Dispatcher1234", "孙伟", [auth.DISPATCHER]),
    ("engineer", "Engineer1234", "周杰", [auth.ENGINEER]),
    ("engineer2", "Engineer1234", "吴磊", [auth.ENGINEER]),
]
# The demo engineers' rate grades, which price their worklogs.
DEMO_GRADES = {"engineer": "senior", "engineer2": "intermediate"}
# Who the grade changes the seed writes were set by (an admin's are their account id).
SEEDED_BY = "seed"


def seed(database: Database, passwords: Passwords | None = None) -> int:
    """Creates the demo accounts that do not exist yet; returns how many it created."""
    passwords = passwords or Passwords()
    store = IdentityStore(database)
    # Demo data obeys the same rules as sign-up, so it cannot drift from them,
    # but for the password policy's lists: its passwords are published and hold
    # the staff ids (rules.DEMO_PASSWORDS). The seed writes to the database
    # itself; nobody signs up through it.
    demo = rules.DEMO_PASSWORDS
    wanted = [(rules.new_patient(phone, secret, name, demo), secret) for phone, secret, name in DEMO_PATIENTS]
    wanted += [(rules.new_staff(login, secret, name, roles, DEMO_GRADES.get(login, ""), policy=demo), secret)
               for login, secret, name, roles in DEMO_STAFF]
    created = 0
    for account, secret in wanted:
        existing = store.account_by_login(account.login)
        if existing is None:
            with store.transaction() as cur:
                created += store.insert_account(cur, account, passwords.hash(secret),
                                                by=SEEDED_BY, at=utcnow()) is not None
        elif account.grade is not None and existing.grade is None:
            _grade_if_ungraded(store, existing.account_id, account.grade)
    return created


def _grade_if_ungraded(store: IdentityStore, account_id: str, grade: str) -> None:
    """Gives an existing demo engineer its grade, unless it has one by now (an admin's stays)."""
    with store.transaction() as cur:
        record = store.lock_account(cur, account_id)
        # Roles never change, but an account of that login that is not an
        # engineer's is left as it is rather than stopping the seed.
        if record is not None and record.grade is None and grades.is_engineer(record.roles):
            store.set_grade(cur, account_id, grade, SEEDED_BY, utcnow())
            log.info("demo engineer graded", extra={"account_id": account_id, "grade": grade})


def main() -> None:
    setup_logging("identity-seed")
    migrate_service("identity")
    url = service_database_url("identity")
    database = Database(url, max_size=2, name="identity-seed").open()
    try:
        created = seed(database)
    finally:
        database.close()
    log.info("demo accounts seeded", extra={"accounts_created": created, "demo_accounts": len(DEMO_PATIENTS) + len(DEMO_STAFF)})


if __name__ == "__main__":
    main()
