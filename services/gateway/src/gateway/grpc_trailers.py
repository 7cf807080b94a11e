"""Reading the services' trailing metadata (reason and field of a refusal)."""
from __future__ import annotations

from typing import Any


def first_value(metadata: Any, key: str) -> str | None:
    for k, v in metadata or ():
        if k == key:
            return v.decode() if isinstance(v, bytes) else v
    return None
