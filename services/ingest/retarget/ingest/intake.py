"""The use case behind every /v1 route: authenticate, validate, rate-limit, publish.

Routes hand it the decoded body bytes, the Authorization header and, for a request from a
web page, its origin (which the key's workspace must allow: cors.py); it answers with what
was accepted or raises an IngestError the app turns into a 4xx/5xx. It knows no HTTP.

Sizes are checked on what would be published, not only on what arrived: a batch's
`context`/`integrations` are copied into every event, so a small request could otherwise
publish hundreds of megabytes. Each event as published must fit max_event_bytes (plus what
ingest itself stamps on it), and the envelope's copies together must fit a few batches.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from retarget.common.clock import Clock
from retarget.common.schemas import TrackedEvent, encode
from retarget.common.topics import visitor_key
from retarget.ingest import metrics
from retarget.ingest.auth import CachedKeyResolver, write_key_from
from retarget.ingest.cors import Cors
from retarget.ingest.errors import IngestError, InvalidField, PayloadTooLarge, TooManyEvents
from retarget.ingest.events import EVENT_TYPES, BatchDefaults, build_event
from retarget.ingest.payloads import BatchEnvelope, decode_batch, decode_event, decode_object
from retarget.ingest.publisher import EventPublisher
from retarget.ingest.ratelimit import RateLimiter

log = logging.getLogger(__name__)

STAMP_ALLOWANCE_BYTES = 1024  # what ingest adds to an event: workspace, receivedAt, a messageId, times
ENVELOPE_COPIES_FACTOR = 4  # a batch's context × its events may add at most 4 × max_batch_bytes

Record = tuple[bytes, bytes]


@dataclass(frozen=True)
class Rejection:
    index: int
    code: str
    message: str
    field: str | None = None
    limit: int | None = None

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"index": self.index, "code": self.code, "message": self.message}
        if self.field is not None:
            out["field"] = self.field
        if self.limit is not None:
            out["limit"] = self.limit
        return out


@dataclass
class BatchResult:
    accepted: int
    rejected: list[Rejection] = field(default_factory=list)


class NoValidEvents(IngestError):
    code = "no_valid_events"

    def __init__(self, rejected: list[Rejection]) -> None:
        super().__init__("no event in the batch is valid; see `rejected`")
        self.rejected = rejected

    def body(self) -> dict[str, Any]:
        return super().body() | {"rejected": [r.as_json() for r in self.rejected]}


class Intake:
    def __init__(
        self,
        *,
        keys: CachedKeyResolver,
        limiter: RateLimiter,
        publisher: EventPublisher,
        topic: str,
        clock: Clock,
        max_event_bytes: int,
        max_batch_events: int,
        max_batch_bytes: int,
        cors: Cors,
    ) -> None:
        self._keys = keys
        self._cors = cors
        self._limiter = limiter
        self._publisher = publisher
        self._topic = topic
        self._clock = clock
        self._max_event_bytes = max_event_bytes
        self._max_batch_events = max_batch_events
        self._max_batch_bytes = max_batch_bytes

    async def accept_one(
        self, event_type: str, body: bytes, authorization: str | None, origin: str | None = None
    ) -> None:
        try:
            incoming = decode_event(body)
        except IngestError as exc:
            metrics.count_rejected(event_type, exc.code)
            raise
        workspace_id, key_hash = await self._sender(authorization, incoming.write_key, origin)
        try:
            event = build_event(
                incoming, workspace_id=workspace_id, received_at=self._clock.now(), event_type=event_type
            )
            record = self._record(event)
        except IngestError as exc:
            metrics.count_rejected(event_type, exc.code)
            raise
        await self._publish(key_hash, [event], [record])

    async def accept_batch(
        self, body: bytes, authorization: str | None, origin: str | None = None
    ) -> BatchResult:
        envelope = decode_batch(body)
        workspace_id, key_hash = await self._sender(authorization, envelope.write_key, origin)
        if len(envelope.batch) > self._max_batch_events:
            raise TooManyEvents(
                f"a batch holds at most {self._max_batch_events} events", limit=self._max_batch_events
            )
        if not envelope.batch:
            raise InvalidField("batch is empty", field="batch")
        received_at = self._clock.now()
        defaults = self._batch_defaults(envelope)
        events: list[TrackedEvent] = []
        records: list[Record] = []
        rejected: list[Rejection] = []
        for index, raw in enumerate(envelope.batch):
            event_type: str | None = None
            try:
                if len(raw) > self._max_event_bytes:
                    limit = self._max_event_bytes
                    raise PayloadTooLarge(f"event is larger than {limit} bytes", limit=limit)
                incoming = decode_event(raw)
                event_type = incoming.type if incoming.type in EVENT_TYPES else None
                event = build_event(
                    incoming, workspace_id=workspace_id, received_at=received_at, defaults=defaults
                )
                records.append(self._record(event))
                events.append(event)
            except IngestError as exc:
                rejected.append(Rejection(index, exc.code, exc.message, exc.field, exc.limit))
                metrics.count_rejected(event_type, exc.code)
        if rejected:
            log.info(
                "batch events rejected",
                extra={
                    "workspace_id": workspace_id,
                    "rejected": len(rejected),
                    "accepted": len(events),
                    "codes": sorted({r.code for r in rejected}),
                },
            )
        if not events:
            raise NoValidEvents(rejected)
        await self._publish(key_hash, events, records)
        return BatchResult(len(events), rejected)

    async def _sender(
        self, authorization: str | None, body_key: str | None, origin: str | None
    ) -> tuple[str, bytes]:
        """(workspace, key hash) of the write key; from a page, its origin must be the workspace's."""
        workspace_id, key_hash = await self._keys.workspace_for(write_key_from(authorization, body_key))
        if origin is not None:
            await self._cors.check(workspace_id, origin)
        return workspace_id, key_hash

    def _batch_defaults(self, envelope: BatchEnvelope) -> BatchDefaults:
        """The envelope's context and integrations, refused whole when their copies are too big."""
        copied = len(envelope.context) + len(envelope.integrations)
        budget = ENVELOPE_COPIES_FACTOR * self._max_batch_bytes
        if copied * len(envelope.batch) > budget:
            raise PayloadTooLarge(
                f"the batch's context and integrations ({copied} bytes) are copied into each of its "
                f"{len(envelope.batch)} events, over {budget} bytes in all: put them in the events "
                "or send smaller batches",
                field="context",
                limit=budget,
            )
        context = decode_object(envelope.context, "context")
        integrations = decode_object(envelope.integrations, "integrations")
        return BatchDefaults(envelope.sent_at, context, integrations)

    def _record(self, event: TrackedEvent) -> Record:
        """The event as published; refused when, with the envelope's context merged in, too big."""
        value = encode(event)
        limit = self._max_event_bytes
        if len(value) > limit + STAMP_ALLOWANCE_BYTES:
            raise PayloadTooLarge(
                f"event is larger than {limit} bytes (with the batch's context, if any, merged in)",
                limit=limit,
            )
        return visitor_key(event.workspace_id, event.user_id, event.anonymous_id), value

    async def _publish(self, key_hash: bytes, events: list[TrackedEvent], records: list[Record]) -> None:
        try:
            self._limiter.check(key_hash, len(events))
            await self._publisher.publish(self._topic, records)  # its crash points are around the send
        except IngestError as exc:
            for event_type, count in Counter(e.type for e in events).items():
                metrics.count_rejected(event_type, exc.code, count)
            raise
        for event_type, count in Counter(e.type for e in events).items():
            metrics.count_accepted(event_type, count)
