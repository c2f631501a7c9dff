"""The Stage handler: one batch of outbound records in, the records to produce out.

Per batch: decode (an undecodable record becomes a dead letter, the rest go on), drop
repeats of a message id inside the batch, look up every recipient's suppressions in one
query, then handle the messages concurrently (the transport's pool bounds how many talk
SMTP at once). Per message: claim the id in the send log; only the owner of a fresh claim
delivers; a message the log already knows replays its recorded outcome instead.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import msgspec
from aiokafka import ConsumerRecord

from retarget.common.clock import Clock
from retarget.common.identity import email_digest
from retarget.common.schemas import DeliveryRecorded, OutboundMessage, decoder, encode
from retarget.common.stage import Output, dead_letter
from retarget.common.topics import Topics
from retarget.sender.delivery import Deliverer, count_outcome, outcome_key, outcome_record
from retarget.sender.metrics import DUPLICATES, FOUND_CLAIMED
from retarget.sender.rules import admission, replays_outcome
from retarget.sender.store import DeliveryStore, NewClaim, SuppressionKey

log = logging.getLogger(__name__)

STAGE_NAME = "sender"
_decode = decoder(OutboundMessage)


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


def suppression_key(message: OutboundMessage) -> SuppressionKey:
    return (message.workspace_id, email_digest(message.recipient))


class OutboundHandler:
    def __init__(self, store: DeliveryStore, deliverer: Deliverer, topics: Topics, clock: Clock) -> None:
        self.store = store
        self.deliverer = deliverer
        self.topics = topics
        self.clock = clock

    async def __call__(self, records: Sequence[ConsumerRecord]) -> list[Output]:
        outputs: list[Output] = []
        batch: dict[str, tuple[OutboundMessage, bytes]] = {}
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

        suppressed = await self.store.suppressions(list({suppression_key(m) for m, _ in batch.values()}))
        results = await asyncio.gather(
            *(self.handle(m, payload, suppressed.get(suppression_key(m))) for m, payload in batch.values())
        )
        outputs.extend(
            Output(self.topics.deliveries, outcome_key(r), encode(r)) for r in results if r is not None
        )
        return outputs

    async def handle(
        self, message: OutboundMessage, payload: bytes, suppression_reason: str | None
    ) -> DeliveryRecorded | None:
        refusal = admission(suppression_reason)
        claim = await self.store.claim(
            NewClaim(
                message_id=message.message_id,
                workspace_id=message.workspace_id,
                campaign=message.campaign,
                profile_id=message.profile_id,
                recipient_hash=email_digest(message.recipient),
                state="claimed" if refusal is None else refusal.outcome,
                reason=None if refusal is None else refusal.reason,
                at=self.clock.now(),
            )
        )
        if not claim.owned:
            DUPLICATES.labels(claim.row.state).inc()
            if not replays_outcome(claim.row.state):
                FOUND_CLAIMED.inc()
                log.warning(
                    "message id already claimed and unfinished; not sending again",
                    extra={"message_id": message.message_id},
                )
                return None
            return outcome_record(claim.row)
        if refusal is not None:
            record = outcome_record(claim.row)
            count_outcome(record)
            return record
        return await self.deliverer.attempt(message, payload, claim.row)
