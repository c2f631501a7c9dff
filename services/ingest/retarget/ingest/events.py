"""From a decoded request to the TrackedEvent that goes on the events topic (pure rules).

Segment's rules: every event needs a userId or an anonymousId; a track needs `event`, a
group `groupId`, an alias `previousId`; `messageId` is under 100 characters and generated
when absent. Client clocks are wrong, so when the client says when it sent the event the
timestamp is corrected for its skew: timestamp = receivedAt − (sentAt − timestamp).
Whatever the type, identifiers and times are bounded at the door (limits.py; nesting is
checked while decoding, payloads.py).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, get_args

from retarget.common.schemas import EventType, TrackedEvent
from retarget.ingest.errors import InvalidField
from retarget.ingest.limits import check_corrected_time, checked_client_time, checked_text
from retarget.ingest.payloads import Id, IncomingEvent

EVENT_TYPES: frozenset[str] = frozenset(get_args(EventType))
MAX_MESSAGE_ID_CHARS = 99  # Segment: "messageId must be under 100 characters"


@dataclass(frozen=True)
class BatchDefaults:
    """What a batch envelope gives every event in it (an event's own values win)."""

    sent_at: datetime | None = None
    context: dict[str, Any] | None = None
    integrations: dict[str, Any] | None = None


NO_DEFAULTS = BatchDefaults()


def build_event(
    incoming: IncomingEvent,
    *,
    workspace_id: str,
    received_at: datetime,
    event_type: str | None = None,
    defaults: BatchDefaults = NO_DEFAULTS,
) -> TrackedEvent:
    """Validate one event and stamp it. `event_type` is the route's; a batch item names its own."""
    kind = event_type or incoming.type
    if kind not in EVENT_TYPES:
        raise InvalidField(f"type must be one of {', '.join(sorted(EVENT_TYPES))}", field="type")
    user_id, anonymous_id = _id(incoming.user_id, "userId"), _id(incoming.anonymous_id, "anonymousId")
    if not user_id and not anonymous_id:
        raise InvalidField("an event needs a userId or an anonymousId", field="userId")
    _require_type_fields(kind, incoming)

    sent_at = checked_client_time(incoming.sent_at or defaults.sent_at, "sentAt", received_at)
    original = checked_client_time(incoming.timestamp, "timestamp", received_at)
    timestamp = corrected_timestamp(original, sent_at, received_at)
    check_corrected_time(timestamp, received_at)
    return TrackedEvent(
        workspace_id=workspace_id,
        type=kind,  # type: ignore[arg-type]  # checked against EVENT_TYPES above
        message_id=_message_id(incoming.message_id),
        timestamp=timestamp,
        received_at=received_at,
        user_id=user_id,
        anonymous_id=anonymous_id,
        event=_text(incoming.event, "event"),
        name=_text(incoming.name, "name"),
        properties=incoming.properties or {},
        traits=_traits(kind, incoming),
        context=_merged(defaults.context, incoming.context),
        integrations=_merged(defaults.integrations, incoming.integrations),
        previous_id=_id(incoming.previous_id, "previousId"),
        group_id=_id(incoming.group_id, "groupId"),
        sent_at=sent_at,
        original_timestamp=original,
    )


def corrected_timestamp(
    timestamp: datetime | None, sent_at: datetime | None, received_at: datetime
) -> datetime:
    """When the event happened, on the server's clock."""
    if timestamp is None:
        return received_at
    if sent_at is None:
        return timestamp
    return received_at - (sent_at - timestamp)


def _require_type_fields(kind: str, incoming: IncomingEvent) -> None:
    if kind == "track" and not incoming.event:
        raise InvalidField("a track event needs `event` (its name)", field="event")
    if kind == "group" and not _id(incoming.group_id, "groupId"):
        raise InvalidField("a group event needs `groupId`", field="groupId")
    if kind == "alias" and not _id(incoming.previous_id, "previousId"):
        raise InvalidField("an alias event needs `previousId`", field="previousId")


def _traits(kind: str, incoming: IncomingEvent) -> dict[str, Any]:
    """RudderStack's SDKs send identify traits as context.traits; Segment's as traits."""
    if incoming.traits or kind != "identify" or not incoming.context:
        return incoming.traits or {}
    in_context = incoming.context.get("traits")
    return in_context if isinstance(in_context, dict) else {}


def _message_id(given: str | None) -> str:
    if not given:
        return str(uuid.uuid4())
    if len(given) > MAX_MESSAGE_ID_CHARS:
        raise InvalidField("messageId must be under 100 characters", field="messageId", limit=99)
    return checked_text(given, "messageId")


def _id(value: Id | None, field: str) -> str | None:
    if value is None or isinstance(value, bool):
        return None
    return _text(str(value), field)


def _text(value: str | None, field: str) -> str | None:
    return checked_text(value, field) if value else None


def _merged(batch_level: dict[str, Any] | None, own: dict[str, Any] | None) -> dict[str, Any]:
    if not batch_level:
        return own or {}
    return {**batch_level, **(own or {})}
