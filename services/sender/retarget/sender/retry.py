"""The retry loop: re-sends deferred messages when due, and closes claims dead processes left.

Every poll it
1. sweeps claims older than the claim lease: the process that made them died between
   claiming and recording the SMTP answer, so nobody knows whether the mail arrived. They
   become failed/unconfirmed_claim and are never sent again (see README, "never twice");
2. leases due retries (FOR UPDATE SKIP LOCKED, so several senders share the queue), checks
   suppressions again (an unsubscribe may have arrived meanwhile) and delivers each one
   whose send-log row it can move from 'deferred' back to 'claimed'.
A retry row is dropped only after its outcome is published, so a crash in between replays
the recorded outcome on the next lease instead of losing it.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from datetime import timedelta

from retarget.common.clock import Clock
from retarget.common.schemas import DeliveryRecorded, encode
from retarget.common.topics import Topics
from retarget.sender.delivery import Deliverer, count_outcome, outcome_key, outcome_record
from retarget.sender.handler import InvalidMessage, decode_outbound, suppression_key
from retarget.sender.metrics import FOUND_CLAIMED, RETRY_DUE, UNCONFIRMED_CLAIMS
from retarget.sender.publisher import EventPublisher
from retarget.sender.rules import UNEXPECTED_REPLY, Verdict, admission
from retarget.sender.store import DeliveryStore, DueRetry, Finish, SendLogRow

log = logging.getLogger(__name__)


class RetryLoop:
    def __init__(
        self,
        store: DeliveryStore,
        deliverer: Deliverer,
        publisher: EventPublisher,
        topics: Topics,
        clock: Clock,
        *,
        poll_s: float = 5.0,
        batch: int = 100,
        claim_lease_s: float = 600.0,
    ) -> None:
        self.store = store
        self.deliverer = deliverer
        self.publisher = publisher
        self.topics = topics
        self.clock = clock
        self.poll_s = poll_s
        self.batch = batch
        self.claim_lease = timedelta(seconds=claim_lease_s)

    async def run(self, stop: asyncio.Event) -> None:
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
        published = 0
        for row in await self.store.sweep_stale_claims(now - self.claim_lease, now):
            UNCONFIRMED_CLAIMS.inc()
            record = outcome_record(row)
            count_outcome(record)
            await self._publish(record)
            published += 1
        due = await self.store.lease_due(now, now + self.claim_lease, self.batch)
        RETRY_DUE.set(len(due))
        results = await asyncio.gather(*(self._retry(entry) for entry in due))
        for entry, outcome in zip(due, results, strict=True):
            if outcome is None:
                continue
            await self._publish(outcome)
            published += 1
            if outcome.outcome != "deferred":
                await self.store.drop_retry(entry.message_id)
        return published

    async def _retry(self, entry: DueRetry) -> DeliveryRecorded | None:
        claim = await self.store.reclaim_deferred(entry.message_id, self.clock.now())
        if claim is None:
            await self.store.drop_retry(entry.message_id)  # unreachable by the foreign key; be tidy
            return None
        if not claim.owned:
            if claim.row.state == "claimed":
                FOUND_CLAIMED.inc()  # a worker died mid-retry; the sweep closes it after the lease
                return None
            return outcome_record(claim.row)  # finished before, the publish may have been lost
        try:
            message = decode_outbound(entry.payload)
        except InvalidMessage as exc:  # it decoded when it was deferred; only a schema change gets here
            log.error("deferred payload no longer decodes", extra={"message_id": entry.message_id})
            verdict = Verdict("failed", UNEXPECTED_REPLY)
            return await self._record_without_message(claim.row, verdict, str(exc))
        reasons = await self.store.suppressions([suppression_key(message)])
        refusal = admission(reasons.get(suppression_key(message)))
        if refusal is not None:
            return await self.deliverer.record(claim.row, message, refusal, None, "", self.clock.now())
        return await self.deliverer.attempt(message, entry.payload, claim.row, entry.first_deferred_at)

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

    async def _publish(self, record: DeliveryRecorded) -> None:
        await self.publisher.publish(self.topics.deliveries, encode(record), key=outcome_key(record))
