"""Identity's gRPC API: parse request -> domain -> store -> reply.

``python -m identity.api`` runs it.
"""
from __future__ import annotations

import datetime as dt
import logging
import threading
import time
import uuid
from typing import Callable, Iterable

import grpc
from google.protobuf.message import Message

from tuoguan.identity.v1 import identity_pb2, identity_pb2_grpc
from tuoguan_common import api_main, auth, metrics, outbox
from tuoguan_common.config import Settings
from tuoguan_common.db import Database
from tuoguan_common.errors import AlreadyExists, TokenRevoked
from tuoguan_common.revocations import Revoked

from . import common_passwords, sms
from .config import IdentityConfig, reset_code_key
from .domain import accounts as rules
from .domain import device_cookies, device_tokens, grades
from .domain import password_reset as reset
from .domain.accounts import NewAccount, PasswordPolicy
from .domain.password_reset import CodeMessage, ResetCodePolicy, Verdict
from .domain.sends import RecentSends
from .domain.text_budget import TextBudget
from .domain.throttle import SignInThrottle
from .exceptions import (
    AccountNotFound, BadCredentials, DeviceTokenNotFound, LoginTaken, PhoneTaken, SignUpCodeExpired, SignUpCodeInvalid,
    SmsUnavailable, TooManyAttempts,
)
from .migrate import MIGRATIONS_DIR
from .notifications import LogNotifier, Notifier, choose_notifier
from .passwords import Passwords
from .store import AccountRecord, DeviceTokenRecord, IdentityStore

log = logging.getLogger(__name__)

SERVICE_NAME = identity_pb2.DESCRIPTOR.services_by_name["IdentityService"].full_name
# Codes (sign-up, reset) sent at once by one process, out of its 16 request threads: a
# slow SMS gateway (or someone asking for codes in a loop) cannot take the
# threads that sign patients in. Past it, the request is refused sms_unavailable.
MAX_CONCURRENT_SENDS = 4
# How long a replayed sign-up, reset or staff account waits for a locked login
# to unlock before it is refused: long enough for copies of it in flight to
# finish their password checks (argon2, a fraction of a second each).
REPLAY_PATIENCE_SECONDS = 3.0
REPLAY_RECHECK_SECONDS = 0.1
# Replays waiting at once per process; past it, a replay of a locked login is
# refused at once, so replays cannot hold all 16 threads that sign patients in.
MAX_WAITING_REPLAYS = 8
# Sign-up has no caller yet; its idempotency keys share one owner.
ANONYMOUS = "anonymous"


def role_name(role: int) -> str:
    """ROLE_REGISTRATION_OFFICE -> registration_office, the name tokens carry."""
    if role not in identity_pb2.Role.values():
        return f"unknown_role_{role}"
    return identity_pb2.Role.Name(role).removeprefix("ROLE_").lower()


_ROLE_VALUES = {role_name(v): v for v in identity_pb2.Role.values() if v != identity_pb2.ROLE_UNSPECIFIED}


def rfc3339(moment: dt.datetime) -> str:
    return moment.astimezone(dt.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def device_token_message(record: DeviceTokenRecord) -> identity_pb2.DeviceToken:
    return identity_pb2.DeviceToken(
        token_id=record.token_id, device_name=record.device_name, issued_at=rfc3339(record.issued_at),
        expires_at=rfc3339(record.expires_at), issued_by=record.issued_by,
        revoked_at=rfc3339(record.revoked_at) if record.revoked_at else "", revoked_by=record.revoked_by or "",
        revoke_reason=record.revoke_reason or "",
    )


def signed_device_token(issuer: auth.TokenIssuer, record: DeviceTokenRecord) -> str:
    """The token of a recorded device token: subject ``device:<name>``, the one
    role DEVICE, its id as ``jti``, the claims ``TokenIssuer.issue`` writes. They
    are the record's, and Ed25519 signatures are deterministic: one record, one
    token, so a retried IssueDeviceToken answers the very token it first issued
    although identity never keeps it."""
    return issuer.issue(f"device:{record.device_name}", [auth.DEVICE], token_id=record.token_id,
                        issued_at=int(record.issued_at.timestamp()), expires_at=int(record.expires_at.timestamp()))


def without_password(request: Message) -> Message:
    """The request as its idempotency key's fingerprint takes it: a fast hash
    of the password kept next to the argon2 hash would undo argon2, so a
    replay proves the password against the account instead."""
    copy = type(request)()
    copy.CopyFrom(request)
    copy.ClearField("password")
    return copy


def account_message(record: AccountRecord) -> identity_pb2.Account:
    return identity_pb2.Account(
        account_id=record.account_id, login=record.login, display_name=record.display_name,
        roles=[_ROLE_VALUES[r] for r in record.roles if r in _ROLE_VALUES], grade=record.grade or "",
    )


class IdentityServicer(identity_pb2_grpc.IdentityServiceServicer):
    def __init__(
        self,
        store: IdentityStore,
        issuer: auth.TokenIssuer,
        passwords: Passwords,
        *,
        notifier: Notifier,
        reset_key: bytes,
        throttle: SignInThrottle = SignInThrottle(),
        reset_policy: ResetCodePolicy = ResetCodePolicy(),
        clock: Callable[[], dt.datetime] = outbox.utcnow,
        sends: RecentSends | None = None,
        max_concurrent_sends: int = MAX_CONCURRENT_SENDS,
        text_budget: TextBudget = TextBudget(),
        replay_patience_seconds: float = REPLAY_PATIENCE_SECONDS,
        password_policy: PasswordPolicy | None = None,
    ):
        self.store = store
        self.issuer = issuer
        self.passwords = passwords
        self.notifier = notifier
        self.reset_key = reset_key
        self.cookie_key = device_cookies.derive_key(reset_key)
        self.throttle = throttle
        self.reset_policy = reset_policy
        self.clock = clock
        self.sends = sends or RecentSends()
        self.send_slots = threading.BoundedSemaphore(max_concurrent_sends)
        self.text_budget = text_budget
        self.replay_patience_seconds = replay_patience_seconds
        self.replay_waits = threading.BoundedSemaphore(MAX_WAITING_REPLAYS)
        # What new passwords are held to (sign-up, reset, staff accounts): the
        # common passwords' list is read once per process, here at start-up.
        self.password_policy = password_policy or common_passwords.policy()

    def RequestSignUpCode(self, request, context):
        phone = rules.patient_phone(request.phone)
        issued, account_id = self._issue_code(phone, sign_up=True)
        log.info("sign-up code issued", extra={"account_id": account_id})
        return identity_pb2.RequestSignUpCodeResponse(
            expires_at=rfc3339(issued.expires_at), resend_after_seconds=self.reset_policy.resend_after_seconds,
        )

    def SignUpPatient(self, request, context):
        account = rules.new_patient(request.phone, request.password, request.display_name, self.password_policy)
        code = reset.presented_code(request.code, invalid=SignUpCodeInvalid)
        key = rules.idempotency_key(request.idempotency_key)
        phone = account.login
        digest = reset.code_digest(self.reset_key, phone, code)
        fingerprint = outbox.request_fingerprint(without_password(request))

        def open_account(cur, now: dt.datetime) -> tuple[identity_pb2.Account, Message]:
            record = self.store.insert_account(cur, account, password_hash, by=ANONYMOUS, at=now)
            if record is None:
                raise PhoneTaken()
            self.store.spend_sign_up_code(cur, phone, record.account_id, self.reset_policy.max_attempts,
                                          self.reset_policy.resend_wait_over(now))
            opened = account_message(record)
            return opened, opened

        # As a reset: the code is judged (a wrong one counted) before argon2
        # runs, then again, with the hash, in the transaction that opens the account.
        reply = None
        first, verdict, _ = self._with_code("SignUpPatient", phone, digest, ANONYMOUS, key, fingerprint,
                                            reset.for_sign_up)
        if first is None and verdict is Verdict.ACCEPTED:
            password_hash = self.passwords.hash(request.password)
            first, verdict, reply = self._with_code("SignUpPatient", phone, digest, ANONYMOUS, key, fingerprint,
                                                    reset.for_sign_up, open_account)
        if first is not None:
            reply = identity_pb2.Account.FromString(first)
            self._prove_replay(phone, self.store.account_by_id(reply.account_id), request.password, key)
            return identity_pb2.SignUpPatientResponse(account=reply)
        verdict.raise_unless_accepted(SignUpCodeInvalid, SignUpCodeExpired)
        metrics.IDENTITY_SIGN_UPS.inc()
        log.info("patient account opened", extra={"account_id": reply.account_id})
        return identity_pb2.SignUpPatientResponse(account=reply)

    def SignIn(self, request, context):
        login = rules.sign_in_login(request.login)
        password = rules.presented_password(request.password)
        now = self.clock()
        record = self.store.account_by_login(login)
        # A device the account knows (its cookie) is throttled on its own count,
        # so strangers' guesses, which lock the login, do not lock it out.
        device = device_cookies.device_of(self.cookie_key, record.account_id if record else None,
                                          record.password_hash if record else "", request.device_cookie, now)
        counted_as = device_cookies.throttle_login(login, device)
        window_start = self.throttle.window_start(now)
        failures, oldest = self.store.begin_attempt(counted_as, now, since=window_start,
                                                    limit=self.throttle.max_failures)
        if self.throttle.is_locked(failures):
            self._signed_in("too_many_attempts")
            raise TooManyAttempts(self.throttle.seconds_until_unlocked(oldest, now))
        # An unknown login is checked against a decoy hash: the same work and
        # the same answer as a wrong password. The attempt already counts as a
        # failure; only a success takes it back.
        if not self.passwords.verify(record.password_hash if record else None, password):
            self._signed_in("bad_credentials")
            raise BadCredentials()
        self.store.clear_failures(counted_as)
        password_hash = record.password_hash
        if self.passwords.needs_rehash(password_hash):
            stronger = self.passwords.hash(password)
            if self.store.rehash_password(record.account_id, password_hash, stronger):
                password_hash = stronger
        # An engineer's token carries their grade: what ticketing prices their
        # worklogs by. Read with it, the generation makes the token refused
        # once a later change of the grade withdraws the account's tokens.
        token = self.issuer.issue(record.account_id, record.roles, grade=grades.token_grade(record.roles, record.grade),
                                  generation=record.token_generation)
        self._signed_in("ok", account_id=record.account_id)
        return identity_pb2.SignInResponse(
            access_token=token, expires_in_seconds=self.issuer.ttl_seconds, account=account_message(record),
            device_cookie=device_cookies.issue(self.cookie_key, record.account_id, password_hash,
                                               device or device_cookies.new_device_id(), now),
        )

    def SignOut(self, request, context):
        try:
            principal = auth.current_principal()
        except TokenRevoked:
            # Signed out already (a retry, a second tab): nothing more to do.
            return identity_pb2.SignOutResponse()
        rules.check_sign_out(principal.roles, principal.token_id)
        expires_at = dt.datetime.fromtimestamp(principal.expires_at, dt.timezone.utc)
        if self.store.sign_out(principal.token_id, principal.subject, expires_at, self.clock()):
            metrics.IDENTITY_SIGN_OUTS.inc()
            log.info("signed out", extra={"account_id": principal.subject})
        return identity_pb2.SignOutResponse()

    def GetMyAccount(self, request, context):
        record = self.store.account_by_id(auth.current_principal().subject)
        if record is None:
            raise AccountNotFound()
        return identity_pb2.GetMyAccountResponse(account=account_message(record))

    def CreateStaffAccount(self, request, context):
        admin = auth.current_principal().require(auth.ADMIN)
        account = rules.new_staff(
            request.login, request.password, request.display_name, [role_name(r) for r in request.roles],
            request.grade, policy=self.password_policy,
        )
        key = rules.idempotency_key(request.idempotency_key)
        reply, created = self._open_account("CreateStaffAccount", admin.subject, key, request, account, LoginTaken)
        if created:
            log.info("staff account opened", extra={"account_id": reply.account_id, "roles": list(account.roles),
                                                    "grade": account.grade, "by": admin.subject})
        return identity_pb2.CreateStaffAccountResponse(account=reply)

    def RequestPasswordReset(self, request, context):
        phone = rules.patient_phone(request.phone)
        issued, account_id = self._issue_code(phone, sign_up=False)
        log.info("password reset code issued", extra={"account_id": account_id})
        return identity_pb2.RequestPasswordResetResponse(
            expires_at=rfc3339(issued.expires_at), resend_after_seconds=self.reset_policy.resend_after_seconds,
        )

    def _issue_code(self, phone: str, *, sign_up: bool) -> tuple[reset.IssuedCode, str | None]:
        """Issues the phone's new code and sends it: the code and the account
        the phone signs in to (None without one). A reset code goes only to an
        account's phone; a sign-up code to every phone, in the text that says
        whether it has an account."""
        retry_after = self.reset_policy.resend_after_seconds
        # The send slot before anything is written: a request refused for want
        # of one leaves no code, no resend wait and no place in the day's
        # count, so requests holding the slots (a send, or a decoy for a
        # number without an account) cannot spend another patient's codes.
        if not self.send_slots.acquire(blocking=False):
            # As many sends under way as allowed: the threads stay for sign-ins.
            raise SmsUnavailable(retry_after)
        try:
            now = self.clock()
            issued = self.reset_policy.issue(now)
            digest = reset.code_digest(self.reset_key, phone, issued.code)
            with self.store.transaction() as cur:
                previous = self.store.lock_reset_code(cur, phone)
                refusal = self.reset_policy.resend_refusal(previous, now)
                account_id = None
                if refusal is None:
                    account_id = self.store.put_reset_code(cur, phone, digest, issued.issued_at, issued.expires_at,
                                                           self.reset_policy.count_code(previous, now),
                                                           sign_up=sign_up)
                    self.store.forget_reset_codes(cur, self.reset_policy.forget_before(now))
                    # Last, so the hour's one row is locked only until the commit just after.
                    if not self._text_budget_allows(cur, now):
                        # Raised in the transaction: the code just put is rolled back.
                        metrics.IDENTITY_SMS_HOURLY_LIMIT_REFUSALS.inc()
                        raise self.text_budget.refusal(now)
            if refusal is not None:
                # Raised after the transaction, which wrote nothing.
                raise refusal
            # The code, its resend wait and the day's count are committed before
            # the send, which holds no lock and no connection: a send that fails
            # (or times out after the text went) is not tried again before the
            # resend wait, so nobody makes a phone ring faster than that, and a
            # slow SMS gateway holds no patient's sign-in up.
            if sign_up:
                self._send_code(phone, issued.code, CodeMessage.SIGN_UP, retry_after)
            elif account_id is not None:
                self._send_code(phone, issued.code, CodeMessage.PASSWORD_RESET, retry_after)
            else:
                # The same answer with or without an account: nothing is sent,
                # but the wait and, while sends fail, the refusal are those of a
                # send (domain/sends.py).
                decoy = self.sends.decoy(time.monotonic())
                time.sleep(decoy.seconds)
                if decoy.fails:
                    raise SmsUnavailable(retry_after)
        finally:
            self.send_slots.release()
        return issued, account_id

    def _text_budget_allows(self, cur, now: dt.datetime) -> bool:
        """Whether this hour's texts leave room for this request, counting it
        if they do. Every request that would be answered as sent counts, also
        a reset for a number without an account, which texts nothing: counted
        apart, the hour's count would move differently for numbers with and
        without accounts, and whoever watched it fill would learn which is which."""
        budget = self.text_budget
        if not budget.enabled:
            return True
        if not self.store.spend_text(cur, budget.hour_of(now), budget.per_hour):
            return False
        self.store.forget_texts_per_hour(cur, budget.forget_before(now))
        return True

    def _send_code(self, phone: str, code: str, message: CodeMessage, retry_after: int) -> None:
        """Sends through the notifier; a reset's send is remembered, how it went and how long it took."""
        started, sent = time.monotonic(), False
        try:
            self.notifier.send_code(phone, code, message)
            sent = True
        except SmsUnavailable:
            raise SmsUnavailable(retry_after) from None
        finally:
            ended = time.monotonic()
            # Only resets are answered from memory (a number without an account),
            # so only theirs count: a sign-up's text, another template, went out
            # while the provider refused resets' and made the stranger's answer differ.
            if message is CodeMessage.PASSWORD_RESET:
                self.sends.record(sent, ended - started, ended)

    def ResetPassword(self, request, context):
        phone = rules.patient_phone(request.phone)
        code = reset.presented_code(request.code)
        rules.password(request.new_password, self.password_policy, field="new_password", phone=phone)
        key = rules.idempotency_key(request.idempotency_key)
        digest = reset.code_digest(self.reset_key, phone, code)
        # The key's owner is the code's digest: no phone number in the keys
        # table, and only the holder of the code can replay its reset.
        owner = digest.hex()
        fingerprint = outbox.request_fingerprint(
            identity_pb2.ResetPasswordRequest(phone=phone, code=code, idempotency_key=key))

        def complete_reset(cur, now: dt.datetime) -> tuple[str | None, Message]:
            return (self.store.complete_password_reset(cur, phone, password_hash, self.reset_policy.max_attempts,
                                                       now), identity_pb2.ResetPasswordResponse())

        # The code is judged before the new password is hashed: argon2 is slow
        # on purpose (and takes 64 MiB), and only a reset the code allows may
        # cost it. A wrong code counts its attempt in this first transaction.
        first, verdict, account_id = self._with_code("ResetPassword", phone, digest, owner, key, fingerprint,
                                                     reset.for_reset)
        if first is None and verdict is Verdict.ACCEPTED:
            # Hashed between the transactions: no lock or connection waits for
            # argon2. The second locks the code again and completes the reset
            # only if the code is still accepted: a concurrent reset may have
            # spent it, a new code replaced it, guesses killed it meanwhile.
            password_hash = self.passwords.hash(request.new_password)
            first, verdict, account_id = self._with_code("ResetPassword", phone, digest, owner, key, fingerprint,
                                                         reset.for_reset, complete_reset)
        replayed = first is not None
        if replayed:
            # The first answer, for the same password only (as a replayed sign-up).
            account = self.store.account_by_login(phone)
            self._prove_replay(phone, account, request.new_password, key)
            log.info("password reset", extra={"outcome": "replayed", "account_id": account.account_id})
            return self._reset_answer(account)
        log.info("password reset", extra={"outcome": verdict.value, "account_id": account_id})
        # Raised after the transaction commits: a wrong code's attempt must count.
        verdict.raise_unless_accepted()
        return self._reset_answer(self.store.account_by_id(account_id) if account_id else None)

    def _reset_answer(self, account: AccountRecord | None) -> identity_pb2.ResetPasswordResponse:
        """A reset proves the phone: the device that made it is trusted with the
        login's sign-ins from now on (its cookie is of the new password, which
        voided every earlier cookie)."""
        if account is None:
            return identity_pb2.ResetPasswordResponse()
        return identity_pb2.ResetPasswordResponse(device_cookie=device_cookies.issue(
            self.cookie_key, account.account_id, account.password_hash, device_cookies.new_device_id(),
            self.clock()))

    def _with_code(
        self, scope: str, phone: str, digest: bytes, owner: str, key: str, fingerprint: str,
        judged: Callable[[Verdict, reset.StoredCode | None], Verdict],
        complete: Callable[[object, dt.datetime], tuple[object, Message]] | None = None,
    ) -> tuple[bytes | None, Verdict | None, object]:
        """One transaction of a call that a phone's code allows (a reset, a
        sign-up): the code's row locked (so concurrent calls for one phone take
        turns), the idempotency key claimed and the presented code judged, then
        ``judged`` by what the call needs of it. Returns (the first answer,
        verdict, what ``complete`` returned): the first answer, and no verdict,
        when the key was answered before. A refused code leaves its key free
        (asking again decides again), and a wrong one counts an attempt. An
        accepted code completes the call only with ``complete`` (given the
        cursor and the time, it answers what it did and the answer to keep
        with the key); without it, nothing is done and the key is left free
        for the call that completes."""
        now = self.clock()
        done = None
        with self.store.transaction() as cur:
            stored = self.store.lock_reset_code(cur, phone)
            first = outbox.claim_key(cur, scope, owner, key, fingerprint)
            if first is not None:
                return first, None, None
            verdict = judged(self.reset_policy.judge(stored, digest, now), stored)
            if verdict is Verdict.ACCEPTED and complete is not None:
                done, answer = complete(cur, now)
                outbox.store_response(cur, scope, owner, key, answer)
            else:
                outbox.forget_keys(cur, scope, [(owner, key)])
                if verdict is Verdict.WRONG:
                    self.store.count_reset_attempt(cur, phone)
        return None, verdict, done

    def IssueDeviceToken(self, request, context):
        admin = auth.current_principal().require(auth.ADMIN)
        name = device_tokens.device_name(request.device_name)
        days = device_tokens.valid_days(request.valid_days)
        key = rules.idempotency_key(request.idempotency_key)
        write = outbox.Idempotent.of("IssueDeviceToken", admin.subject, key, request,
                                     identity_pb2.IssueDeviceTokenResponse)
        # A token's times are whole seconds (its iat and exp).
        issued_at = self.clock().replace(microsecond=0)
        fresh = DeviceTokenRecord(
            token_id=uuid.uuid4().hex, device_name=name, issued_by=admin.subject, issued_at=issued_at,
            expires_at=issued_at + dt.timedelta(days=days), revoked_at=None, revoked_by=None, revoke_reason=None)
        with self.store.transaction() as cur:
            first = write.replay(cur)
            if first is None:
                self.store.insert_device_token(cur, fresh)
                # The answer kept with the key leaves the token out, as everything
                # identity stores does: a replay signs the record again.
                write.remember(cur, identity_pb2.IssueDeviceTokenResponse(
                    expires_at=rfc3339(fresh.expires_at), token_id=fresh.token_id))
                record = fresh
            else:
                record = self.store.device_token(cur, first.token_id)
        token = signed_device_token(self.issuer, record)
        # The token itself is never logged.
        log.info("device token issued", extra={"device": name, "token_id": record.token_id,
                                                "expires_at": rfc3339(record.expires_at), "by": admin.subject,
                                                "outcome": "replayed" if write.replayed else "issued"})
        return identity_pb2.IssueDeviceTokenResponse(access_token=token, expires_at=rfc3339(record.expires_at),
                                                     token_id=record.token_id)

    def ListDeviceTokens(self, request, context):
        auth.current_principal().require(auth.ADMIN)
        name = device_tokens.device_name(request.device_name) if request.device_name else None
        records = self.store.device_tokens(name, request.include_expired, self.clock())
        return identity_pb2.ListDeviceTokensResponse(tokens=[device_token_message(r) for r in records])

    def RevokeDeviceToken(self, request, context):
        admin = auth.current_principal().require(auth.ADMIN)
        token_id = device_tokens.token_id(request.token_id)
        reason = device_tokens.revoke_reason(request.reason)
        record = self.store.revoke_device_token(token_id, admin.subject, reason, self.clock())
        if record is None:
            raise DeviceTokenNotFound()
        # The reason is free text an admin typed: not logged.
        log.info("device token revoked", extra={"device": record.device_name, "token_id": token_id,
                                                 "by": record.revoked_by})
        return identity_pb2.RevokeDeviceTokenResponse(token=device_token_message(record))

    def ListRevokedTokens(self, request, context):
        # No caller needed: every api asks, and the ids are random.
        revoked = self.store.revoked(self.clock())
        return identity_pb2.ListRevokedTokensResponse(
            token_ids=sorted(revoked.token_ids),
            withdrawn_accounts=[identity_pb2.WithdrawnAccount(account_id=account_id, token_generation=generation)
                                for account_id, generation in sorted(revoked.generations.items())])

    def ListStaff(self, request, context):
        auth.current_principal().require(auth.DISPATCHER, auth.ADMIN)
        role = rules.listed_role(request.role)
        return identity_pb2.ListStaffResponse(
            accounts=[account_message(r) for r in self.store.accounts_with_role(role)])

    def SetStaffGrade(self, request, context):
        admin = auth.current_principal().require(auth.ADMIN)
        account_id = rules.account_id(request.account_id)
        grade = grades.grade(request.grade)
        grades.refuse_own_grade(admin.subject, account_id)
        with self.store.transaction() as cur:
            record = self.store.lock_account(cur, account_id)
            if record is None:
                raise AccountNotFound("no account with this id")
            previous = record.grade
            changed = grades.grade_change(record.roles, previous, grade)
            if changed:
                record = self.store.set_grade(cur, account_id, grade, admin.subject, self.clock())
        if changed:
            # Who changed whose price, by account id: no names in the log.
            log.info("staff grade set", extra={"account_id": account_id, "grade": grade,
                                               "previous_grade": previous, "by": admin.subject,
                                               "token_generation": record.token_generation})
        return identity_pb2.SetStaffGradeResponse(account=account_message(record))

    def _open_account(
        self, scope: str, owner: str, key: str, request: Message, account: NewAccount, taken: type[AlreadyExists],
    ) -> tuple[identity_pb2.Account, bool]:
        """Creates the account once per idempotency key; True when this call created it."""
        fingerprint = outbox.request_fingerprint(without_password(request))
        # Hashed before the transaction: argon2 is slow on purpose, and a
        # pooled connection should not wait for it.
        password_hash = self.passwords.hash(request.password)
        with self.store.transaction() as cur:
            first = outbox.claim_key(cur, scope, owner, key, fingerprint)
            if first is None:
                record = self.store.insert_account(cur, account, password_hash, by=owner, at=self.clock())
                if record is None:
                    raise taken()
                reply = account_message(record)
                outbox.store_response(cur, scope, owner, key, reply)
                return reply, True
        reply = identity_pb2.Account.FromString(first)
        self._prove_replay(account.login, self.store.account_by_id(reply.account_id), request.password, key)
        return reply, False

    def _prove_replay(self, login: str, record: AccountRecord | None, password: str, key: str) -> None:
        """A replayed sign-up or reset answers only for the password its first
        call set, checked as a sign-in checks one, in the login's throttle:
        else whoever learnt the key could guess the password through
        replays, unthrottled (and, through a reset's, get a device cookie)."""
        patience = time.monotonic() + self.replay_patience_seconds
        waiting = False
        try:
            while True:
                now = self.clock()
                failures, oldest = self.store.begin_attempt(login, now, since=self.throttle.window_start(now),
                                                            limit=self.throttle.max_failures)
                if not self.throttle.is_locked(failures):
                    break
                # Copies of this request sent at once (a client's retries) each
                # hold a place in the count until their check ends, and the first
                # to pass clears them all: waited for, not refused as guesses.
                # A count whose newest place is older than a check takes was
                # made of failures: nothing to wait for (and a locked login
                # takes no new places, so replaying it again keeps it so).
                newest = self.store.last_attempt_at(login)
                in_flight = newest is not None and now - newest < dt.timedelta(seconds=self.replay_patience_seconds)
                waiting = waiting or (in_flight and self.replay_waits.acquire(blocking=False))
                if not waiting or time.monotonic() >= patience:
                    raise TooManyAttempts(self.throttle.seconds_until_unlocked(oldest, now))
                time.sleep(REPLAY_RECHECK_SECONDS)
        finally:
            if waiting:
                self.replay_waits.release()
        if record is None or not self.passwords.verify(record.password_hash, password):
            raise outbox.IdempotencyConflict(key)
        self.store.clear_failures(login)

    @staticmethod
    def _signed_in(outcome: str, account_id: str | None = None) -> None:
        metrics.IDENTITY_SIGN_INS.labels(outcome).inc()
        # The login is a phone number for patients: never logged.
        log.info("sign-in", extra={"outcome": outcome, "account_id": account_id})


def register(
    server: grpc.Server,
    settings: Settings,
    database: Database,
    *,
    issuer: auth.TokenIssuer | None = None,
    notifier: Notifier | None = None,
    config: IdentityConfig | None = None,
    clock: Callable[[], dt.datetime] = outbox.utcnow,
) -> Iterable[str]:
    """Adds identity's servicer. ``main`` passes the notifier it built; tests
    pass their own ``issuer``, ``notifier``, ``config`` and ``clock``. Without
    a notifier, reset codes go to the log (the development adapter)."""
    if issuer is None:
        issuer = auth.TokenIssuer.from_file(settings.token_private_key_file)
    config = config or IdentityConfig.from_env()
    sms.count_from_zero()
    servicer = IdentityServicer(
        IdentityStore(database), issuer, Passwords(),
        notifier=notifier if notifier is not None else LogNotifier(),
        reset_key=reset_code_key(settings.token_private_key_file),
        reset_policy=config.reset, clock=clock, text_budget=config.texts,
    )
    metrics.IDENTITY_SMS_TEXTS_PER_HOUR_LIMIT.set(config.texts.per_hour)
    identity_pb2_grpc.add_IdentityServiceServicer_to_server(servicer, server)
    return [SERVICE_NAME]


def revoked_tokens(database: Database) -> Callable[[], Revoked]:
    """Identity's own revocation list: read from its tables, not asked of itself over gRPC."""
    store = IdentityStore(database)
    return lambda: store.revoked(outbox.utcnow())


def main() -> None:
    config = IdentityConfig.from_env()

    def start(server: grpc.Server, settings: Settings, database: Database) -> Iterable[str]:
        # The notification port's adapter is chosen here, at start-up, once
        # logging is set up: the SMS gateway when IDENTITY_SMS_URL names one,
        # else the development adapter, with a warning.
        return register(server, settings, database, notifier=choose_notifier(config), config=config)

    # Identity's api, not its worker, purges the outbox, inbox and idempotency keys past their retention.
    api_main.run("identity", start, migrations_dir=MIGRATIONS_DIR, revoked_source=revoked_tokens,
                 purge_retention=True)


if __name__ == "__main__":
    main()
