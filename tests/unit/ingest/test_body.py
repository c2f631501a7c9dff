"""Body reading: size limits before and while reading, gzip inflated under the same limit."""

from __future__ import annotations

import gzip
from collections.abc import AsyncIterator

import pytest

from retarget.ingest.body import read_body
from retarget.ingest.errors import InvalidPayload, PayloadTooLarge


async def chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def test_plain_body_within_the_limit_is_returned_whole() -> None:
    assert await read_body({}, chunks(b'{"a":', b"1}"), limit=10, what="event") == b'{"a":1}'


async def test_declared_length_over_the_limit_is_refused_before_reading() -> None:
    with pytest.raises(PayloadTooLarge) as err:
        await read_body({"content-length": "11"}, chunks(), limit=10, what="event")
    assert err.value.limit == 10 and err.value.status == 413 and "event" in err.value.message


async def test_streamed_body_is_cut_at_the_limit() -> None:
    with pytest.raises(PayloadTooLarge):
        await read_body({}, chunks(b"x" * 6, b"x" * 6), limit=10, what="batch")


async def test_gzip_is_inflated() -> None:
    data = b'{"batch":[]}'
    body = await read_body({"content-encoding": "gzip"}, chunks(gzip.compress(data)), limit=100, what="batch")
    assert body == data


async def test_gzip_bomb_is_refused_without_inflating_it() -> None:
    bomb = gzip.compress(b" " * 10_000_000)
    assert len(bomb) < 20_000
    with pytest.raises(PayloadTooLarge):
        await read_body({"content-encoding": "gzip"}, chunks(bomb), limit=512_000, what="batch")


# mtime=0: the header's time is in the test id, and xdist's workers must collect the same ids
@pytest.mark.parametrize("bad", [b"not gzip at all", gzip.compress(b'{"a": 1}', mtime=0)[:-6]])
async def test_bad_or_truncated_gzip_is_a_400(bad: bytes) -> None:
    with pytest.raises(InvalidPayload) as err:
        await read_body({"content-encoding": "gzip"}, chunks(bad), limit=100, what="event")
    assert err.value.status == 400


async def test_unknown_encoding_is_a_400() -> None:
    with pytest.raises(InvalidPayload):
        await read_body({"content-encoding": "br"}, chunks(b"x"), limit=100, what="event")


async def test_every_gzip_member_is_inflated_and_trailing_garbage_is_a_400() -> None:
    # only the first member was read: the rest of the body, or garbage after it, was dropped
    members = gzip.compress(b'{"batch":') + gzip.compress(b"[]}")
    body = await read_body({"content-encoding": "gzip"}, chunks(members), limit=100, what="batch")
    assert body == b'{"batch":[]}'
    with pytest.raises(InvalidPayload):
        await read_body(
            {"content-encoding": "gzip"}, chunks(gzip.compress(b"{}") + b"garbage"), limit=100, what="event"
        )
    with pytest.raises(PayloadTooLarge):  # one limit for all the members
        await read_body(
            {"content-encoding": "gzip"}, chunks(gzip.compress(b" " * 60) * 2), limit=100, what="event"
        )
