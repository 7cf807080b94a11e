"""``python -m identity.seed``: the demo accounts, created once.

Patients sign in with their phone number, staff with their staff id. Running
it again changes nothing (and keeps the passwords people may have changed).
"""
from __future__ import annotations

import logging

from tuoguan_common import auth
from tuoguan_common.config import service_database_url
from tuoguan_common.db import Database, migrate_service
from tuoguan_common.logs import setup_logging

from .domain import accounts as rules
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


def seed(database: Database, passwords: Passwords | None = None) -> int:
    """Creates the demo accounts that do not exist yet; returns how many it created."""
    passwords = passwords or Passwords()
    store = IdentityStore(database)
    # Demo data obeys the same rules as sign-up, so it cannot drift from them.
    wanted = [(rules.new_patient(phone, secret, name), secret) for phone, secret, name in DEMO_PATIENTS]
    wanted += [(rules.new_staff(login, secret, name, roles), secret) for login, secret, name, roles in DEMO_STAFF]
    created = 0
    for account, secret in wanted:
        if store.account_by_login(account.login) is not None:
            continue
        with store.transaction() as cur:
            created += store.insert_account(cur, account, passwords.hash(secret)) is not None
    return created


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
