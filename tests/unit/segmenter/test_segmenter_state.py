"""The `due` table's values keep their format (isoformat) however they are written: a value
written differently would never equal the stored one, so every unchanged wait would be
rewritten and pushed on the timer's heap again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import msgspec
import pytest

from retarget.segmenter.state import Pending, encode_due, pending_decoder

BASE = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
UTC_TIMES = [
    BASE,  # no fraction: isoformat writes none
    BASE.replace(microsecond=5),
    BASE.replace(microsecond=123_456),
    BASE + timedelta(days=3650, hours=23, minutes=59, seconds=59, microseconds=999_999),
    datetime(1, 1, 1, tzinfo=UTC),
    datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC),
]
OTHER_OFFSETS = [
    timezone(timedelta(hours=2)),
    timezone(timedelta(hours=-5, minutes=-30)),
    timezone(timedelta(seconds=3725)),  # seconds in the offset: msgspec would drop them
    timezone(timedelta(0)),  # zero, but not the UTC singleton
]


@pytest.mark.parametrize("when", UTC_TIMES + [BASE.astimezone(tz) for tz in OTHER_OFFSETS])
def test_a_due_value_is_isoformat(when):
    assert encode_due(when) == when.isoformat().encode()
    assert datetime.fromisoformat(encode_due(when).decode()) == when


def test_due_times_as_profiles_decode_them_are_utc_so_take_the_fast_way():
    """msgspec decodes `Z` and `+00:00` to the UTC singleton that encode_due checks for."""
    for text in ("2026-03-01T10:00:00.5Z", "2026-03-01T10:00:00+00:00"):
        raw = msgspec.json.encode({
            "campaign": "c", "due_at": text, "entry_message_id": "m", "entry_at": text, "started_at": text,
        })  # fmt: skip
        pending: Pending = pending_decoder.decode(raw)
        assert pending.due_at.tzinfo is UTC
        assert encode_due(pending.due_at) == pending.due_at.isoformat().encode()
