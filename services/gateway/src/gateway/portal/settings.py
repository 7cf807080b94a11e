"""The portal's settings, from the environment (read at start-up, not import)."""
from __future__ import annotations

import logging
import os
import secrets
from dataclasses import dataclass

from tuoguan_common.config import DEFAULT_REDIS_URL, env_flag, env_number

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PortalSettings:
    # Signs the session cookie; every gateway replica must share it.
    session_secret: str
    # Secure cookies need HTTPS; the chart turns this on behind its TLS ingress.
    secure_cookies: bool = False
    redis_url: str = DEFAULT_REDIS_URL
    # Patients admitted to the booking pages at once; 0 switches the waiting room off.
    waiting_room_capacity: int = 300
    # How long an admission lasts once taken, and how long a patient has to take it when their turn comes.
    waiting_room_pass_seconds: int = 600
    waiting_room_claim_seconds: int = 60
    # New tickets one public client address may take a minute; 0 switches the count off. Generous: a
    # carrier's NAT or the hospital's Wi-Fi puts many patients behind one address, and one refused only
    # waits for the minute's end; a script pushing patients back with junk tickets is held to this.
    waiting_room_new_tickets_per_address: int = 60
    # Keys of the queue in Redis: one queue per platform sharing a Redis.
    waiting_room_namespace: str = "tuoguan:waiting-room"
    # How stale the remaining-capacity figures on the slot pages may be.
    availability_cache_seconds: float = 2.0
    # Departments and doctors change rarely.
    catalogue_cache_seconds: float = 60.0

    @classmethod
    def from_env(cls) -> "PortalSettings":
        secret = os.environ.get("GATEWAY_SESSION_SECRET", "")
        if not secret:
            log.warning("GATEWAY_SESSION_SECRET is not set: sessions end when this gateway restarts "
                        "and are not shared between replicas")
            secret = secrets.token_urlsafe(32)
        return cls(
            session_secret=secret,
            secure_cookies=env_flag("GATEWAY_SECURE_COOKIES"),
            redis_url=os.environ.get("REDIS_URL") or cls.redis_url,
            waiting_room_capacity=env_number("WAITING_ROOM_CAPACITY", cls.waiting_room_capacity, minimum=0),
            waiting_room_pass_seconds=env_number("WAITING_ROOM_PASS_SECONDS", cls.waiting_room_pass_seconds,
                                                 minimum=1),
            waiting_room_claim_seconds=env_number("WAITING_ROOM_CLAIM_SECONDS", cls.waiting_room_claim_seconds,
                                                  minimum=1),
            waiting_room_new_tickets_per_address=env_number(
                "WAITING_ROOM_NEW_TICKETS_PER_ADDRESS", cls.waiting_room_new_tickets_per_address, minimum=0),
            waiting_room_namespace=os.environ.get("WAITING_ROOM_NAMESPACE") or cls.waiting_room_namespace,
            availability_cache_seconds=env_number("AVAILABILITY_CACHE_SECONDS", cls.availability_cache_seconds,
                                                  float, minimum=0),
            catalogue_cache_seconds=env_number("CATALOGUE_CACHE_SECONDS", cls.catalogue_cache_seconds, float,
                                               minimum=0),
        )
