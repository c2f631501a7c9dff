"""The retry loop: re-sends deferred messages when due, and closes claims dead processes left.

Every poll it
1. sweeps claims older than the claim lease: the process that made them died between
   claiming and recording the SMTP answer, so nobody knows whether the mail arrived. They
   become failed/unconfirmed_claim and are never sent again (see README, "never twice");
2. leases due retries (FOR UPDATE SKIP LOCKED, so several senders share the queue). One
   that is due inside its recipient's quiet hours is postponed to their end (no attempt
   used). The others wait for rate-limit tokens, then their send-log row is moved from
   'deferred' back to 'claimed', suppressions are checked again (an unsubscribe may have
   arrived meanwhile) and the message is delivered, DKIM-signed as on its first attempt.
A retry row is dropped only after its outcome is published, so a crash in between replays
the recorded outcome on the next lease instead of losing it. The sweep likewise publishes a
stale claim's outcome before it changes the row (one transaction holds the rows meanwhile).
A retry that fails on its own data (poison.is_data_error) is dead-lettered and dropped
rather than leased again for ever; a claimed row it leaves is closed by the sweep.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from datetime import datetime, timedelta

from retarget.common.clock import Clock
from retarget.common.faults import crash_point
from retarget.common.metrics import DEAD_LETTERS
from retarget.common.poison import describe, is_data_error
from retarget.common.schemas import DeliveryRecorded, OutboundMessage, encode
from retarget.common.stage import dead_letter_value
from retarget.common.topics import Topics
from retarget.sender.admission import quiet_until, zone
from retarget.sender.batch_admission import Hold
from retarget.sender.delivery import Deliverer, count_outcome, outcome_key, outcome_record
from retarget.sender.handler import InvalidMessage, decode_outbound, suppression_key
from retarget.sender.metrics import (
    FOUND_CLAIMED,
    RETRY_BACKLOG,
    RETRY_DUE,
    RETRY_OLDEST_AGE,
    UNCONFIRMED_CLAIMS,
)
from retarget.sender.policies import PolicyCache
from retarget.sender.policy import SendingPolicy
from retarget.sender.publisher import EventPublisher
from retarget.sender.ratelimit import RateLimiter, Stopping
from retarget.sender.rules import UNEXPECTED_REPLY, Verdict
from retarget.sender.store import DeliveryStore, DueRetry, Finish, SendLogRow

log = logging.getLogger(__name__)
RETRY_STAGE = "sender-retry"  # the stage its dead letters name


class RetryLoop:
    def __init__(
        self,
        store: DeliveryStore,
        deliverer: Deliverer,
        publisher: EventPublisher,
        topics: Topics,
        clock: Clock,
        policies: PolicyCache,
        limiter: RateLimiter,
        *,
        hold: Hold | None = None,
        poll_s: float = 5.0,
        batch: int = 100,
        claim_lease_s: float = 600.0,
    ) -> None:
        self.store = store
        self.deliverer = deliverer
        self.publisher = publisher
        self.topics = topics
        self.clock = clock
        self.policies = policies
        self.limiter = limiter
        self.hold = hold  # the reputation guard: a paused workspace's retries wait, unattempted
        self.stop = asyncio.Event()  # the Sender replaces it with its own stop event
        self.poll_s = poll_s
        self.batch = batch
        self.claim_lease = timedelta(seconds=claim_lease_s)
        self.dead_letters = DEAD_LETTERS.labels(RETRY_STAGE)  # the series exists, at 0, from the start

    async def run(self, stop: asyncio.Event) -> None:
        self.stop = stop
        while not stop.is_set():
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("retry poll failed; trying again next poll")
            try:
                await asyncio.wait_for(stop.wait(), self.poll_s)
            except TimeoutError:
                pass

    async def tick(self) -> int:
        """One poll; returns how many outcomes it published."""
        now = self.clock.now()
        swept = await self.store.sweep_stale_claims(now - self.claim_lease, now, self._publish_rows)
        for row in swept:  # counted once they are both published and stored
            UNCONFIRMED_CLAIMS.inc()
            count_outcome(outcome_record(row))
        published = len(swept)
        # outcomes of claims handed off in a rebalance, whose claimant may have died unpublished
        published += len(await self.store.publish_handed_off(self.batch, self._publish_rows))
        due = await self.store.lease_due(now, now + self.claim_lease, self.batch)
        RETRY_DUE.set(len(due))
        held = await self._held(due)
        results = await asyncio.gather(
            *(self._retry(entry, entry.message_id in held) for entry in due), return_exceptions=True
        )
        for entry, outcome in zip(due, results, strict=True):
            if isinstance(outcome, Stopping):  # not started: hand it back to the queue at once
                await self.store.postpone(entry.message_id, now)
                continue
            if isinstance(outcome, Exception) and is_data_error(outcome):
                await self._dead_letter(entry, outcome)  # would fail the same way on every lease
                continue
            if isinstance(outcome, BaseException):
                log.error("retry failed; leased again after the lease", exc_info=outcome)
                continue
            if outcome is None:
                continue
            await self._publish(outcome)
            published += 1
            if outcome.outcome != "deferred":
                await self.store.drop_retry(entry.message_id)
        await self._measure_backlog(now)
        return published

    async def _measure_backlog(self, now: datetime) -> None:
        count, oldest = await self.store.retry_backlog()
        RETRY_BACKLOG.set(count)
        RETRY_OLDEST_AGE.set((now - oldest).total_seconds() if oldest else 0)

    async def _held(self, due: list[DueRetry]) -> set[str]:
        if self.hold is None or not due:
            return set()
        messages = []
        for entry in due:
            try:
                messages.append(decode_outbound(entry.payload))
            except InvalidMessage:
                continue  # _retry fails it
        return await self.hold.held(messages)

    async def _retry(self, entry: DueRetry, held: bool = False) -> DeliveryRecorded | None:
        try:
            message = decode_outbound(entry.payload)
        except InvalidMessage as exc:  # it decoded when it was deferred; only a schema change gets here
            return await self._fail_undecodable(entry, exc)
        if held and self.hold is not None:  # paused: no attempt used, looked at again later
            await self.store.postpone(entry.message_id, self.hold.until(self.clock.now()))
            return None
        policy: SendingPolicy = (await self.policies.get_many([message.workspace_id]))[message.workspace_id]
        now = self.clock.now()
        until = quiet_until(policy.quiet_hours, zone(message.recipient_timezone, policy.timezone), now)
        if until is not None:
            await self.store.postpone(entry.message_id, until)
            return None
        domain = message.recipient.rpartition("@")[2]
        await self.limiter.acquire(domain, message.workspace_id, policy.rate, self.stop)  # before the claim
        async with self.deliverer.in_flight:
            return await self._reclaim_and_deliver(entry, message, policy)

    async def _reclaim_and_deliver(
        self, entry: DueRetry, message: OutboundMessage, policy: SendingPolicy
    ) -> DeliveryRecorded | None:
        claim = await self.store.reclaim_deferred(entry.message_id, self.clock.now())
        if claim is None:
            await self.store.drop_retry(entry.message_id)  # unreachable by the foreign key; be tidy
            return None
        if not claim.owned:
            if claim.row.state == "claimed":
                FOUND_CLAIMED.inc()  # a worker died mid-retry; the sweep closes it after the lease
                return None
            return outcome_record(claim.row)  # finished before, the publish may have been lost
        crash_point("sender.retry_after_claim")
        reason = (await self.store.suppressions([suppression_key(message)])).get(suppression_key(message))
        if reason is not None:
            verdict = Verdict("suppressed", reason)
            return await self.deliverer.record(claim.row, message, verdict, None, "", self.clock.now())
        return await self.deliverer.attempt(
            message, entry.payload, claim.row, entry.first_deferred_at, dkim_selectors=policy.dkim_selectors
        )

    async def _fail_undecodable(self, entry: DueRetry, exc: InvalidMessage) -> DeliveryRecorded | None:
        claim = await self.store.reclaim_deferred(entry.message_id, self.clock.now())
        if claim is None or not claim.owned:
            return None if claim is None or claim.row.state == "claimed" else outcome_record(claim.row)
        log.error("deferred payload no longer decodes", extra={"message_id": entry.message_id})
        return await self._record_without_message(claim.row, Verdict("failed", UNEXPECTED_REPLY), str(exc))

    async def _record_without_message(self, row: SendLogRow, verdict: Verdict, text: str) -> DeliveryRecorded:
        now = self.clock.now()
        finish = Finish(
            row.message_id, row.workspace_id, b"", verdict.outcome, verdict.reason, None, text, now
        )
        await self.store.finish(finish)
        done = replace(row, state=verdict.outcome, last_reason=verdict.reason, last_code=None, updated_at=now)
        record = outcome_record(done)
        count_outcome(record)
        return record

    async def _publish_rows(self, rows: list[SendLogRow]) -> None:
        # Concurrently: the sweep's transaction holds the rows until every ack is in.
        await asyncio.gather(*(self._publish(outcome_record(row)) for row in rows))

    async def _dead_letter(self, entry: DueRetry, exc: Exception) -> None:
        """Publish the deferred payload as a dead letter, then drop its retry row (in that order)."""
        log.warning("deferred message dead-lettered", extra={"message_id": entry.message_id})
        value = dead_letter_value(
            stage=RETRY_STAGE,
            reason=describe(exc),
            source=("send_retries", -1, -1),
            key=entry.message_id,
            raw=entry.payload,
        )
        await self.publisher.publish(self.topics.dead_letter, value, key=entry.message_id.encode())
        self.dead_letters.inc()
        await self.store.drop_retry(entry.message_id)

    async def _publish(self, record: DeliveryRecorded) -> None:
        await self.publisher.publish(self.topics.deliveries, encode(record), key=outcome_key(record))
