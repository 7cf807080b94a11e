"""How deep a JSON text nests, measured before anything decodes it.

Python's JSON decoder recurses once per array or object opened. A body of a
few hundred KiB can open thousands inside each other and run it to the
interpreter's recursion limit, where the RecursionError is the lesser harm:
any finaliser the garbage collector happens to run at that depth fails too,
somewhere unrelated. No request this platform takes nests more than a few
levels (Alertmanager's notification, the deepest, nests four), so a text
that nests deeper than ``MAX_NESTING`` is refused unread.
"""
from __future__ import annotations

import re

MAX_NESTING = 32

# A JSON string, escaped quotes included: brackets inside one are text, not
# nesting. One never closed runs to the end: made to close, a failed match was
# tried again from each later quote, and a body of escaped quotes took minutes.
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"?', re.S)
_BRACKET = re.compile(r"[\[\]{}]")
_STRING_BYTES = re.compile(rb'"(?:[^"\\]|\\.)*"?', re.S)
_BRACKET_BYTES = re.compile(rb"[\[\]{}]")


def nested_too_deeply(text: str | bytes, limit: int = MAX_NESTING) -> bool:
    """Whether ``text`` opens more than ``limit`` arrays and objects inside
    each other. Text that is not JSON is measured all the same (the decoder
    refuses it afterwards, with its own reason)."""
    if isinstance(text, bytes):
        strings, brackets, empty, opening = _STRING_BYTES, _BRACKET_BYTES, b'""', b"[{"
    else:
        strings, brackets, empty, opening = _STRING, _BRACKET, '""', "[{"
    depth = 0
    for bracket in brackets.finditer(strings.sub(empty, text)):
        if bracket.group() in opening:
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False
