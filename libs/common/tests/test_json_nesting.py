"""JSON nesting measured before decoding: pure, no I/O."""
import pytest
from tuoguan_common.json_nesting import MAX_NESTING, nested_too_deeply


@pytest.mark.parametrize("text, deep", [
    ('{"version": "4", "alerts": [{"labels": {"a": "b"}}]}', False),
    ("[" * MAX_NESTING + "]" * MAX_NESTING, False),
    ("[" * (MAX_NESTING + 1) + "]" * (MAX_NESTING + 1), True),
    ('{"version": "4", "alerts": ' + "[" * 5000 + "]" * 5000 + "}", True),
    # Unclosed: a cut body is measured as far as it goes.
    ("{" * 100, True),
    # Brackets inside strings, escaped quotes among them, are text, not nesting.
    ('{"summary": "' + "[{" * 100 + '\\" [[[ "}', False),
    ('{"a": "\\\\", "b": [[[]]]}', False),
    ("", False),
])
def test_nesting_is_measured_as_text_and_as_bytes(text, deep):
    assert nested_too_deeply(text) is deep
    assert nested_too_deeply(text.encode()) is deep


def test_a_limit_of_its_own():
    assert nested_too_deeply("[[[]]]", limit=2)
    assert not nested_too_deeply("[[[]]]", limit=3)

