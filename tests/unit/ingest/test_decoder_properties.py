"""Property tests of the door (hypothesis): whatever JSON or bytes arrive, decoding and
validation end in an accepted event or a typed IngestError that becomes a 4xx, never in
another exception (which the app would turn into a 500). Accepted events keep the
door's promises: safe ids, bounded times, bounded nesting.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import msgspec
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from retarget.common.schemas import TrackedEvent
from retarget.ingest.errors import IngestError
from retarget.ingest.events import BatchDefaults, build_event
from retarget.ingest.limits import EARLIEST, EVENT_AHEAD, MAX_DEPTH, check_depth, checked_text
from retarget.ingest.payloads import decode_batch, decode_event, decode_object

RECEIVED = datetime(2026, 1, 5, 12, 0, 0, tzinfo=UTC)
TYPES = ["track", "identify", "page", "screen", "group", "alias"]

scalars = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text()
)
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner), max_leaves=20
)
offsets = st.integers(-14 * 60, 14 * 60).map(lambda minutes: timezone(timedelta(minutes=minutes)))
times = st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=offsets).map(
    datetime.isoformat
) | st.sampled_from(["9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z", "2026-01-05T12:00:00"])
ids = st.text() | st.integers() | st.sampled_from(["a\x00b", "x" * 300, "\u202e", "é" * 200]) | json_values
nested = st.dictionaries(st.text(max_size=5), json_values, max_size=4)
deep = st.integers(1, 80).map(lambda depth: json.loads('{"a":' * depth + "1" + "}" * depth))

events = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(TYPES) | json_values,
        "userId": ids,
        "anonymousId": ids,
        "messageId": ids,
        "timestamp": times | json_values,
        "sentAt": times | json_values,
        "event": ids,
        "name": ids,
        "groupId": ids,
        "previousId": ids,
        "properties": nested | deep | json_values,
        "traits": nested | deep,
        "context": nested | deep,
        "integrations": nested,
    },
)


def accept(
    raw: bytes | Any, event_type: str | None, defaults: BatchDefaults = BatchDefaults()
) -> TrackedEvent | None:
    """The event, or None when refused with a 4xx; any other exception fails the test."""
    try:
        return build_event(
            decode_event(raw),
            workspace_id="ws",
            received_at=RECEIVED,
            event_type=event_type,
            defaults=defaults,
        )
    except IngestError as exc:
        assert 400 <= exc.status < 500 and exc.message
        return None


def keeps_the_doors_promises(event: TrackedEvent) -> None:
    for field in ("user_id", "anonymous_id", "message_id", "event", "name", "group_id", "previous_id"):
        value = getattr(event, field)
        if value is not None:
            checked_text(value, field)
    assert EARLIEST <= event.timestamp <= RECEIVED + EVENT_AHEAD
    for field in ("properties", "traits", "context", "integrations"):
        check_depth(getattr(event, field), field, limit=MAX_DEPTH)
    json.loads(msgspec.json.encode(event))  # and it encodes to JSON for the topic


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(event=events, route=st.sampled_from([*TYPES, None]))
@example(  # the attack's pair: the skew correction's arithmetic overflowed
    event={
        "userId": "u",
        "event": "e",
        "timestamp": "9999-12-31T23:59:59Z",
        "sentAt": "0001-01-01T00:00:00Z",
    },
    route="track",
)
def test_any_event_json_is_accepted_safely_or_refused_with_a_4xx(event: dict, route: str | None) -> None:
    accepted = accept(json.dumps(event).encode(), route)
    if accepted is not None:
        keeps_the_doors_promises(accepted)


@settings(max_examples=200, deadline=None)
@given(
    raw=st.binary(max_size=200)
    | json_values.map(lambda v: json.dumps(v).encode())
    | st.binary(max_size=20).map(  # any bytes inside a string: not always UTF-8
        lambda junk: b'{"userId":"' + junk.replace(b'"', b"").replace(b"\\", b"") + b'","event":"e"}'
    )
)
def test_any_bytes_are_a_typed_refusal_or_an_event(raw: bytes) -> None:
    accepted = accept(raw, "track")
    if accepted is not None:
        keeps_the_doors_promises(accepted)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    items=st.lists(events | json_values, max_size=5),
    sent_at=st.none() | times,
    context=st.none() | nested | deep | json_values,
    depth=st.sampled_from([0, 0, 3000]),
)
def test_any_batch_decodes_each_item_on_its_own_or_is_refused_whole_with_a_4xx(
    items: list, sent_at: str | None, context: Any, depth: int
) -> None:
    body = json.dumps({"batch": items, "sentAt": sent_at, "context": context}).encode()
    if depth:  # an extra item nested past the decoder's recursion limit
        too_deep = b"[" * depth + b"]" * depth + (b", " if items else b"")
        body = body.replace(b'"batch": [', b'"batch": [' + too_deep, 1)
    try:
        envelope = decode_batch(body)
        defaults = BatchDefaults(envelope.sent_at, decode_object(envelope.context, "context"), None)
    except IngestError as exc:
        assert 400 <= exc.status < 500
        return
    assert len(envelope.batch) == len(items) + (1 if depth else 0)
    for raw in envelope.batch:
        accepted = accept(raw, None, defaults)
        if accepted is not None:
            keeps_the_doors_promises(accepted)
