"""The messages that cross Kafka, one struct per topic value, versioned with the topic name.

msgspec structs: fast to encode and decode, and decoding validates types, naming the field
that is wrong. JSON field names are camelCase, as in Segment's spec, so an event on the
events topic reads like the request the platform sent. Events are named in the past tense.

Changing a field in a way old readers can't read means a new topic version (…v2); adding an
optional field with a default does not.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, TypeVar

import msgspec

EventType = Literal["track", "identify", "page", "screen", "group", "alias"]


class _Message(msgspec.Struct, rename="camel", omit_defaults=True, forbid_unknown_fields=False):
    pass


class TrackedEvent(_Message, kw_only=True):
    """A validated Segment-style event, as ingest accepted it (topic: events)."""

    workspace_id: str
    type: EventType
    message_id: str
    timestamp: datetime
    received_at: datetime
    user_id: str | None = None
    anonymous_id: str | None = None
    event: str | None = None  # track
    name: str | None = None  # page / screen
    properties: dict[str, Any] = {}
    traits: dict[str, Any] = {}
    context: dict[str, Any] = {}
    integrations: dict[str, Any] = {}
    previous_id: str | None = None  # alias
    group_id: str | None = None  # group
    sent_at: datetime | None = None
    original_timestamp: datetime | None = None
    # set by ingest only, never from a client's body: "link" for the events its tracking links
    # and mailbox produce. Write keys are public, so an "Email Opened" posted to the API is the
    # client's word, not a touch (segmenter attribution.from_our_links)
    origin: str | None = None


class Recipient(_Message, kw_only=True):
    email: str
    first_name: str | None = None
    last_name: str | None = None
    locale: str = "en"
    timezone: str | None = None
    # marketing consent from the profile's traits: True recorded, False objected, None unknown
    consent: bool | None = None


class CartLine(_Message, kw_only=True):
    product_id: str
    name: str
    price: float
    quantity: int = 1
    currency: str = "USD"
    url: str | None = None
    image_url: str | None = None
    sku: str | None = None


class TriggerFired(_Message, kw_only=True):
    """The segmenter decided a profile should get a campaign's message (topic: triggers).

    trigger_id is deterministic (campaign, profile, entry event), so a replay after a crash
    produces the same trigger and everything downstream deduplicates on it.
    """

    trigger_id: str
    workspace_id: str
    profile_id: str
    campaign: str
    template: str
    reason: str
    entry_message_id: str
    due_at: datetime
    fired_at: datetime
    recipient: Recipient
    cart: list[CartLine] = []
    incentive: dict[str, Any] = {}
    data: dict[str, Any] = {}
    arm: str = ""  # the experiment arm (a variant's name or "default"); "" from before experiments
    subject: str | None = None  # the variant's subject template, instead of the template's own


class OutboundMessage(_Message, kw_only=True):
    """A rendered RFC 5322 message ready for delivery (topic: outbound, key: recipient domain)."""

    message_id: str  # also the send-log key; derived from trigger_id
    trigger_id: str
    workspace_id: str
    profile_id: str
    campaign: str
    recipient: str
    mail_from: str
    raw: str  # the full message, headers and body, CRLF line ends
    created_at: datetime
    recipient_timezone: str | None = None
    recipient_consent: bool | None = None  # see Recipient.consent; the sender checks it again


DeliveryState = Literal["sent", "deferred", "bounced", "suppressed", "capped", "expired", "failed"]


class DeliveryRecorded(_Message, kw_only=True):
    """What happened to one outbound message (topic: deliveries, key: workspace:profile)."""

    message_id: str
    workspace_id: str
    profile_id: str
    campaign: str
    outcome: DeliveryState
    at: datetime
    reason: str = ""
    smtp_code: int | None = None
    attempt: int = 1


class DeadLettered(_Message, kw_only=True):
    """A record a stage could not process, kept whole with the reason (topic: dead-letter)."""

    stage: str
    reason: str
    topic: str
    partition: int
    offset: int
    key: str | None
    value: str  # the original bytes, decoded as UTF-8 with replacement, or base64 when binary
    value_encoding: Literal["utf-8", "base64"]
    at: datetime


class ErasureRequested(_Message, kw_only=True):
    """Erase one person's state in the segmenter (topic: privacy, co-partitioned with events).

    One record per key the requester can name, so each reaches the worker owning it:
    `profile_id` set → the profile under `workspace:profile_id` (a userId, or an id the
    segmenter reported), which also erases its anonymous-id redirects, its due entry and
    the other profiles with its address; `profile_id` unset → every profile whose address
    hashes to `email_hash` (keyed `workspace:email:<email_hash>`, see
    retarget.common.privacy.erasure_key; the segmenter looks in every partition). Only a
    hash of the address travels here.
    """

    workspace_id: str
    request_id: str  # the same for every record of one request
    requested_at: datetime
    profile_id: str | None = None
    email_hash: str | None = None  # sha256 hex of the normalised address
    user_id: str | None = None  # as the request named the person (informational)


def encode(message: msgspec.Struct) -> bytes:
    return msgspec.json.encode(message)


T = TypeVar("T")


def decoder(cls: type[T]) -> msgspec.json.Decoder[T]:
    return msgspec.json.Decoder(cls)
