"""Page tokens (tuoguan_common.paging): pure, no I/O."""
from __future__ import annotations

import datetime as dt
import uuid

import pytest

from tuoguan_common import paging
from tuoguan_common.errors import InvalidArgument

T0 = dt.datetime(2026, 11, 28, 9, 0, tzinfo=dt.timezone.utc)
ROWS = [(T0 - dt.timedelta(minutes=i), str(uuid.uuid4())) for i in range(5)]


def refused_field(scope: str, size: int, token: str) -> str:
    with pytest.raises(InvalidArgument) as caught:
        paging.page(scope, size, token, default=3, maximum=4)
    return caught.value.field


def test_a_page_holds_its_size_and_the_token_names_the_place_after_its_last_row():
    first = paging.page("bookings", 2, "", default=3, maximum=4)
    assert (first.size, first.after) == (2, None)
    rows, token = first.rows_and_token(ROWS[:3], key=lambda r: r)  # read with size + 1
    assert rows == ROWS[:2] and token
    assert paging.page("bookings", 2, token, default=3, maximum=4).after == ROWS[1]
    # A page of at most its size read: the last one, without a token.
    assert first.rows_and_token(ROWS[:2], key=lambda r: r) == (ROWS[:2], "")
    assert first.rows_and_token([], key=lambda r: r) == ([], "")


def test_no_size_is_the_default_and_more_than_the_most_is_the_most():
    assert paging.page("bookings", 0, "", default=3, maximum=4).size == 3
    assert paging.page("bookings", 1000, "", default=3, maximum=4).size == 4
    assert refused_field("bookings", -1, "") == "page_size"


def test_a_token_another_list_gave_or_nobody_did_is_refused():
    _, token = paging.page("bookings", 1, "", default=3, maximum=4).rows_and_token(ROWS[:2], key=lambda r: r)
    assert refused_field("payments", 0, token) == "page_token"
    for bad in ("garbage", token[:-4], "e30", "W10", "bnVsbA", token + "!"):
        assert refused_field("bookings", 0, bad) == "page_token"
    # The page's own token, with its padding or spaces around it, is the same token.
    assert paging.page("bookings", 0, f" {token} ", default=3, maximum=4).after == ROWS[0]


def test_a_token_holds_no_more_than_an_instant_and_an_id():
    _, token = paging.page("payments", 1, "", default=3, maximum=4).rows_and_token(ROWS[:2], key=lambda r: r)
    import base64
    import json

    assert json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))) == {
        "list": "payments", "after": [ROWS[0][0].isoformat(), ROWS[0][1]]}
