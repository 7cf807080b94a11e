"""Priority from an impact x urgency matrix, with the major-incident flag outside it."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from types import MappingProxyType


class Priority(IntEnum):
    P1 = 1
    P2 = 2
    P3 = 3
    P4 = 4

    def __str__(self) -> str:
        return self.name

    @classmethod
    def parse(cls, value: str | int) -> Priority:
        """``"P2"``, ``"p2"``, ``"2"`` or ``2``; ValueError otherwise."""
        if isinstance(value, Priority):
            return value
        text = str(value).strip().upper()
        if text.startswith("P"):
            text = text[1:]
        try:
            return cls(int(text))
        except ValueError:
            raise ValueError(f"priority {value!r} is not one of P1, P2, P3, P4") from None

    def raised(self) -> Priority:
        """One step more urgent (P1 stays P1)."""
        return Priority(max(1, self.value - 1))


class Level(StrEnum):
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


_DEFAULT = {
    (Level.HIGH, Level.HIGH): Priority.P1,
    (Level.HIGH, Level.MEDIUM): Priority.P2,
    (Level.HIGH, Level.LOW): Priority.P3,
    (Level.MEDIUM, Level.HIGH): Priority.P2,
    (Level.MEDIUM, Level.MEDIUM): Priority.P3,
    (Level.MEDIUM, Level.LOW): Priority.P4,
    (Level.LOW, Level.HIGH): Priority.P3,
    (Level.LOW, Level.MEDIUM): Priority.P4,
    (Level.LOW, Level.LOW): Priority.P4,
}


def _level(value: str, what: str) -> Level:
    try:
        return Level(str(value).strip().lower())
    except ValueError:
        raise ValueError(f"{what} {value!r} is not one of high, medium, low") from None


@dataclass(frozen=True)
class PriorityMatrix:
    """(impact, urgency) -> priority, every one of the nine cells given."""

    table: Mapping[tuple[Level, Level], Priority]

    def __post_init__(self) -> None:
        table: dict[tuple[Level, Level], Priority] = {}
        for key, value in dict(self.table).items():
            if not isinstance(key, tuple) or len(key) != 2:
                raise ValueError(f"priority matrix key {key!r} is not (impact, urgency)")
            impact, urgency = _level(key[0], "impact"), _level(key[1], "urgency")
            table[(impact, urgency)] = Priority.parse(value)
        for impact in Level:
            for urgency in Level:
                if (impact, urgency) not in table:
                    raise ValueError(f"priority matrix: cell impact={impact} urgency={urgency} is missing")
        object.__setattr__(self, "table", MappingProxyType(table))

    def __hash__(self) -> int:
        return hash(tuple(sorted(self.table.items())))

    @classmethod
    def default(cls) -> PriorityMatrix:
        """ITIL-like: high/high P1; high/medium and medium/high P2; ... low/low P4."""
        return cls(_DEFAULT)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Mapping[str, str | int]]) -> PriorityMatrix:
        """``{"high": {"high": "P1", "medium": "P2", ...}, ...}`` (impact, then urgency)."""
        if not isinstance(data, Mapping):
            raise ValueError("priority matrix must be a mapping impact -> urgency -> priority")
        table: dict[tuple[Level, Level], Priority] = {}
        for impact_key, row in data.items():
            impact = _level(impact_key, "priority matrix impact")
            if not isinstance(row, Mapping):
                raise ValueError(f"priority matrix: row impact={impact} must be a mapping urgency -> priority")
            for urgency_key, value in row.items():
                urgency = _level(urgency_key, f"priority matrix impact={impact}: urgency")
                try:
                    table[(impact, urgency)] = Priority.parse(value)
                except ValueError:
                    raise ValueError(
                        f"priority matrix: cell impact={impact} urgency={urgency} has {value!r}, "
                        "not one of P1, P2, P3, P4") from None
        return cls(table)

    def to_mapping(self) -> dict[str, dict[str, str]]:
        """The inverse of from_mapping (for configuration files and the admin pages)."""
        return {impact.value: {urgency.value: self.table[(impact, urgency)].name for urgency in Level}
                for impact in Level}

    def priority(self, impact: Level, urgency: Level, *, major_incident: bool = False) -> Priority:
        """The matrix cell; a major incident is P1 whatever the cell says."""
        if major_incident:
            return Priority.P1
        return self.table[(_level(impact, "impact"), _level(urgency, "urgency"))]
