"""Priority from the impact x urgency matrix."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from ticketing.domain.priority import Level, Priority, PriorityMatrix

H, M, L = Level.HIGH, Level.MEDIUM, Level.LOW
DEFAULT = PriorityMatrix.default()


@pytest.mark.parametrize("impact, urgency, expected", [
    (H, H, Priority.P1), (H, M, Priority.P2), (H, L, Priority.P3),
    (M, H, Priority.P2), (M, M, Priority.P3), (M, L, Priority.P4),
    (L, H, Priority.P3), (L, M, Priority.P4), (L, L, Priority.P4),
])
def test_default_matrix_is_itil_like(impact, urgency, expected):
    assert DEFAULT.priority(impact, urgency) == expected


@pytest.mark.parametrize("impact, urgency", [(i, u) for i in Level for u in Level])
def test_a_major_incident_is_p1_whatever_the_cell(impact, urgency):
    assert DEFAULT.priority(impact, urgency, major_incident=True) == Priority.P1


def test_levels_may_be_given_as_text():
    assert DEFAULT.priority("high", "Medium") == Priority.P2
    with pytest.raises(ValueError, match="impact"):
        DEFAULT.priority("severe", "high")


def test_from_mapping_reads_names_and_numbers():
    data = {"high": {"high": "P1", "medium": 1, "low": "p2"},
            "medium": {"high": "2", "medium": "P3", "low": "P3"},
            "low": {"high": "P4", "medium": "P4", "low": 4}}
    matrix = PriorityMatrix.from_mapping(data)
    assert matrix.priority(H, M) == Priority.P1
    assert matrix.priority(H, L) == Priority.P2
    assert matrix.priority(L, L) == Priority.P4
    assert PriorityMatrix.from_mapping(matrix.to_mapping()) == matrix
    assert PriorityMatrix.from_mapping(DEFAULT.to_mapping()) == DEFAULT
    assert hash(PriorityMatrix.from_mapping(DEFAULT.to_mapping())) == hash(DEFAULT)


def test_from_mapping_names_the_missing_cell():
    data = DEFAULT.to_mapping()
    del data["medium"]["low"]
    with pytest.raises(ValueError, match="impact=medium urgency=low is missing"):
        PriorityMatrix.from_mapping(data)


def test_from_mapping_names_the_bad_cell():
    data = DEFAULT.to_mapping()
    data["low"]["high"] = "P9"
    with pytest.raises(ValueError, match="impact=low urgency=high has 'P9'"):
        PriorityMatrix.from_mapping(data)
    with pytest.raises(ValueError, match="urgency"):
        PriorityMatrix.from_mapping({"high": {"soon": "P1"}})
    with pytest.raises(ValueError, match="impact"):
        PriorityMatrix.from_mapping({"huge": {"high": "P1"}})
    with pytest.raises(ValueError, match="mapping"):
        PriorityMatrix.from_mapping({"high": "P1"})


def test_the_table_must_cover_all_nine_cells():
    table = dict(DEFAULT.table)
    del table[(L, L)]
    with pytest.raises(ValueError, match="impact=low urgency=low"):
        PriorityMatrix(table)


def test_priority_parse_and_raise():
    assert Priority.parse("P3") is Priority.P3 and Priority.parse(2) is Priority.P2
    assert Priority.parse(" p1 ") is Priority.P1
    with pytest.raises(ValueError):
        Priority.parse("P0")
    assert Priority.P3.raised() is Priority.P2 and Priority.P1.raised() is Priority.P1
    assert str(Priority.P4) == "P4"


@given(st.dictionaries(st.tuples(st.sampled_from(list(Level)), st.sampled_from(list(Level))),
                       st.sampled_from(list(Priority)), min_size=9, max_size=9))
def test_any_full_table_round_trips(table):
    matrix = PriorityMatrix(table)
    assert PriorityMatrix.from_mapping(matrix.to_mapping()) == matrix
    assert all(matrix.priority(i, u) == p for (i, u), p in table.items())
