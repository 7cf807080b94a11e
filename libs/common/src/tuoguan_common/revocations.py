"""The revoked tokens an api refuses, kept fresh in the background.

Tokens are checked by signature alone, so a token that must stop working
before it expires (a leaked device token, a retired device, a sign-out)
needs a list. So does every token of an account whose tokens went stale at
once (an engineer's new grade, a password reset): identity then moves the
account's token generation on, and lists the account with the generation a
token must carry. Identity keeps the list (``ListRevokedTokens``: the
revoked ids not yet expired, the accounts withdrawn within a token's life);
every api reads it at start and every ``TUOGUAN_REVOCATION_REFRESH_SECONDS``
(30 s) after, and ``auth.TokenVerifier`` refuses the ids on it and the
listed accounts' tokens of an earlier generation. When identity
cannot be reached the last list read stays in force, and the api says so in
its log and in ``tuoguan_token_revocations_refreshed_timestamp_seconds``.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Callable

from . import metrics

log = logging.getLogger(__name__)

DEFAULT_REFRESH_SECONDS = 30.0
MAX_LIST_BYTES = 64 * 1024 * 1024
# Identity starts beside the apis (`make up`, a rollout): for this long a
# first read that fails is expected, said once at info, not a warning a second.
STARTUP_GRACE_SECONDS = 30.0


@dataclass(frozen=True)
class Revoked:
    """What identity has withdrawn: token ids, and per account the lowest
    token generation still accepted."""
    token_ids: frozenset[str] = frozenset()
    generations: Mapping[str, int] = field(default_factory=dict)


class RevocationList:
    """A set of revoked token ids (``in``) and the accounts' required token
    generations (``generation_required``), refreshed by ``start()``'s thread
    from what ``fetch`` answers."""

    def __init__(self, service: str, fetch: Callable[[], Revoked],
                 refresh_seconds: float = DEFAULT_REFRESH_SECONDS):
        self.service = service
        self._fetch = fetch
        self.refresh_seconds = refresh_seconds
        self._revoked = Revoked()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._read_once = False
        self._created = time.monotonic()
        self._waiting_said = False
        # Never read is the stalest of all: the alert on the figure's age fires.
        metrics.TOKEN_REVOCATIONS_REFRESHED.labels(service).set(0)

    def __contains__(self, token_id: object) -> bool:
        return token_id in self._revoked.token_ids

    def generation_required(self, account_id: str) -> int:
        return self._revoked.generations.get(account_id, 0)

    def refresh(self) -> bool:
        """Reads the list once; False (and the last list kept) when it could not."""
        try:
            revoked = self._fetch()
        except Exception as exc:  # noqa: BLE001 - any failure keeps the last list; the next refresh tries again
            if self._read_once or time.monotonic() - self._created > STARTUP_GRACE_SECONDS:
                log.warning("token revocation list not refreshed", extra={"error": type(exc).__name__})
            elif not self._waiting_said:
                self._waiting_said = True
                log.info("token revocation list not read yet: waiting for identity",
                         extra={"error": type(exc).__name__})
            return False
        self._revoked = revoked
        self._read_once = True
        metrics.TOKEN_REVOCATIONS.labels(self.service).set(len(revoked.token_ids))
        metrics.TOKEN_WITHDRAWN_ACCOUNTS.labels(self.service).set(len(revoked.generations))
        metrics.TOKEN_REVOCATIONS_REFRESHED.labels(self.service).set(time.time())
        return True

    def start(self) -> "RevocationList":
        """Reads the list now (a restarted api refuses what was revoked before
        it started), then every ``refresh_seconds`` in a daemon thread."""
        self.refresh()
        self._thread = threading.Thread(target=self._run, name="token-revocations", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        # Until a first read succeeds (identity starting beside this api), try every second.
        while not self._stop.wait(self.refresh_seconds if self._read_once else min(1.0, self.refresh_seconds)):
            self.refresh()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


def from_identity(service: str, address: str, refresh_seconds: float = DEFAULT_REFRESH_SECONDS) -> RevocationList:
    """The list as identity's api answers it at ``address``."""
    import grpc
    from tuoguan.identity.v1 import identity_pb2, identity_pb2_grpc

    # Every sign-out stays on the list for a token's lifetime (15 minutes): a
    # storm of them must not outgrow gRPC's default 4 MB answer (about 110,000
    # ids), past which every refresh would fail and the last list stay in force.
    channel = grpc.insecure_channel(address, options=[("grpc.max_receive_message_length", MAX_LIST_BYTES)])
    stub = identity_pb2_grpc.IdentityServiceStub(channel)

    def fetch() -> Revoked:
        answer = stub.ListRevokedTokens(identity_pb2.ListRevokedTokensRequest(), timeout=5)
        return Revoked(frozenset(answer.token_ids),
                       {a.account_id: a.token_generation for a in answer.withdrawn_accounts})

    return RevocationList(service, fetch, refresh_seconds)
