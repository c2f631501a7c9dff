"""What the door refuses whatever the event type: unsafe identifiers, deep nesting, times
that are no clock's (pure rules; each failure is an InvalidField naming the field).

Identifiers end up in Kafka keys, PostgreSQL rows, logs and email headers downstream, where
a NUL byte or a 10 KB id stalls or breaks a stage; so they are bounded here, where the
client can still be told. Times: a client clock may be wrong by hours or days (the sentAt
correction handles that) but not by centuries, and the correction's arithmetic must never
overflow, so raw times are bounded before any arithmetic and the corrected one after.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from retarget.ingest.errors import InvalidField

MAX_ID_BYTES = 256
MAX_DEPTH = 32
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
CLIENT_CLOCK_AHEAD = timedelta(days=366)  # raw timestamp/sentAt: a wrong clock, not garbage
EVENT_AHEAD = timedelta(days=1)  # the corrected timestamp: an event can't happen after it arrives

# Every character of Unicode's categories Cc (C0/C1 controls: NUL, newlines, DEL…), Cs (lone
# surrogates), Zl/Zp (line and paragraph separators) and Cf, the invisible format characters
# that reorder or hide text: bidi marks and overrides (U+061C, U+200E, U+202E, U+2066…), the
# soft hyphen, zero widths, BOM, invisible operators, and the tag characters (U+E0000 block)
# that spell hidden ASCII. Written out, as generating it costs half a second at import; the
# unit test holds it to the running Python's unicodedata.
_UNSAFE = re.compile(
    "[\x00-\x1f\x7f-\x9f\xad\u0600-\u0605\u061c\u06dd\u070f\u0890-\u0891\u08e2\u180e"
    "\u200b-\u200f\u2028-\u202e\u2060-\u206f\ud800-\udfff\ufeff\ufff9-\ufffb"
    "\U000110bd\U000110cd\U00013430-\U0001343f\U0001bca0-\U0001bca3\U0001d173-\U0001d17a"
    "\U000e0000-\U000e007f]"
)


def checked_text(value: str, field: str, *, max_bytes: int = MAX_ID_BYTES) -> str:
    """An identifier or name as given, when it is printable and at most max_bytes of UTF-8."""
    if value.isascii() and value.isprintable():  # nearly every id: two C calls, no regex
        size = len(value)
    else:
        unsafe = _UNSAFE.search(value)
        if unsafe:
            raise InvalidField(
                f"{field} contains a control or invisible character (U+{ord(unsafe.group()):04X})",
                field=field,
            )
        size = len(value.encode())
    if size > max_bytes:
        raise InvalidField(f"{field} is longer than {max_bytes} bytes", field=field, limit=max_bytes)
    return value


def check_depth(value: dict[str, Any] | None, field: str, *, limit: int = MAX_DEPTH) -> None:
    """Objects and arrays nested at most `limit` deep (the field's own object is level 1).

    Level by level, so a hostile depth costs a loop, not the interpreter's stack; on the hot
    path, so only containers are visited and leaves are skipped in bulk."""
    level: list[Any] = [value] if value else []
    depth = 1
    while level:
        if depth > limit:
            raise InvalidField(f"{field} is nested deeper than {limit} levels", field=field, limit=limit)
        deeper: list[Any] = []
        for node in level:
            deeper.extend(
                child for child in (node.values() if type(node) is dict else node) if type(child) in _NESTING
            )
        level, depth = deeper, depth + 1


_NESTING = (dict, list)


def checked_client_time(value: datetime | None, field: str, received_at: datetime) -> datetime | None:
    """A client's time in UTC (naive = UTC), refused unless between 2000 and a year ahead."""
    if value is None:
        return None
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    # Comparing never overflows (shifting year 9999 by its offset would); after this check
    # the skew correction's arithmetic stays within a few decades of now.
    if not EARLIEST <= aware <= received_at + CLIENT_CLOCK_AHEAD:
        raise InvalidField(_time_range_message(field), field=field)
    return aware


def check_corrected_time(timestamp: datetime, received_at: datetime) -> None:
    """The event's time on the server's clock: after 2000, at most a day after it arrived."""
    if not EARLIEST <= timestamp <= received_at + EVENT_AHEAD:
        raise InvalidField(
            "timestamp must fall between 2000-01-01 and one day after the event is received "
            "(after correcting the client's clock by sentAt)",
            field="timestamp",
        )


def _time_range_message(field: str) -> str:
    return f"{field} must be an RFC 3339 time between 2000-01-01 and a year from now"
