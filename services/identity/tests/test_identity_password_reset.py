"""Resetting a forgotten password with a code sent to the phone: the real
grpcio server in-process on a real PostgreSQL, with a recording notifier (the
notification port's test double) and a clock the test moves."""
from __future__ import annotations

import logging
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest

from identity.api import register
from identity.config import IdentityConfig
from identity.domain.password_reset import CodeMessage, ResetCodePolicy
from identity.store import IdentityStore
from identity_testkit import (
    NEW_PASSWORD, PASSWORD, PHONE, RecordingNotifier, failure, request_code, reset, sign_in, sign_up_patient,
)
from tuoguan.identity.v1 import identity_pb2 as pb
from tuoguan.identity.v1 import identity_pb2_grpc
from tuoguan_common.config import Settings
from tuoguan_common.grpc_server import REASON_KEY, RETRY_AFTER_KEY, build_server

pytestmark = pytest.mark.integration

UNKNOWN = "13700000009"


@pytest.fixture
def stub(serve_identity, notifier, clock):
    """Identity's api with the recording notifier, the test's clock and the default policy."""
    return serve_identity(notifier=notifier, config=IdentityConfig(reset=ResetCodePolicy()), clock=clock)


@pytest.fixture
def patient(stub):
    phone = sign_up_patient(stub)
    # What the tests count is the reset codes sent, not the sign-up's.
    stub.notifier.sent.clear()
    return phone



def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 10**6:06d}"


def stored(db, phone=PHONE):
    with db.transaction() as cur:
        cur.execute("SELECT p::text AS everything, attempts FROM password_reset_codes p WHERE phone = %s", (phone,))
        return cur.fetchone()


def password_hash(db, login=PHONE):
    with db.transaction() as cur:
        cur.execute("SELECT password_hash FROM accounts WHERE login = %s", (login,))
        return cur.fetchone()["password_hash"]


INVALID = (grpc.StatusCode.INVALID_ARGUMENT, "reset_code_invalid", "code")
EXPIRED = (grpc.StatusCode.INVALID_ARGUMENT, "reset_code_expired", "code")


def test_a_patient_resets_a_forgotten_password_with_the_code(stub, patient, notifier, clock, identity_db):
    reply = request_code(stub)
    assert reply.expires_at == "2026-12-01T08:10:00Z" and reply.resend_after_seconds == 60
    [(phone, code)] = notifier.sent
    assert phone == PHONE and len(code) == 6 and code.isdigit()
    # Only a keyed hash of the code is kept.
    assert code not in stored(identity_db)["everything"]
    assert reset(stub, code).device_cookie
    assert sign_in(stub, NEW_PASSWORD).account.login == PHONE
    assert failure(lambda: sign_in(stub, PASSWORD))[:2] == (grpc.StatusCode.UNAUTHENTICATED, "bad_credentials")
    assert password_hash(identity_db).startswith("$argon2id$")
    # The code is spent, its row kept: it carries the phone's day of codes.
    assert stored(identity_db)["attempts"] == 5


def test_an_unknown_phone_gets_the_same_answer_and_nothing_is_sent(stub, patient, notifier):
    known = request_code(stub)
    unknown = request_code(stub, UNKNOWN)
    assert unknown == known
    assert [to for to, _ in notifier.sent] == [PHONE]
    # It is rate limited like a known phone, and no code works for it.
    assert failure(lambda: request_code(stub, UNKNOWN)) == failure(lambda: request_code(stub))
    assert failure(lambda: reset(stub, "123456", phone=UNKNOWN)) == INVALID


def test_a_wrong_code_is_refused_and_changes_nothing(stub, patient, notifier, identity_db):
    request_code(stub)
    before = password_hash(identity_db)
    assert failure(lambda: reset(stub, wrong(notifier.last_code()))) == INVALID
    assert password_hash(identity_db) == before and stored(identity_db)["attempts"] == 1
    # Without any code requested, too.
    assert failure(lambda: reset(stub, "123456", phone="13600000000")) == INVALID
    # A malformed code is refused before any lookup and costs no attempt.
    for malformed in ("12345", "1234567", "12a456"):
        assert failure(lambda: reset(stub, malformed)) == INVALID
    assert failure(lambda: reset(stub, " ")) == (grpc.StatusCode.INVALID_ARGUMENT, "required", "code")
    assert stored(identity_db)["attempts"] == 1
    # The right code, typed with spaces around it, still works.
    reset(stub, f" {notifier.last_code()} ")
    assert sign_in(stub, NEW_PASSWORD).access_token


def test_five_wrong_attempts_kill_the_code(stub, patient, notifier, identity_db):
    request_code(stub)
    code = notifier.last_code()
    for _ in range(5):
        assert failure(lambda: reset(stub, wrong(code))) == INVALID
    # Dead, even for the right code: guessing cannot carry on.
    assert failure(lambda: reset(stub, code)) == INVALID
    assert sign_in(stub, PASSWORD).access_token


def test_parallel_guesses_cannot_exceed_the_attempts(stub, patient, notifier, identity_db):
    from concurrent.futures import ThreadPoolExecutor

    request_code(stub)
    code = notifier.last_code()
    with ThreadPoolExecutor(max_workers=12) as pool:
        list(pool.map(lambda _: failure(lambda: reset(stub, wrong(code))), range(12)))
    assert stored(identity_db)["attempts"] == 5
    assert failure(lambda: reset(stub, code)) == INVALID


def test_an_expired_code_is_refused(stub, patient, notifier, clock):
    request_code(stub)
    clock.advance(minutes=10)
    assert failure(lambda: reset(stub, notifier.last_code())) == EXPIRED
    # A wrong code is "expired" too: the answer says nothing about the code.
    assert failure(lambda: reset(stub, wrong(notifier.last_code()))) == EXPIRED
    # A new code works.
    request_code(stub)
    reset(stub, notifier.last_code())
    assert sign_in(stub, NEW_PASSWORD).access_token


def test_a_code_of_zero_minutes_is_expired_at_once(identity_db, issuer, verifier, serve_identity):
    """IDENTITY_RESET_CODE_MINUTES=0 through the configuration, on the real clock."""
    # Signed up through an api of the usual lifetime, on the real clock too (no code of this one's would do).
    sign_up_patient(serve_identity())
    notifier = RecordingNotifier()
    settings = Settings.from_env("identity", grpc_port=0, metrics_port=0)
    config = IdentityConfig.from_env({"IDENTITY_RESET_CODE_MINUTES": "0"})
    server, port = build_server(
        service="identity", verifier=verifier, port=0, host="127.0.0.1",
        register=lambda srv: register(srv, settings, identity_db, issuer=issuer, notifier=notifier, config=config),
    )
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            zero = identity_pb2_grpc.IdentityServiceStub(channel)
            request_code(zero)
            assert failure(lambda: reset(zero, notifier.last_code())) == EXPIRED
    finally:
        server.stop(0)


def test_a_used_code_cannot_be_used_again(stub, patient, notifier):
    request_code(stub)
    code = notifier.last_code()
    reset(stub, code)
    assert failure(lambda: reset(stub, code, new_password="Another2028")) == INVALID
    assert sign_in(stub, NEW_PASSWORD).access_token


def test_a_retried_reset_gets_its_first_answer_and_only_with_the_same_password(stub, patient, notifier):
    """The answer of a reset that went through was lost: the retry with its key
    succeeds (the code is used up by then), once the password proves it is the same request."""
    request_code(stub)
    code = notifier.last_code()
    key = str(uuid.uuid4())
    assert reset(stub, code, key=key).device_cookie
    assert reset(stub, code, key=key).device_cookie
    assert failure(lambda: reset(stub, code, new_password="Another2028", key=key)) == \
        (grpc.StatusCode.INVALID_ARGUMENT, "idempotency_key_reused", "idempotency_key")
    assert sign_in(stub, NEW_PASSWORD).access_token


def test_a_refused_reset_leaves_its_key_free(stub, patient, notifier, clock, identity_db):
    """The same request (code, key) refused again is refused for its reason,
    not answered as a replay of a reset that never happened."""
    request_code(stub)
    code = notifier.last_code()
    key = str(uuid.uuid4())
    clock.advance(minutes=10)
    assert failure(lambda: reset(stub, code, key=key)) == EXPIRED
    with identity_db.transaction() as cur:
        cur.execute("SELECT count(*) AS n FROM idempotency_keys WHERE scope = 'ResetPassword'")
        assert cur.fetchone()["n"] == 0
    assert failure(lambda: reset(stub, code, key=key)) == EXPIRED
    assert failure(lambda: sign_in(stub, NEW_PASSWORD))[:2] == (grpc.StatusCode.UNAUTHENTICATED, "bad_credentials")


def test_a_reset_without_a_key_is_refused_and_spends_no_attempt(stub, patient, notifier, identity_db):
    request_code(stub)
    code = notifier.last_code()
    request = pb.ResetPasswordRequest(phone=PHONE, code=wrong(code), new_password=NEW_PASSWORD)
    assert failure(lambda: stub.ResetPassword(request, timeout=10)) == (
        grpc.StatusCode.INVALID_ARGUMENT, "required", "idempotency_key")
    assert stored(identity_db)["attempts"] == 0
    assert reset(stub, code).device_cookie


def test_a_new_code_no_sooner_than_a_minute_later_and_it_replaces_the_last(stub, patient, notifier, clock):
    request_code(stub)
    first = notifier.last_code()
    clock.advance(seconds=45)
    assert failure(lambda: request_code(stub)) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "reset_too_soon", None)
    assert len(notifier.sent) == 1
    clock.advance(seconds=15)
    reply = request_code(stub)
    assert reply.expires_at == "2026-12-01T08:11:00Z"
    second = notifier.last_code()
    assert len(notifier.sent) == 2
    if first != second:
        assert failure(lambda: reset(stub, first)) == INVALID
    reset(stub, second)
    assert sign_in(stub, NEW_PASSWORD).access_token


def test_a_new_code_gives_fresh_attempts(stub, patient, notifier, clock):
    request_code(stub)
    for _ in range(5):
        failure(lambda: reset(stub, wrong(notifier.last_code())))
    clock.advance(minutes=1)
    request_code(stub)
    reset(stub, notifier.last_code())
    assert sign_in(stub, NEW_PASSWORD).access_token


def test_ten_codes_a_day_then_a_wait_until_the_day_is_over(stub, patient, notifier, clock, identity_db):
    """A guesser asking a new code each minute gets fifty guesses a day, not thousands. (The
    patient's sign-up code, just now, was the phone's first of the day.)"""
    for _ in range(9):
        request_code(stub)
        for _ in range(5):
            failure(lambda: reset(stub, wrong(notifier.last_code())))
        clock.advance(minutes=1)
    assert len(notifier.sent) == 9
    with pytest.raises(grpc.RpcError) as used_up:
        request_code(stub)
    assert used_up.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    trailing = dict(used_up.value.trailing_metadata())
    assert trailing[REASON_KEY] == "reset_codes_used_up_today"
    assert int(trailing[RETRY_AFTER_KEY]) == 24 * 3600 - 9 * 60  # the day began with the first code
    assert len(notifier.sent) == 9, "nothing sent, nothing written"
    clock.advance(hours=24)
    request_code(stub)
    reset(stub, notifier.last_code())
    assert sign_in(stub, NEW_PASSWORD).access_token


def test_a_successful_reset_does_not_start_the_phones_day_of_codes_afresh(stub, patient, notifier, clock):
    # The sign-up's code, then eight, then the tenth spent by a reset.
    for _ in range(8):
        request_code(stub)
        clock.advance(minutes=1)
    request_code(stub)
    reset(stub, notifier.last_code())
    assert failure(lambda: reset(stub, notifier.last_code(), new_password="Another2026")) == INVALID
    clock.advance(minutes=1)
    assert failure(lambda: request_code(stub))[:2] == (grpc.StatusCode.RESOURCE_EXHAUSTED, "reset_codes_used_up_today")


@pytest.mark.parametrize("weak,reason", [
    ("short1", "password_too_short"), ("onlyletters", "password_letters_and_digits"), ("", "required"),
    ("Woaini1314", "password_common"), ("password1", "password_common"),
    (f"new{PHONE}", "password_contains_phone"), (f"Zz{PHONE[-8:]}", "password_contains_phone"),
])
def test_a_weak_new_password_is_refused_and_writes_nothing(stub, patient, notifier, identity_db, weak, reason):
    request_code(stub)
    before = password_hash(identity_db), stored(identity_db)
    code = notifier.last_code()
    assert failure(lambda: reset(stub, code, new_password=weak)) == \
        (grpc.StatusCode.INVALID_ARGUMENT, reason, "new_password")
    assert (password_hash(identity_db), stored(identity_db)) == before
    # The code was not spent.
    reset(stub, code)
    assert sign_in(stub, NEW_PASSWORD).access_token


def test_a_reset_lifts_the_sign_in_lockout(stub, patient, notifier):
    for _ in range(5):
        failure(lambda: sign_in(stub, "Wrong2026"))
    assert failure(lambda: sign_in(stub, PASSWORD))[1] == "too_many_attempts"
    request_code(stub)
    reset(stub, notifier.last_code())
    assert sign_in(stub, NEW_PASSWORD).access_token


def test_staff_ids_and_malformed_phones_are_refused(stub):
    for phone in ("office", "12345", ""):
        code, _reason, field = failure(lambda: request_code(stub, phone))
        assert (code, field) == (grpc.StatusCode.INVALID_ARGUMENT, "phone")


def test_no_full_phone_number_or_password_reaches_the_logs(stub, patient, notifier, caplog):
    caplog.set_level(logging.DEBUG)
    request_code(stub)
    request_code(stub, UNKNOWN)
    failure(lambda: reset(stub, wrong(notifier.last_code())))
    reset(stub, notifier.last_code())
    logged = " ".join(f"{r.getMessage()} {vars(r)}" for r in caplog.records)
    assert "password reset" in logged
    for secret in (PHONE, UNKNOWN, PASSWORD, NEW_PASSWORD):
        assert secret not in logged


def test_a_sign_in_rehashing_the_old_password_cannot_undo_a_reset_that_raced_it(stub, patient, notifier, identity_db):
    """A sign-in checked the old password, then the reset landed: its stronger hash of the old password is
    not stored, so the old password (maybe a thief's) does not come back."""
    old_hash = password_hash(identity_db)
    account_id = IdentityStore(identity_db).account_by_login(PHONE).account_id
    request_code(stub)
    reset(stub, notifier.last_code())
    assert not IdentityStore(identity_db).rehash_password(account_id, old_hash, "$argon2id$v=19$old-password-again")
    assert password_hash(identity_db) not in (old_hash, "$argon2id$v=19$old-password-again")
    assert sign_in(stub, NEW_PASSWORD).account.login == PHONE
    assert failure(lambda: sign_in(stub, PASSWORD))[:2] == (grpc.StatusCode.UNAUTHENTICATED, "bad_credentials")
    # Unraced, the stronger hash is stored.
    current = password_hash(identity_db)
    assert IdentityStore(identity_db).rehash_password(account_id, current, "$argon2id$v=19$stronger")
    assert password_hash(identity_db) == "$argon2id$v=19$stronger"


class HeldNotifier(RecordingNotifier):
    """Reset codes' sends that keep their send slot until the test lets them go (a slow SMS gateway)."""

    def __init__(self):
        super().__init__()
        self.sending = threading.Semaphore(0)
        self.go_on = threading.Event()

    def send_code(self, phone: str, code: str, message: CodeMessage) -> None:
        if message is CodeMessage.PASSWORD_RESET:
            self.sending.release()
            self.go_on.wait(10)
        super().send_code(phone, code, message)


def test_a_request_finding_every_send_slot_taken_writes_nothing(serve_identity, clock, identity_db):
    """Four sends under way hold every send slot: a fifth request is refused sms_unavailable with no code,
    no resend wait and no place in the phone's day written, so asking again once a slot is free gets a code
    at once. (Four requests for numbers without an account, each waiting a decoy's send time, hold the
    slots as well: each refused request must not spend one of the patient's ten codes a day.)"""
    notifier = HeldNotifier()
    stub = serve_identity(notifier=notifier, config=IdentityConfig(reset=ResetCodePolicy()), clock=clock)
    holders = [sign_up_patient(stub, f"1391234{i:04d}") for i in range(4)]
    sign_up_patient(stub)
    notifier.sent.clear()
    threads = [threading.Thread(target=request_code, args=(stub, phone)) for phone in holders]
    for thread in threads:
        thread.start()
    try:
        for _ in holders:
            assert notifier.sending.acquire(timeout=10), "the four sends hold the four slots"
        for phone in (PHONE, UNKNOWN):
            before = stored(identity_db, phone)  # the sign-up's spent code, or nothing
            with pytest.raises(grpc.RpcError) as refused:
                request_code(stub, phone)
            trailing = dict(refused.value.trailing_metadata())
            assert (refused.value.code(), trailing[REASON_KEY], trailing[RETRY_AFTER_KEY]) == \
                (grpc.StatusCode.UNAVAILABLE, "sms_unavailable", "60")
            assert stored(identity_db, phone) == before, "nothing written"
    finally:
        notifier.go_on.set()
        for thread in threads:
            thread.join(10)
    # The same moment, the slots free again: a code at once, the phone's first of the day.
    request_code(stub)
    request_code(stub, UNKNOWN)
    assert [to for to, _ in notifier.sent if to in (PHONE, UNKNOWN)] == [PHONE]
    with identity_db.transaction() as cur:
        cur.execute("SELECT phone, codes_today FROM password_reset_codes WHERE phone IN (%s, %s)", (PHONE, UNKNOWN))
        # The phone's sign-up code was its first of the day.
        assert {row["phone"]: row["codes_today"] for row in cur.fetchall()} == {PHONE: 2, UNKNOWN: 1}
    reset(stub, notifier.last_code())
    assert sign_in(stub, NEW_PASSWORD).access_token


class Hashing:
    """The new passwords identity's api hashed (``identity.api.Passwords``, recorded), and what each hash does first."""

    def __init__(self):
        self.passwords: list[str] = []
        self.before = lambda: None


@pytest.fixture
def hashing(monkeypatch):
    """Records the api's password hashes; serve identity after asking for it (``serve_identity``)."""
    import identity.api

    recorded = Hashing()

    class RecordedPasswords(identity.api.Passwords):
        def hash(self, password: str) -> str:
            recorded.passwords.append(password)
            recorded.before()
            return super().hash(password)

    monkeypatch.setattr(identity.api, "Passwords", RecordedPasswords)
    return recorded


def test_only_a_reset_the_code_allows_hashes_the_new_password(hashing, serve_identity, notifier, clock, identity_db):
    """argon2 (slow and 64 MiB on purpose) runs only once the code is accepted: resets with a wrong code, for
    a phone that never asked for one, or with a spent code cost no hash. A wrong code still counts its attempt,
    and a retry of the reset that went through still gets its answer."""
    stub = serve_identity(notifier=notifier, config=IdentityConfig(reset=ResetCodePolicy()), clock=clock)
    sign_up_patient(stub)
    request_code(stub)
    code = notifier.last_code()
    hashing.passwords.clear()
    assert failure(lambda: reset(stub, wrong(code))) == INVALID
    assert stored(identity_db)["attempts"] == 1, "the wrong code's attempt counts"
    for phone in ("13600000000", UNKNOWN):
        assert failure(lambda: reset(stub, "123456", phone=phone)) == INVALID
    assert hashing.passwords == [], "no code accepted, nothing hashed"
    key = str(uuid.uuid4())
    assert reset(stub, code, key=key).device_cookie
    assert hashing.passwords == [NEW_PASSWORD]
    # Spent: refused without a hash; the retry of the reset is answered, by a check of the password only.
    assert failure(lambda: reset(stub, code, new_password="Another2028")) == INVALID
    assert reset(stub, code, key=key).device_cookie
    assert hashing.passwords == [NEW_PASSWORD]
    assert sign_in(stub, NEW_PASSWORD).access_token


@pytest.mark.parametrize("same_key", [False, True], ids=["two-keys", "one-key"])
def test_two_resets_racing_with_one_code_reset_the_password_once(hashing, serve_identity, notifier, clock,
                                                                 identity_db, same_key):
    """Both were accepted and both hashed their password before either completed: the second to complete finds
    the code spent and is refused as a spent code is (with one key, it is the retry and gets the first answer).
    One password set, the account's tokens withdrawn once, one key kept."""
    stub = serve_identity(notifier=notifier, config=IdentityConfig(reset=ResetCodePolicy()), clock=clock)
    sign_up_patient(stub)
    request_code(stub)
    code = notifier.last_code()
    hashing.passwords.clear()
    both_hashing = threading.Barrier(2)
    hashing.before = lambda: both_hashing.wait(10)
    key = str(uuid.uuid4())
    passwords = [NEW_PASSWORD, NEW_PASSWORD] if same_key else [NEW_PASSWORD, "Another2028"]

    def attempt(password):
        try:
            reset(stub, code, new_password=password, key=key if same_key else None)
            return password, "ok"
        except grpc.RpcError as refused:
            return password, dict(refused.trailing_metadata() or ())[REASON_KEY]

    with ThreadPoolExecutor(max_workers=2) as pool:
        outcomes = list(pool.map(attempt, passwords))
    assert sorted(hashing.passwords) == sorted(passwords), "both were accepted and hashed before either completed"
    if same_key:
        assert outcomes == [(NEW_PASSWORD, "ok"), (NEW_PASSWORD, "ok")]
        winner = NEW_PASSWORD
    else:
        assert sorted(outcome for _, outcome in outcomes) == ["ok", "reset_code_invalid"]
        [winner] = [password for password, outcome in outcomes if outcome == "ok"]
        [loser] = [password for password, outcome in outcomes if outcome != "ok"]
        assert failure(lambda: sign_in(stub, loser))[:2] == (grpc.StatusCode.UNAUTHENTICATED, "bad_credentials")
    assert sign_in(stub, winner).account.login == PHONE
    assert stored(identity_db)["attempts"] == 5, "spent"
    with identity_db.transaction() as cur:
        cur.execute("SELECT generation FROM account_token_generations")
        assert [row["generation"] for row in cur.fetchall()] == [1], "the tokens withdrawn once"
        cur.execute("SELECT count(*) AS n FROM idempotency_keys WHERE scope = 'ResetPassword'")
        assert cur.fetchone()["n"] == 1


def test_the_device_that_reset_the_password_is_not_locked_out_by_strangers(stub, patient, notifier):
    before = stub.SignIn(pb.SignInRequest(login=PHONE, password=PASSWORD), timeout=10).device_cookie
    request_code(stub)
    key = str(uuid.uuid4())
    cookie = reset(stub, notifier.last_code(), key=key).device_cookie
    # A replay answers a cookie of the account's generation as well.
    assert reset(stub, notifier.last_code(), key=key).device_cookie
    for _ in range(5):
        assert failure(lambda: sign_in(stub, "Guess2026"))[1] == "bad_credentials"
    assert failure(lambda: sign_in(stub, NEW_PASSWORD))[1] == "too_many_attempts"
    signed_in = stub.SignIn(pb.SignInRequest(login=PHONE, password=NEW_PASSWORD, device_cookie=cookie), timeout=10)
    assert signed_in.account.login == PHONE
    # The reset voided the cookies given before it: whoever held the old password is a stranger again.
    assert failure(lambda: stub.SignIn(pb.SignInRequest(login=PHONE, password=NEW_PASSWORD, device_cookie=before),
                                       timeout=10))[1] == "too_many_attempts"


def test_replaying_a_reset_to_guess_its_password_is_throttled_as_signing_in_is(stub, patient, notifier):
    request_code(stub)
    key = str(uuid.uuid4())
    reset(stub, notifier.last_code(), key=key)
    for _ in range(5):
        assert failure(lambda: reset(stub, notifier.last_code(), "Guess2026x", key=key))[2] == "idempotency_key"
    # The sixth is refused before the password is checked: no device cookie for a guesser.
    assert failure(lambda: reset(stub, notifier.last_code(), NEW_PASSWORD, key=key))[1] == "too_many_attempts"
    assert failure(lambda: sign_in(stub, NEW_PASSWORD))[1] == "too_many_attempts"


def test_forgetting_old_codes_passes_over_a_row_another_request_is_writing(identity_db):
    """Two code requests, each writing over an old row of its own phone and then forgetting old rows,
    would each wait on the other's row: a deadlock, one of them answered INTERNAL. A row another
    transaction holds is left for a later purge."""
    import datetime as dt

    import psycopg

    store = IdentityStore(identity_db)
    old = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    with identity_db.transaction() as cur:
        for number in ("13700000001", "13700000002"):
            cur.execute("INSERT INTO password_reset_codes (phone, issued_at, expires_at) VALUES (%s, %s, %s)",
                        (number, old, old))
    with psycopg.connect(identity_db.url) as other:
        other.execute("UPDATE password_reset_codes SET attempts = 1 WHERE phone = '13700000002'")
        with identity_db.transaction() as cur:
            cur.execute("SET LOCAL lock_timeout = '2s'")
            store.forget_reset_codes(cur, old + dt.timedelta(days=1))
        other.rollback()
    with identity_db.transaction() as cur:
        cur.execute("SELECT phone FROM password_reset_codes")
        assert [row["phone"] for row in cur.fetchall()] == ["13700000002"]
