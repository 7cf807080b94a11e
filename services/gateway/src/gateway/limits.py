"""How much of one gateway process slow or numerous clients may take, from
the environment (read at start-up, not import).

Every connection costs the process memory, and a request's body is held
whole until it has arrived (body_limit.py): 150 clients each sending a body
just under 1 MiB, and never finishing it, held ~157 MiB, and nothing stopped
more of them or made them finish. Past the caps here a client is turned away
early and cheaply instead, so the patients already being served keep the
process.
"""
from __future__ import annotations

from dataclasses import dataclass

from tuoguan_common.config import env_number

from .body_limit import BODY_TIMEOUT_SECONDS


@dataclass(frozen=True)
class ServerLimits:
    # Connections open at once, idle keep-alive ones included, past which
    # uvicorn answers a request 503 (its own plain-text reply, Connection:
    # close) without running the app; 0: no cap. With bodies of at most
    # 256 KiB, a thousand slow clients hold ~260 MiB at worst.
    concurrency: int = 1000
    # How long an idle keep-alive connection stays open, counted in the cap
    # all the while (uvicorn's default, now stated and settable).
    keep_alive_seconds: int = 5
    # How long a request's whole body may take to arrive, from its headers on
    # (not per chunk: trickling a byte at a time must not reset it); past it
    # the request is answered 408 and its connection closed. 0: no deadline.
    body_timeout_seconds: float = BODY_TIMEOUT_SECONDS

    @classmethod
    def from_env(cls) -> "ServerLimits":
        return cls(
            concurrency=env_number("GATEWAY_LIMIT_CONCURRENCY", cls.concurrency, minimum=0),
            keep_alive_seconds=env_number("GATEWAY_KEEP_ALIVE_SECONDS", cls.keep_alive_seconds, minimum=1),
            body_timeout_seconds=env_number("GATEWAY_BODY_TIMEOUT_SECONDS", cls.body_timeout_seconds, float,
                                            minimum=0),
        )

    def uvicorn_limit_concurrency(self) -> int | None:
        """uvicorn's ``limit_concurrency`` for this cap. uvicorn refuses a
        request when the open connections, its own counted, are at least its
        limit: a limit of N serves N - 1. One more, so that ``concurrency``
        connections are served and the next one is refused."""
        return self.concurrency + 1 if self.concurrency else None
