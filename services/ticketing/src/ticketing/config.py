"""Ticketing's own settings, read from the environment once at start-up."""
from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tuoguan_common.config import env_flag, env_number

from .domain.priority import PriorityMatrix
from .domain.sla import SlaPolicy


@dataclass(frozen=True)
class TicketingConfig:
    matrix: PriorityMatrix = field(default_factory=PriorityMatrix.default)
    policy: SlaPolicy = field(default_factory=SlaPolicy.default)
    # A ticket cannot be resolved without a worklog (the contract pays for logged time only).
    require_worklog: bool = True
    # An unconfirmed resolution closes by itself after this many of the hospital's working hours.
    auto_close_working_hours: float = 24.0
    # Who takes a ticket well past its resolution target (escalation level 3).
    escalation_team: str = "escalation"
    # Worker timers, in seconds.
    escalation_interval: float = 5.0
    auto_close_interval: float = 60.0
    # The engineers' ids from identity (staff_directory.py): kept this long (an id not in the list asks again at
    # once), and how long ticketing waits for identity's answer before refusing the assignment (UNAVAILABLE).
    staff_cache_seconds: float = 30.0
    identity_timeout_seconds: float = 3.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> TicketingConfig:
        env = os.environ if env is None else env
        matrix = PriorityMatrix.default()
        if env.get("TICKETING_PRIORITY_MATRIX_FILE"):
            path = Path(env["TICKETING_PRIORITY_MATRIX_FILE"])
            try:
                matrix = PriorityMatrix.from_mapping(json.loads(path.read_text(encoding="utf-8")))
            except (OSError, ValueError) as exc:
                raise SystemExit(f"TICKETING_PRIORITY_MATRIX_FILE {path}: {exc}") from exc
        return cls(
            matrix=matrix,
            require_worklog=env_flag("TICKETING_REQUIRE_WORKLOG", True, env),
            auto_close_working_hours=env_number("TICKETING_AUTO_CLOSE_WORKING_HOURS", cls.auto_close_working_hours,
                                                float, env, minimum=0),
            escalation_team=env.get("TICKETING_ESCALATION_TEAM") or cls.escalation_team,
            escalation_interval=env_number("TICKETING_ESCALATION_INTERVAL", cls.escalation_interval, float, env,
                                           minimum=0.1),
            auto_close_interval=env_number("TICKETING_AUTO_CLOSE_INTERVAL", cls.auto_close_interval, float, env,
                                           minimum=0.1),
            staff_cache_seconds=env_number("TICKETING_STAFF_CACHE_SECONDS", cls.staff_cache_seconds, float, env,
                                           minimum=0),
            identity_timeout_seconds=env_number("TICKETING_IDENTITY_TIMEOUT_SECONDS", cls.identity_timeout_seconds,
                                                float, env, minimum=0.1),
        )
