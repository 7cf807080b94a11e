"""Pages of a long list (Google's AIP-158): a request's ``page_size`` and
``page_token``, a response's ``next_page_token``, empty on the last page.

A list is read newest first along (its sort key, its id), and a token is the
place after the last row given: a keyset, not an offset, so a page comes back
as fast at the end of a long list as at its start, and rows added meanwhile
neither repeat nor push rows off the next page. The token names its list
(``scope``), so one list's token is refused by another; it holds no personal
data (an instant and a row id), and one a caller makes up only moves them
within their own list.
"""
from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from .errors import InvalidArgument

T = TypeVar("T")


@dataclass(frozen=True)
class Page:
    """What the store reads: ``size`` rows after ``after`` (sort key, id), or from the first."""

    scope: str
    size: int
    after: tuple[dt.datetime, str] | None = None

    def sql(self, sort_key: str, row_id: str) -> tuple[str, tuple]:
        """What follows a query's WHERE conditions to read the page, newest first along (``sort_key``,
        ``row_id``, a uuid column), and its parameters: one row more than the page holds, which tells
        ``rows_and_token`` a next page is there."""
        after = "" if self.after is None else f"AND ({sort_key}, {row_id}) < (%s, %s::uuid) "
        return f"{after}ORDER BY {sort_key} DESC, {row_id} DESC LIMIT %s", (*(self.after or ()), self.size + 1)

    def rows_and_token(self, rows: Sequence[T], key: Callable[[T], tuple[dt.datetime, str]]) -> tuple[list[T], str]:
        """The page of ``rows`` (read as ``sql`` says) and the token of the next page, empty when there is none."""
        kept = list(rows[:self.size])
        if len(rows) <= self.size or not kept:
            return kept, ""
        instant, row_id = key(kept[-1])
        text = json.dumps({"list": self.scope, "after": [instant.isoformat(), str(row_id)]}, separators=(",", ":"))
        return kept, base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def page(scope: str, page_size: int, page_token: str, *, default: int, maximum: int) -> Page:
    """The page a request asks for: ``page_size`` 0 is ``default``, more than ``maximum`` is ``maximum`` (as
    AIP-158 has it); negative, or a token this list did not give, is INVALID_ARGUMENT on its field."""
    if page_size < 0:
        raise InvalidArgument("page_size", "must not be negative")
    size = min(page_size or default, maximum)
    token = page_token.strip()
    if not token:
        return Page(scope, size)
    try:
        data = json.loads(base64.b64decode(token + "=" * (-len(token) % 4), altchars=b"-_", validate=True))
        instant, row_id = data["after"]
        after = (dt.datetime.fromisoformat(instant), str(uuid.UUID(row_id)))
        if data["list"] != scope or after[0].tzinfo is None:
            raise ValueError(data["list"])
    except (binascii.Error, UnicodeDecodeError, ValueError, TypeError, KeyError, AttributeError):
        raise InvalidArgument("page_token", "is not a token this list gave: pass the next_page_token of its "
                                            "last page, or none for the first") from None
    return Page(scope, size, after)
