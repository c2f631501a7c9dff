"""The door's own limits, on single events: identifiers, nesting, times (pure rules)."""

from __future__ import annotations

import json
import sys
import unicodedata
from datetime import UTC, datetime, timedelta

import pytest

from retarget.ingest.errors import IngestError, InvalidField
from retarget.ingest.events import BatchDefaults, build_event
from retarget.ingest.limits import _UNSAFE, MAX_DEPTH, MAX_ID_BYTES, check_depth, checked_text
from retarget.ingest.payloads import decode_event

RECEIVED = datetime(2026, 1, 5, 12, 0, 0, tzinfo=UTC)


def build(event: dict, event_type: str | None = "track", **kwargs: object) -> object:
    return build_event(
        decode_event(json.dumps(event).encode()),
        workspace_id="ws1",
        received_at=RECEIVED,
        event_type=event_type,
        **kwargs,  # type: ignore[arg-type]
    )


def refused_field(event: dict, event_type: str | None = "track", **kwargs: object) -> str | None:
    with pytest.raises(InvalidField) as err:
        build(event, event_type, **kwargs)
    return err.value.field


BASE = {"anonymousId": "a1", "event": "Viewed"}


@pytest.mark.parametrize(
    ("event_type", "field", "extra"),
    [
        ("track", "anonymousId", {}),
        ("track", "userId", {}),
        ("track", "messageId", {}),
        ("track", "event", {}),
        ("page", "name", {}),
        ("group", "groupId", {}),
        ("alias", "previousId", {}),
    ],
)
@pytest.mark.parametrize("bad", ["a\x00b", "line\nbreak", "del\x7f", "bidi\u202eevil", "zero\u200bwidth"])
def test_identifiers_with_control_or_invisible_characters_are_refused_naming_the_field(
    event_type: str, field: str, extra: dict, bad: str
) -> None:
    assert refused_field(BASE | extra | {field: bad}, event_type) == field


@pytest.mark.parametrize(
    "hidden",
    ["\u061c", "\xad", "\u180e", "\ufff9", "\U000e0001", "\U000e0041", "\U0001d173", "\u0600"],
)
def test_every_invisible_format_character_is_refused(hidden: str) -> None:
    # these passed: a bidi mark (U+061C), the soft hyphen, tag characters spelling hidden ASCII…
    assert refused_field(BASE | {"userId": f"user{hidden}1"}) == "userId"


def test_the_unsafe_set_covers_every_control_format_and_separator_character() -> None:
    unsafe = {"Cc", "Cf", "Cs", "Zl", "Zp"}
    missed = [
        f"U+{code:04X}"
        for code in range(sys.maxunicode + 1)
        if unicodedata.category(chr(code)) in unsafe and not _UNSAFE.match(chr(code))
    ]
    assert missed == []


@pytest.mark.parametrize("field", ["anonymousId", "userId", "event", "groupId", "previousId", "name"])
def test_identifiers_over_256_bytes_are_refused_with_the_limit(field: str) -> None:
    event_type = {"groupId": "group", "previousId": "alias", "name": "page"}.get(field, "track")
    with pytest.raises(InvalidField) as err:
        build(BASE | {field: "x" * 10_000}, event_type)
    assert (err.value.field, err.value.limit) == (field, MAX_ID_BYTES)
    # counted in UTF-8 bytes: 129 two-byte characters are 258 bytes
    assert refused_field(BASE | {field: "é" * 129}, event_type) == field
    assert build(BASE | {field: "é" * 128}, event_type)


def test_ordinary_ids_spaces_and_unicode_pass_and_numbers_become_strings() -> None:
    event = build({"userId": 42, "anonymousId": "Zoë 🙂 ✓", "event": "Order Completed — Ünïcode"})
    assert (event.user_id, event.anonymous_id) == ("42", "Zoë 🙂 ✓")  # type: ignore[attr-defined]
    assert checked_text("x" * MAX_ID_BYTES, "userId")


@pytest.mark.parametrize("field", ["properties", "traits", "context", "integrations"])
def test_nesting_past_32_levels_is_refused_naming_the_field(field: str) -> None:
    def nested(depth: int) -> dict:
        value: dict = {}
        for _ in range(depth - 1):
            value = {"a": value}
        return value

    assert build(BASE | {field: nested(MAX_DEPTH)}, "identify")
    with pytest.raises(InvalidField) as err:
        build(BASE | {field: nested(MAX_DEPTH + 1)}, "identify")
    assert (err.value.field, err.value.limit) == (field, MAX_DEPTH)


def test_lists_count_as_levels_and_depth_checking_never_recurses() -> None:
    deep: list = []
    for _ in range(100_000):  # far past the interpreter's recursion limit
        deep = [deep]
    with pytest.raises(InvalidField):
        check_depth({"a": deep}, "properties")


def test_json_nested_past_the_decoders_limit_is_a_typed_error_not_a_recursion_error() -> None:
    raw = b'{"userId":"u","event":"e","properties":{"a":' + b"[" * 5000 + b"]" * 5000 + b"}}"
    with pytest.raises(IngestError) as err:
        decode_event(raw)
    assert "nested" in err.value.message


@pytest.mark.parametrize(
    ("times", "field"),
    [
        ({"timestamp": "9999-12-31T23:59:59Z", "sentAt": "0001-01-01T00:00:00Z"}, "sentAt"),
        ({"timestamp": "9999-12-31T23:00:00-05:00"}, "timestamp"),
        ({"timestamp": "0001-01-01T00:00:00+14:00"}, "timestamp"),
        ({"timestamp": "1999-12-31T23:59:59Z"}, "timestamp"),
        ({"timestamp": "2000-01-01T05:00:00+14:00"}, "timestamp"),  # 1999 in UTC
        ({"timestamp": "2026-01-05T12:00:00Z", "sentAt": "2028-01-01T00:00:00Z"}, "sentAt"),
        # no sentAt: the client's timestamp stands, and it may not be more than a day ahead
        ({"timestamp": "2026-01-07T12:00:00Z"}, "timestamp"),
        # happened a week after it was sent
        ({"timestamp": "2026-01-12T12:00:00Z", "sentAt": "2026-01-05T12:00:00Z"}, "timestamp"),
        # the correction would put it before 2000
        ({"timestamp": "2000-01-01T00:00:00Z", "sentAt": "2026-12-31T00:00:00Z"}, "timestamp"),
    ],
)
def test_times_outside_2000_to_now_are_refused_naming_the_field_and_never_overflow(
    times: dict, field: str
) -> None:
    assert refused_field(BASE | times) == field


def test_a_batch_sent_at_out_of_range_is_named_sent_at() -> None:
    defaults = BatchDefaults(sent_at=datetime(1, 1, 1, tzinfo=UTC))
    assert refused_field(BASE | {"timestamp": "2026-01-05T11:00:00Z"}, defaults=defaults) == "sentAt"


def test_a_client_clock_days_ahead_is_still_corrected_by_sent_at() -> None:
    ahead = RECEIVED + timedelta(days=30)
    event = build(
        BASE | {"timestamp": (ahead - timedelta(minutes=5)).isoformat(), "sentAt": ahead.isoformat()}
    )
    assert event.timestamp == RECEIVED - timedelta(minutes=5)  # type: ignore[attr-defined]
