"""Validation and stamping of single events: Segment's rules, skew correction, ids."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from retarget.ingest.errors import InvalidField
from retarget.ingest.events import BatchDefaults, build_event, corrected_timestamp
from retarget.ingest.payloads import IncomingEvent, decode_event

RECEIVED = datetime(2026, 1, 5, 12, 0, 0, tzinfo=UTC)


def build(raw: bytes, event_type: str | None = "track", **kwargs: object) -> object:
    return build_event(
        decode_event(raw), workspace_id="ws1", received_at=RECEIVED, event_type=event_type, **kwargs
    )


def test_skew_correction_moves_the_timestamp_by_the_client_clock_error() -> None:
    # the client's clock is 1 hour fast: it says it sent at 13:00 an event that happened at 12:59
    timestamp = datetime(2026, 1, 5, 12, 59, tzinfo=UTC)
    sent_at = datetime(2026, 1, 5, 13, 0, tzinfo=UTC)
    assert corrected_timestamp(timestamp, sent_at, RECEIVED) == RECEIVED - timedelta(minutes=1)


def test_without_sent_at_the_client_timestamp_stands_and_without_timestamp_received_at_does() -> None:
    timestamp = datetime(2026, 1, 1, tzinfo=UTC)
    assert corrected_timestamp(timestamp, None, RECEIVED) == timestamp
    assert corrected_timestamp(None, timestamp, RECEIVED) == RECEIVED


def test_track_event_keeps_segment_fields_and_stamps_times() -> None:
    event = build_event(
        decode_event(
            b'{"userId":"u1","event":"Product Viewed","properties":{"sku":"A"},'
            b'"timestamp":"2026-01-05T12:59:00Z","sentAt":"2026-01-05T13:00:00Z","messageId":"m-1",'
            b'"context":{"ip":"1.2.3.4"},"integrations":{"All":true},"channel":"server"}'
        ),
        workspace_id="ws1",
        received_at=RECEIVED,
        event_type="track",
    )
    assert event.type == "track"
    assert (event.workspace_id, event.user_id, event.anonymous_id) == ("ws1", "u1", None)
    assert (event.event, event.message_id, event.properties) == ("Product Viewed", "m-1", {"sku": "A"})
    assert event.timestamp == RECEIVED - timedelta(minutes=1)
    assert event.original_timestamp == datetime(2026, 1, 5, 12, 59, tzinfo=UTC)
    assert event.sent_at == datetime(2026, 1, 5, 13, 0, tzinfo=UTC)
    assert event.received_at == RECEIVED
    assert event.context == {"ip": "1.2.3.4"} and event.integrations == {"All": True}


def test_message_id_is_generated_when_absent_and_must_be_under_100_chars() -> None:
    first = build(b'{"anonymousId":"a1","event":"x"}')
    second = build(b'{"anonymousId":"a1","event":"x"}')
    assert first.message_id and first.message_id != second.message_id  # type: ignore[attr-defined]
    assert build(b'{"anonymousId":"a1","event":"x","messageId":"%s"}' % (b"m" * 99))
    with pytest.raises(InvalidField) as err:
        build(b'{"anonymousId":"a1","event":"x","messageId":"%s"}' % (b"m" * 100))
    assert err.value.field == "messageId"


@pytest.mark.parametrize(
    ("event_type", "raw", "field"),
    [
        ("track", b'{"event":"x"}', "userId"),
        ("track", b'{"userId":"","anonymousId":null,"event":"x"}', "userId"),
        ("track", b'{"userId":"u"}', "event"),
        ("group", b'{"userId":"u"}', "groupId"),
        ("alias", b'{"userId":"u"}', "previousId"),
        (None, b'{"userId":"u","type":"purchase"}', "type"),
        (None, b'{"userId":"u"}', "type"),
    ],
)
def test_missing_required_fields_are_named(event_type: str | None, raw: bytes, field: str) -> None:
    with pytest.raises(InvalidField) as err:
        build(raw, event_type)
    assert err.value.field == field


def test_numeric_ids_become_strings_and_naive_times_are_utc() -> None:
    event = build(b'{"userId":42,"groupId":7,"timestamp":"2026-01-05T10:00:00"}', "group")
    assert event.user_id == "42" and event.group_id == "7"  # type: ignore[attr-defined]
    assert event.timestamp == datetime(2026, 1, 5, 10, 0, tzinfo=UTC)  # type: ignore[attr-defined]


def test_batch_context_and_sent_at_apply_unless_the_event_has_its_own() -> None:
    defaults = BatchDefaults(
        sent_at=datetime(2026, 1, 5, 13, 0, tzinfo=UTC),
        context={"library": {"name": "sdk"}, "ip": "batch"},
        integrations={"All": False},
    )
    incoming = IncomingEvent(
        type="page",
        anonymous_id="a",
        timestamp=datetime(2026, 1, 5, 12, 0, tzinfo=UTC),
        context={"ip": "own"},
    )
    event = build_event(incoming, workspace_id="w", received_at=RECEIVED, defaults=defaults)
    assert event.context == {"library": {"name": "sdk"}, "ip": "own"}
    assert event.integrations == {"All": False}
    assert event.timestamp == RECEIVED - timedelta(hours=1)
    assert event.sent_at == defaults.sent_at


def test_identify_traits_sent_in_context_like_rudderstack_does_are_the_traits() -> None:
    event = build(b'{"userId":"u","context":{"traits":{"plan":"pro"}}}', "identify")
    assert event.traits == {"plan": "pro"}  # type: ignore[attr-defined]
    assert event.context == {"traits": {"plan": "pro"}}  # type: ignore[attr-defined]
    own = build(b'{"userId":"u","traits":{"plan":"own"},"context":{"traits":{"plan":"pro"}}}', "identify")
    assert own.traits == {"plan": "own"}  # type: ignore[attr-defined]
