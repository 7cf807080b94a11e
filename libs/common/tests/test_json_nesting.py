"""JSON nesting measured before decoding: pure, no I/O."""
import time

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



def test_a_string_never_closed_is_measured_in_one_pass():
    # 256 KiB of escaped quotes in a string that never closes: the old pattern tried each later quote again,
    # and this took 215 s, during which a gateway process answered nobody. A guard, not a benchmark.
    body = b'{"login": "' + b'\\"' * (128 * 1024)
    started = time.perf_counter()
    assert not nested_too_deeply(body) and not nested_too_deeply(body.decode())
    assert time.perf_counter() - started < 2.0
    # What follows an unclosed string is inside it.
    assert not nested_too_deeply('{"a": "' + "[" * 100)
