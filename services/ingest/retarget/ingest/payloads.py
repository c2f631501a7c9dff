"""The request bodies of Segment's HTTP Tracking API, decoded by msgspec.

Decoding checks types (a wrong type names its field) and nesting depth (limits.MAX_DEPTH);
the rules that depend on the event type (a track needs `event`, an identity is required,
…) live in `events.py`.
A batch's items are kept as raw JSON first, so each one is sized exactly and decoded on
its own: one bad event is rejected by index without losing the others. The batch's own
`context` and `integrations` are kept raw too, so they are sized before being copied into
every event. JSON nested past msgspec's recursion limit, or strings that aren't UTF-8, are
errors naming that, not 500s.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import msgspec

from retarget.ingest.deep_batch import split_batch
from retarget.ingest.errors import InvalidField, InvalidPayload
from retarget.ingest.limits import MAX_DEPTH, check_depth

# Segment's SDKs send ids as strings; hand-written callers often send numbers.
Id = str | int


class IncomingEvent(msgspec.Struct, rename="camel"):
    type: str | None = None
    user_id: Id | None = None
    anonymous_id: Id | None = None
    message_id: str | None = None
    timestamp: datetime | None = None
    sent_at: datetime | None = None
    event: str | None = None
    name: str | None = None
    group_id: Id | None = None
    previous_id: Id | None = None
    properties: dict[str, Any] | None = None
    traits: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    integrations: dict[str, Any] | None = None
    write_key: str | None = None


_NULL = msgspec.Raw(b"null")


class BatchEnvelope(msgspec.Struct, rename="camel"):
    batch: list[msgspec.Raw]
    sent_at: datetime | None = None
    context: msgspec.Raw = _NULL  # decode_object() once its size is checked
    integrations: msgspec.Raw = _NULL
    write_key: str | None = None


_event_decoder = msgspec.json.Decoder(IncomingEvent)
_batch_decoder = msgspec.json.Decoder(BatchEnvelope)
_object_decoder = msgspec.json.Decoder(dict[str, Any] | None)
_PATH = re.compile(r" - at `\$\.?([^`]*)`$")
_MISSING = re.compile(r"missing required field `([^`]+)`")


def decode_event(raw: bytes | msgspec.Raw) -> IncomingEvent:
    try:
        event = _event_decoder.decode(raw)
    except msgspec.DecodeError as exc:
        raise _explain(exc) from None
    except RecursionError:
        raise _too_deep() from None
    except UnicodeDecodeError:
        raise _not_utf8() from None
    if _may_nest_deeper_than(MAX_DEPTH, raw):
        for field in ("properties", "traits", "context", "integrations"):
            check_depth(getattr(event, field), field)
    return event


def _may_nest_deeper_than(limit: int, raw: bytes | msgspec.Raw) -> bool:
    """Depth needs as many brackets: counting them (in C) spares nearly every event the walk."""
    data = raw if isinstance(raw, bytes) else bytes(raw)
    return data.count(b"{") + data.count(b"[") > limit


def decode_batch(raw: bytes) -> BatchEnvelope:
    try:
        return _batch_decoder.decode(raw)
    except msgspec.DecodeError as exc:
        raise _explain(exc) from None
    except RecursionError:
        return _decode_deep_batch(raw)
    except UnicodeDecodeError:
        raise _not_utf8() from None


def _decode_deep_batch(raw: bytes) -> BatchEnvelope:
    """A batch with something nested too deep: its events are still decoded one by one."""
    split = split_batch(raw)
    if split is None:
        raise _too_deep()
    envelope_only, items = split
    try:
        envelope = _batch_decoder.decode(envelope_only)
    except msgspec.DecodeError as exc:
        raise _explain(exc) from None
    except RecursionError:  # the envelope's own context or integrations
        raise _too_deep() from None
    except UnicodeDecodeError:
        raise _not_utf8() from None
    envelope.batch = items
    return envelope


def decode_object(raw: msgspec.Raw, field: str) -> dict[str, Any] | None:
    """A batch envelope's `context` or `integrations`: a JSON object or null, nested at most
    MAX_DEPTH deep."""
    try:
        value = _object_decoder.decode(raw)
    except msgspec.DecodeError:
        raise InvalidField(f"{field} must be a JSON object", field=field) from None
    except RecursionError:
        raise _too_deep() from None
    except UnicodeDecodeError:
        raise _not_utf8() from None
    check_depth(value, field)
    return value


def _too_deep() -> InvalidPayload:
    return InvalidPayload("body is nested too deeply")


def _not_utf8() -> InvalidPayload:
    """msgspec raises UnicodeDecodeError (not a DecodeError) for a string that isn't UTF-8."""
    return InvalidPayload("body is not valid UTF-8 (JSON text must be)")


def _explain(exc: msgspec.DecodeError) -> InvalidPayload | InvalidField:
    """Turn msgspec's message into an error that names the field, in Segment's spelling."""
    text = str(exc)
    if not isinstance(exc, msgspec.ValidationError):
        return InvalidPayload(f"body is not valid JSON: {text}")
    missing = _MISSING.search(text)
    if missing:
        return InvalidField(f"{missing.group(1)} is required", field=missing.group(1))
    match = _PATH.search(text)
    if not match or not match.group(1):
        return InvalidPayload(f"expected a JSON object: {text}")
    field = match.group(1)
    return InvalidField(f"{field}: {text[: match.start()]}", field=field)
