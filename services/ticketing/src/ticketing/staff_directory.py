"""The one question ticketing asks identity synchronously: is this account an engineer's?

A dispatcher's (or an admin's) assignment must name an engineer: nobody else has a queue that shows the
ticket, and only the assignee may start it. Identity knows who holds the role: ``ListStaff("engineer")``,
which dispatchers and admins may call. Ticketing asks it with the caller's own token (identity authorises the
dispatcher, not ticketing) and keeps only the account ids of the answer (never names or logins), for a short
while: an assignment to an id the list does not hold asks again once, so an engineer created a moment ago
can be assigned at once.

Built once at start-up (``ticketing.api.register``), never at import; tests hand in their own directory.
"""
from __future__ import annotations

import threading
import time
from typing import Callable, Protocol

import grpc
from tuoguan.identity.v1 import identity_pb2, identity_pb2_grpc
from tuoguan_common import auth, telemetry

from .exceptions import identity_failure

ENGINEER_ROLE = "engineer"

_OPTIONS = [
    ("grpc.keepalive_time_ms", 30_000),
    # The chart's address (dns:///identity-api-headless:50051) resolves to every replica: spread the calls.
    ("grpc.lb_policy_name", "round_robin"),
]


class StaffDirectory(Protocol):
    def is_engineer(self, account_id: str, caller_token: str | None) -> bool:
        """Whether identity lists ``account_id`` as an engineer's account, asked as the caller (whose token
        ``caller_token`` is). Raises the service error of identity's failure (``identity_failure``):
        StaffDirectoryUnavailable when it does not answer."""
        ...


class IdentityStaffDirectory:
    """identity.v1.IdentityService.ListStaff over gRPC, from the api's worker threads, with the engineers'
    ids kept ``cache_seconds``.

    * A fresh list that holds the id answers at once.
    * Otherwise (an id it does not hold, or a list older than ``cache_seconds``) identity is asked once; one
      call at a time: callers that missed meanwhile take the list fetched after their miss.
    * Identity not answering is StaffDirectoryUnavailable, whatever the list held: nobody is assigned
      unchecked on a stale list.
    """

    def __init__(self, target: str, *, cache_seconds: float = 30.0, timeout: float = 3.0,
                 clock: Callable[[], float] = time.monotonic):
        self.target = target
        self.cache_seconds = cache_seconds
        self.timeout = timeout
        self._clock = clock
        # grpc.insecure_channel connects lazily: building it at start-up needs identity up no sooner than the
        # first assignment that asks.
        self._channel = grpc.insecure_channel(target, options=_OPTIONS)
        self._stub = identity_pb2_grpc.IdentityServiceStub(self._channel)
        self._fetching = threading.Lock()
        # (the engineers' account ids, when the call that listed them began); replaced whole, read without a lock.
        self._listed: tuple[frozenset[str], float] | None = None

    def is_engineer(self, account_id: str, caller_token: str | None) -> bool:
        missed_at = self._clock()
        listed = self._listed
        if listed is not None and missed_at - listed[1] < self.cache_seconds and account_id in listed[0]:
            return True
        with self._fetching:
            listed = self._listed
            if listed is None or listed[1] < missed_at:
                asked_at = self._clock()
                listed = (self._fetch(caller_token), asked_at)
                self._listed = listed
        return account_id in listed[0]

    def _fetch(self, caller_token: str | None) -> frozenset[str]:
        metadata = [*(auth.bearer_metadata(caller_token) if caller_token else ()), *telemetry.inject().items()]
        try:
            reply = self._stub.ListStaff(identity_pb2.ListStaffRequest(role=ENGINEER_ROLE), metadata=metadata,
                                         timeout=self.timeout)
        except grpc.RpcError as exc:
            raise identity_failure(exc) from None
        # Only the ids: the answer's names and logins are not ticketing's to keep.
        return frozenset(a.account_id for a in reply.accounts if a.account_id)

    def close(self) -> None:
        self._channel.close()
