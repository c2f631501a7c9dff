"""In-memory fakes of the sender's side effects, for tests only (never used in production code).

They follow the same contracts as smtp_pool.SmtpPool and pg_store.PostgresDeliveryStore
(the integration tests check the real ones), so handler and retry tests need no server.
"""

from __future__ import annotations

import itertools
import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from aiokafka import ConsumerRecord

from retarget.common.schemas import DeliveryRecorded, OutboundMessage, decoder, encode
from retarget.common.testing import FakeClock, RecordingPublisher
from retarget.common.topics import Topics, recipient_key
from retarget.sender.batch_admission import BatchAdmission
from retarget.sender.delivery import Deliverer, Signer
from retarget.sender.handler import OutboundHandler
from retarget.sender.policies import PolicyCache, StaticPolicySource
from retarget.sender.policy import Rate, SendingPolicy
from retarget.sender.ratelimit import RateLimiter
from retarget.sender.retry import RetryLoop
from retarget.sender.rules import CAMPAIGN_UNSUBSCRIBED, RetryPolicy
from retarget.sender.store import (
    Claim,
    DueRetry,
    Finish,
    NewClaim,
    PublishRows,
    RecipientKey,
    SendLogRow,
    SuppressionKey,
    unconfirmed,
)
from retarget.sender.transport import Envelope, SmtpReply

ACCEPTED = SmtpReply(250, "2.0.0 Ok: queued", "done")


@dataclass
class FakeMailTransport:
    """Answers 250 unless a reply is scripted for the recipient (a list is used up in order)."""

    replies: dict[str, list[SmtpReply]] = field(default_factory=dict)
    delivered: list[Envelope] = field(default_factory=list)  # accepted messages only
    attempts: list[Envelope] = field(default_factory=list)
    problem: str | None = None

    def script(self, recipient: str, *replies: SmtpReply) -> None:
        self.replies[recipient] = list(replies)

    async def deliver(self, envelope: Envelope) -> SmtpReply:
        self.attempts.append(envelope)
        queue = self.replies.get(envelope.recipient)
        reply = queue.pop(0) if queue else ACCEPTED
        if reply.code is not None and 200 <= reply.code < 300:
            self.delivered.append(envelope)
        return reply

    async def check(self) -> str | None:
        return self.problem

    async def close(self) -> None:
        pass


@dataclass
class _Retry:
    payload: bytes
    first_deferred_at: datetime
    not_before: datetime
    leased_until: datetime | None = None


@dataclass
class InMemoryDeliveryStore:
    rows: dict[str, SendLogRow] = field(default_factory=dict)
    claimed_at: dict[str, datetime] = field(default_factory=dict)
    recipients: dict[str, tuple[SuppressionKey, datetime]] = field(default_factory=dict)  # key, created_at
    suppressed: dict[SuppressionKey, str] = field(default_factory=dict)
    campaign_unsubscribes: set[RecipientKey] = field(default_factory=set)
    retries: dict[str, _Retry] = field(default_factory=dict)
    handed_off: set[str] = field(default_factory=set)
    suppression_queries: int = 0

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def suppressions(self, keys: Sequence[RecipientKey]) -> dict[RecipientKey, str]:
        self.suppression_queries += 1
        found = {}
        for ws, digest, campaign in keys:
            reason = self.suppressed.get((ws, digest)) or self.suppressed.get(("*", digest))
            if reason is None and (ws, digest, campaign) in self.campaign_unsubscribes:
                reason = CAMPAIGN_UNSUBSCRIBED
            if reason:
                found[(ws, digest, campaign)] = reason
        return found

    async def known(self, message_ids: Sequence[str]) -> dict[str, SendLogRow]:
        return {m: self.rows[m] for m in message_ids if m in self.rows}

    async def cap_history(
        self, keys: Sequence[SuppressionKey], since: datetime
    ) -> dict[SuppressionKey, list[tuple[str, datetime]]]:
        history: dict[SuppressionKey, list[tuple[str, datetime]]] = {}
        for message_id, (key, created_at) in self.recipients.items():
            row = self.rows[message_id]
            if key in keys and created_at > since and row.state in ("sent", "claimed", "deferred"):
                history.setdefault(key, []).append((row.campaign, created_at))
        return history

    async def claim(self, claim: NewClaim) -> Claim:
        if claim.message_id in self.rows:
            return Claim(owned=False, row=self.rows[claim.message_id])
        row = SendLogRow(
            claim.message_id,
            claim.workspace_id,
            claim.campaign,
            claim.profile_id,
            claim.state,
            1 if claim.state == "claimed" else 0,
            None,
            claim.reason,
            claim.at,
        )
        self.rows[claim.message_id] = row
        self.claimed_at[claim.message_id] = claim.at
        self.recipients[claim.message_id] = ((claim.workspace_id, claim.recipient_hash), claim.at)
        if claim.retry is not None:
            r = claim.retry
            self.retries[claim.message_id] = _Retry(r.payload, r.first_deferred_at, r.not_before)
        return Claim(owned=True, row=row)

    async def reclaim_deferred(self, message_id: str, at: datetime) -> Claim | None:
        row = self.rows.get(message_id)
        if row is None:
            return None
        if row.state != "deferred":
            return Claim(owned=False, row=row)
        row = replace(row, state="claimed", attempts=row.attempts + 1, updated_at=at)
        self.rows[message_id] = row
        self.claimed_at[message_id] = at
        return Claim(owned=True, row=row)

    async def finish(self, finish: Finish) -> bool:
        row = self.rows[finish.message_id]
        if row.state != "claimed":
            return False
        self.rows[finish.message_id] = replace(
            row, state=finish.state, last_code=finish.code, last_reason=finish.reason, updated_at=finish.at
        )
        if finish.suppress:
            self.suppressed.setdefault((finish.workspace_id, finish.recipient_hash), "hard_bounce")
        if finish.retry is not None:
            r = finish.retry
            self.retries[finish.message_id] = _Retry(r.payload, r.first_deferred_at, r.not_before)
        return True

    async def lease_due(self, now: datetime, lease_until: datetime, limit: int) -> list[DueRetry]:
        due = []
        for message_id, r in sorted(self.retries.items(), key=lambda kv: kv[1].not_before):
            if r.not_before <= now and (r.leased_until is None or r.leased_until <= now):
                r.leased_until = lease_until
                due.append(DueRetry(message_id, r.payload, r.first_deferred_at))
        return due[:limit]

    async def drop_retry(self, message_id: str) -> None:
        self.retries.pop(message_id, None)

    async def postpone(self, message_id: str, not_before: datetime) -> None:
        if message_id in self.retries:
            self.retries[message_id].not_before = not_before
            self.retries[message_id].leased_until = None

    async def retry_backlog(self) -> tuple[int, datetime | None]:
        oldest = min((r.first_deferred_at for r in self.retries.values()), default=None)
        return len(self.retries), oldest

    async def sweep_stale_claims(
        self, claimed_before: datetime, at: datetime, publish: PublishRows | None = None
    ) -> list[SendLogRow]:
        stale = [
            mid
            for mid, row in self.rows.items()
            if row.state == "claimed" and self.claimed_at[mid] < claimed_before
        ]
        swept = [unconfirmed(self.rows[mid], at) for mid in stale]
        if swept and publish is not None:  # as PostgreSQL: published before the rows change
            await publish(swept)
        for row in swept:
            self.rows[row.message_id] = row
            self.retries.pop(row.message_id, None)
            self.handed_off.discard(row.message_id)
        return swept

    async def hand_off(self, message_ids: Sequence[str]) -> None:
        self.handed_off.update(m for m in message_ids if m in self.rows)

    async def publish_handed_off(self, limit: int, publish: PublishRows) -> list[SendLogRow]:
        final = [
            self.rows[m] for m in sorted(self.handed_off) if self.rows[m].state not in ("claimed", "deferred")
        ][:limit]
        if final:
            await publish(final)
            self.handed_off.difference_update(r.message_id for r in final)
        return final

    async def check(self) -> str | None:
        return None


# --- building messages and records -------------------------------------------------

_offsets = itertools.count()
_deliveries = decoder(DeliveryRecorded)


def outbound(recipient: str | None = None, **fields: object) -> OutboundMessage:
    values: dict[str, object] = {
        "message_id": f"m-{uuid.uuid4().hex}",
        "trigger_id": uuid.uuid4().hex,
        "workspace_id": "ws1",
        "profile_id": "p1",
        "campaign": "cart",
        "recipient": recipient or f"{uuid.uuid4().hex[:8]}@example.com",
        "mail_from": "shop@shop.example",
        "raw": "From: shop@shop.example\r\nSubject: hi\r\n\r\nhello\r\n",
        "created_at": FakeClock().now(),
    }
    values.update(fields)
    return OutboundMessage(**values)  # type: ignore[arg-type]


def record_of(value: OutboundMessage | bytes, topic: str = "t.outbound.v1") -> ConsumerRecord:
    raw = value if isinstance(value, bytes) else encode(value)
    key = None if isinstance(value, bytes) else recipient_key(value.recipient)
    return ConsumerRecord(topic, 0, next(_offsets), 0, 0, key, raw, None, 0, len(raw), ())


def decode_delivery(value: bytes) -> DeliveryRecorded:
    return _deliveries.decode(value)


class FakeMonotonic:
    """A monotonic clock for the token buckets that moves only when told (or when slept on)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


UNLIMITED = Rate(0, 0)


@dataclass
class SenderParts:
    store: InMemoryDeliveryStore
    transport: FakeMailTransport
    clock: FakeClock
    publisher: RecordingPublisher
    topics: Topics
    handler: OutboundHandler
    retry: RetryLoop
    policies: StaticPolicySource
    limiter: RateLimiter


@dataclass
class FakeHold:
    """batch_admission.Hold: the reputation guard with its paused workspaces set by the test."""

    paused: set[str] = field(default_factory=set)
    hold_s: float = 300.0

    async def held(self, messages: Sequence[OutboundMessage]) -> set[str]:
        return {m.message_id for m in messages if m.workspace_id in self.paused}

    def until(self, now: datetime) -> datetime:
        return now + timedelta(seconds=self.hold_s)


def fake_sender(
    policy: RetryPolicy | None = None,
    claim_lease_s: float = 300,
    sending: SendingPolicy | None = None,
    limiter: RateLimiter | None = None,
    signer: Signer | None = None,
    hold: FakeHold | None = None,
) -> SenderParts:
    """The real handler and retry loop over fakes, sharing one FakeClock.

    The default sending policy has no caps, no quiet hours and no rate limits, so a test
    turns on only what it is about.
    """
    store, transport, clock = InMemoryDeliveryStore(), FakeMailTransport(), FakeClock()
    publisher, topics = RecordingPublisher(), Topics("t")
    policy = policy or RetryPolicy(initial_s=60, max_interval_s=600, max_age_s=3600, max_attempts=4)
    policies = StaticPolicySource(sending or SendingPolicy("*"))
    cache = PolicyCache(policies, ttl_s=0)
    limiter = limiter or RateLimiter(
        domain_default=UNLIMITED, domain_overrides={}, workspace_default=UNLIMITED, global_rate=UNLIMITED
    )
    deliverer = Deliverer(store, transport, policy, clock, signer, domain_feedback=limiter)
    admission = BatchAdmission(store, cache, clock, hold)
    handler = OutboundHandler(store, deliverer, topics, clock, admission, limiter)
    retry = RetryLoop(
        store, deliverer, publisher, topics, clock, cache, limiter, hold=hold, claim_lease_s=claim_lease_s
    )
    return SenderParts(store, transport, clock, publisher, topics, handler, retry, policies, limiter)


def dns_answers(records: list[str]) -> Callable[..., bytes | None]:
    """A DNS lookup for dkimpy (`dnsfunc`) answering from zone-style TXT records such as
    `sel._domainkey.shop.example TXT "v=DKIM1; …" "…"` (several strings are joined, as resolvers do)."""
    answers = {}
    for record in records:
        name, _, rest = record.partition(" TXT ")
        answers[name.strip().lower().rstrip(".")] = "".join(re.findall(r'"([^"]*)"', rest)).encode()

    def lookup(name: bytes | str, timeout: float = 5, **_: object) -> bytes | None:
        key = (name.decode() if isinstance(name, bytes) else name).lower().rstrip(".")
        return answers.get(key)

    return lookup
