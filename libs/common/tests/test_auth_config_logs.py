"""Pure pieces of the shared library: tokens, configuration, JSON logs."""
from __future__ import annotations

import json
import logging
import time

import jwt
import pytest

from tuoguan_common import auth, config
from tuoguan_common.config import migrations_database_url, service_database_url
from tuoguan_common.errors import PermissionDenied, Unauthenticated
from tuoguan_common.logs import JsonFormatter
from tuoguan_common.telemetry import setup_tracing, tracer


def test_token_round_trip_carries_subject_and_roles(issuer, verifier):
    principal = verifier.verify(issuer.issue("acc-1", [auth.PATIENT]))
    assert principal.subject == "acc-1"
    assert principal.roles == frozenset({auth.PATIENT})
    assert principal.grade == ""


def test_an_engineers_token_carries_the_grade_identity_gave_it(issuer, verifier):
    token = issuer.issue("eng-1", [auth.ENGINEER], grade="senior")
    assert verifier.verify(token).grade == "senior"
    # No claim at all for the ungraded: a token says nothing it was not told.
    assert "grade" not in jwt.decode(issuer.issue("eng-2", [auth.ENGINEER]), options={"verify_signature": False})


def test_expired_token_is_refused(token_keys, verifier):
    from pathlib import Path

    short = auth.TokenIssuer(Path(token_keys["private"]).read_bytes(), ttl_seconds=-auth.CLOCK_SKEW_SECONDS - 1)
    with pytest.raises(Unauthenticated, match="expired"):
        verifier.verify(short.issue("acc-1", [auth.PATIENT]))


def test_a_clock_a_little_behind_the_issuers_still_accepts_a_fresh_token(token_keys, verifier, monkeypatch):
    import time
    from pathlib import Path

    issuer = auth.TokenIssuer(Path(token_keys["private"]).read_bytes())
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + 5)  # identity's clock runs 5 s ahead
    ahead = issuer.issue("acc-1", [auth.PATIENT])
    monkeypatch.setattr(time, "time", real)
    assert verifier.verify(ahead).subject == "acc-1"


def test_a_token_without_expiry_or_subject_is_refused(token_keys, verifier):
    import jwt
    from pathlib import Path

    key = Path(token_keys["private"]).read_bytes()
    for missing in ("exp", "sub"):
        claims = {"iss": auth.ISSUER, "aud": auth.AUDIENCE, "sub": "acc-1", "exp": 2**31, "roles": ["admin"]}
        del claims[missing]
        with pytest.raises(Unauthenticated, match="not valid"):
            verifier.verify(jwt.encode(claims, key, algorithm=auth.ALGORITHM))


def test_tampered_token_is_refused(issuer, verifier):
    token = issuer.issue("acc-1", [auth.PATIENT])
    header, payload, signature = token.split(".")
    tampered = ".".join([header, payload, signature[:-4] + ("AAAA" if signature[-4:] != "AAAA" else "BBBB")])
    with pytest.raises(Unauthenticated):
        verifier.verify(tampered)


def test_ownership_and_roles():
    patient = auth.Principal("p1", frozenset({auth.PATIENT}))
    office = auth.Principal("s1", frozenset({auth.REGISTRATION_OFFICE}))
    patient.require_owner_or("p1", auth.REGISTRATION_OFFICE)
    office.require_owner_or("p1", auth.REGISTRATION_OFFICE)
    with pytest.raises(PermissionDenied):
        patient.require_owner_or("p2", auth.REGISTRATION_OFFICE)
    with pytest.raises(PermissionDenied):
        patient.require(auth.ADMIN)


def test_one_database_per_service_on_the_configured_server():
    env = {"DATABASE_URL": "postgresql://u:pw@db.example:6543/postgres"}
    assert service_database_url("billing", env) == "postgresql://u:pw@db.example:6543/tuoguan_billing"
    env["TUOGUAN_DB_PREFIX"] = "e2e_1"
    assert service_database_url("billing", env) == "postgresql://u:pw@db.example:6543/e2e_1_billing"
    env["BILLING_DATABASE_URL"] = "postgresql://other/billing"
    assert service_database_url("billing", env) == "postgresql://other/billing"


def test_the_migrate_step_connects_past_the_pooler_when_told_where():
    pooled = {"DATABASE_URL": "postgresql://u:pw@pgbouncer:6432/postgres"}
    assert migrations_database_url("billing", pooled) == "postgresql://u:pw@pgbouncer:6432/tuoguan_billing"
    direct = {**pooled, "MIGRATIONS_DATABASE_URL": "postgresql://u:pw@primary:5432/postgres", "TUOGUAN_DB_PREFIX": "t"}
    assert migrations_database_url("billing", direct) == "postgresql://u:pw@primary:5432/t_billing"
    # A service whose database lives elsewhere is not sent to the main server's direct URL.
    elsewhere = {**direct, "BILLING_DATABASE_URL": "postgresql://u:pw@bouncer-2:6432/billing"}
    assert migrations_database_url("billing", elsewhere) == "postgresql://u:pw@bouncer-2:6432/billing"
    assert migrations_database_url("identity", elsewhere) == "postgresql://u:pw@primary:5432/t_identity"
    own = {**elsewhere, "BILLING_MIGRATIONS_DATABASE_URL": "postgresql://u:pw@billing-primary:5432/billing"}
    assert migrations_database_url("billing", own) == "postgresql://u:pw@billing-primary:5432/billing"


def test_json_log_lines_carry_the_trace_id():
    setup_tracing("test", record=True)
    formatter = JsonFormatter("probe")
    with tracer().start_as_current_span("work") as span:
        record = logging.LogRecord("x", logging.INFO, __file__, 1, "booking held", (), None)
        record.booking_id = "b-1"
        line = json.loads(formatter.format(record))
    assert line["msg"] == "booking held"
    assert line["service"] == "probe"
    assert line["booking_id"] == "b-1"
    assert line["trace_id"] == format(span.get_span_context().trace_id, "032x")
    assert line["ts"].endswith("Z") and time.strptime(line["ts"][:19], "%Y-%m-%dT%H:%M:%S")


def test_a_generated_signing_key_is_readable_by_its_owner_only(tmp_path):
    private, public = auth.generate_keypair(tmp_path / "keys")
    assert private.stat().st_mode & 0o777 == 0o600
    again, _ = auth.generate_keypair(tmp_path / "keys")  # a new pair replaces the old one
    assert again.stat().st_mode & 0o777 == 0o600 and again.read_bytes() != b""
    assert public.read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")


@pytest.mark.parametrize("raw,off_by_default,on_by_default", [
    (None, False, True), ("", False, True), ("  ", False, True),
    ("1", True, True), ("true", True, True), ("YES", True, True), (" true\n", True, True),
    ("0", False, False), ("false", False, False), ("No", False, False),
    ("maybe", False, True),  # neither word: the switch stays where its default puts it
])
def test_a_switch_from_the_environment(raw, off_by_default, on_by_default):
    env = {} if raw is None else {"SWITCH": raw}
    assert config.env_flag("SWITCH", env=env) is off_by_default
    assert config.env_flag("SWITCH", True, env) is on_by_default
