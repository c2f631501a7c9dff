"""The Stage handler: one batch of outbound records in, the records to produce out.

Per batch: decode (an undecodable record becomes a dead letter, the rest go on), drop
repeats of a message id inside the batch, and find the ids the send log already knows (one
query): those replay their recorded outcome at once, without waiting for tokens. The rest
go through admission (batch_admission.py: suppression, caps, quiet hours; three queries),
then concurrently (the SMTP pool bounds how many talk SMTP at once): wait for rate-limit
tokens → check suppression again if that wait was long → claim the id in the send log →
DKIM-sign → deliver → record. Only the owner of a fresh claim delivers. At most
`Deliverer.in_flight` messages are between their claim and their recorded outcome (the SMTP
pool's size), which bounds what a crash can leave claimed.

On shutdown, messages still waiting for tokens give up (Stopping) while those already
talking SMTP finish; the batch is then not committed and is replayed after restart, where
the finished ones are found in the send log.

A message whose own data the database refuses (poison.is_data_error: a NUL byte, an id too
long for an index) is dead-lettered alone and its neighbours go on; any other failure fails
the batch, which the Stage retries.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import msgspec
from aiokafka import ConsumerRecord

from retarget.common.clock import Clock
from retarget.common.faults import crash_point
from retarget.common.identity import email_digest
from retarget.common.poison import describe, is_data_error
from retarget.common.schemas import DeliveryRecorded, OutboundMessage, decoder, encode
from retarget.common.stage import Output, dead_letter
from retarget.common.topics import Topics
from retarget.sender.admission import Postpone
from retarget.sender.batch_admission import BatchAdmission, suppression_key
from retarget.sender.delivery import Deliverer, count_outcome, outcome_key, outcome_record
from retarget.sender.metrics import DUPLICATES, FOUND_CLAIMED, SUPPRESSION_RECHECKS
from retarget.sender.policy import SendingPolicy
from retarget.sender.ratelimit import RateLimiter, Stopping
from retarget.sender.rules import Verdict, replays_outcome
from retarget.sender.store import Claim, DeliveryStore, NewClaim, RetryEntry, SendLogRow

log = logging.getLogger(__name__)

STAGE_NAME = "sender"
_decode = decoder(OutboundMessage)

__all__ = ["STAGE_NAME", "InvalidMessage", "OutboundHandler", "decode_outbound", "suppression_key"]


class InvalidMessage(ValueError):
    pass


def decode_outbound(value: bytes | None) -> OutboundMessage:
    try:
        message = _decode.decode(value or b"")
    except msgspec.DecodeError as exc:
        raise InvalidMessage(f"undecodable OutboundMessage: {exc}") from exc
    local, _, domain = message.recipient.rpartition("@")
    if not local or "." not in domain:
        raise InvalidMessage("recipient is not an email address")
    return message


def replay(row: SendLogRow, met_claims: list[str]) -> DeliveryRecorded | None:
    """The recorded outcome of a message id the log already knows (None while it is claimed:
    its id goes to `met_claims`, to be handed off before the batch's offsets are committed)."""
    DUPLICATES.labels(row.state).inc()
    if replays_outcome(row.state):
        return outcome_record(row)
    FOUND_CLAIMED.inc()
    met_claims.append(row.message_id)
    log.warning(
        "message id already claimed and unfinished; not sending again", extra={"message_id": row.message_id}
    )
    return None


class OutboundHandler:
    def __init__(
        self,
        store: DeliveryStore,
        deliverer: Deliverer,
        topics: Topics,
        clock: Clock,
        admission: BatchAdmission,
        limiter: RateLimiter,
        *,
        suppression_recheck_s: float = 1.0,
    ) -> None:
        self.store = store
        self.deliverer = deliverer
        self.topics = topics
        self.clock = clock
        self.admission = admission
        self.limiter = limiter
        self.suppression_recheck_s = suppression_recheck_s
        self.stop = asyncio.Event()  # the Sender replaces it with its own stop event

    async def __call__(self, records: Sequence[ConsumerRecord]) -> list[Output]:
        outputs: list[Output] = []
        batch: dict[str, tuple[OutboundMessage, bytes]] = {}
        sources: dict[str, ConsumerRecord] = {}
        for record in records:
            try:
                message = decode_outbound(record.value)
            except InvalidMessage as exc:
                outputs.append(
                    dead_letter(record, stage=STAGE_NAME, reason=str(exc), topic=self.topics.dead_letter)
                )
                continue
            if message.message_id in batch:
                DUPLICATES.labels("same_batch").inc()
                continue
            batch[message.message_id] = (message, record.value or b"")
            sources[message.message_id] = record

        known = await self.store.known(list(batch))
        met_claims: list[str] = []  # claimed by another process: we commit past them, it publishes
        results = [replay(known[mid], met_claims) for mid in batch if mid in known]
        fresh = [(m, payload) for mid, (m, payload) in batch.items() if mid not in known]
        admitted = await self.admission.decide([m for m, _ in fresh])
        attempts = await asyncio.gather(
            *(
                self.handle(m, payload, a.decision, a.policy, met_claims)
                for (m, payload), a in zip(fresh, admitted, strict=True)
            ),
            return_exceptions=True,
        )
        if met_claims:  # before the offsets move past them: should the claimant die before it
            await self.store.hand_off(met_claims)  # publishes, the retry loop publishes for it
        for (m, _), attempt in zip(fresh, attempts, strict=True):
            if isinstance(attempt, Exception) and is_data_error(attempt):  # poison: this one only
                outputs.append(self._dead_letter(sources[m.message_id], attempt))
        failures = [r for r in attempts if isinstance(r, BaseException) and not is_data_error(r)]
        if failures:  # raised only after every message in flight has finished and been recorded
            raise next((f for f in failures if not isinstance(f, Stopping)), failures[0])
        results.extend(r for r in attempts if not isinstance(r, BaseException))
        outputs.extend(
            Output(self.topics.deliveries, outcome_key(r), encode(r)) for r in results if r is not None
        )
        return outputs

    def _dead_letter(self, record: ConsumerRecord, exc: Exception) -> Output:
        # The same data fails the same way on every replay: the send log can't hold it (a NUL
        # byte, an id too long for its index). Retrying would halt its domain's partition.
        log.warning(
            "message dead-lettered: the send log refused its data", extra={"reason": type(exc).__name__}
        )
        return dead_letter(record, stage=STAGE_NAME, reason=describe(exc), topic=self.topics.dead_letter)

    async def handle(
        self,
        message: OutboundMessage,
        payload: bytes,
        decision: Verdict | Postpone | None,
        policy: SendingPolicy,
        met_claims: list[str],
    ) -> DeliveryRecorded | None:
        if isinstance(decision, Verdict):
            return await self._record_refusal(message, decision, met_claims)
        if isinstance(decision, Postpone):
            now = self.clock.now()
            retry = RetryEntry(payload, now, decision.until)
            return await self._record_refusal(
                message, Verdict("deferred", decision.reason), met_claims, retry
            )
        domain = message.recipient.rpartition("@")[2]
        waited = await self.limiter.acquire(domain, message.workspace_id, policy.rate, self.stop)
        if waited > self.suppression_recheck_s:  # "checked at send time": a long wait checks again
            reason = (await self.store.suppressions([suppression_key(message)])).get(suppression_key(message))
            SUPPRESSION_RECHECKS.labels("clear" if reason is None else "suppressed").inc()
            if reason is not None:
                return await self._record_refusal(message, Verdict("suppressed", reason), met_claims)
        async with self.deliverer.in_flight:
            claim = await self._claim(message, "claimed", None)
            if not claim.owned:
                return replay(claim.row, met_claims)
            crash_point("sender.after_claim")
            return await self.deliverer.attempt(
                message, payload, claim.row, dkim_selectors=policy.dkim_selectors
            )

    async def _record_refusal(
        self,
        message: OutboundMessage,
        verdict: Verdict,
        met_claims: list[str],
        retry: RetryEntry | None = None,
    ) -> DeliveryRecorded | None:
        claim = await self._claim(message, verdict.outcome, verdict.reason, retry)
        if not claim.owned:
            return replay(claim.row, met_claims)
        record = outcome_record(claim.row)
        count_outcome(record)
        return record

    async def _claim(
        self, message: OutboundMessage, state: str, reason: str | None, retry: RetryEntry | None = None
    ) -> Claim:
        return await self.store.claim(
            NewClaim(
                message_id=message.message_id,
                workspace_id=message.workspace_id,
                campaign=message.campaign,
                profile_id=message.profile_id,
                recipient_hash=email_digest(message.recipient),
                state=state,
                reason=reason,
                at=self.clock.now(),
                retry=retry,
            )
        )
