"""Poison records on the real stack: one bad message never halts its partition.

Every message below goes to a recipient whose key (the address digest) lands on the poison
ones' partition. PostgreSQL refuses the poison (a NUL byte in text; a message id too long
for the primary key's index); before, the Stage replayed that batch for ever and every later
message of the domain waited behind it.
"""

from __future__ import annotations

import secrets
import uuid
from typing import Any

import pytest
from aiokafka.partitioner import DefaultPartitioner

from retarget.common.schemas import DeadLettered, decoder
from retarget.common.topics import recipient_key
from retarget.sender.bootstrap import Sender
from retarget.sender.settings import SenderSettings

from .conftest import ScriptedSmtp, outbound_message, produce

pytestmark = pytest.mark.integration


def _partition(recipient: str, partitions: int) -> int:
    every = list(range(partitions))
    return int(DefaultPartitioner()(recipient_key(recipient), every, every))


def _recipient_on(partition: int, partitions: int) -> str:
    """A fresh address whose outbound key lands on `partition`."""
    while True:
        recipient = f"r-{uuid.uuid4().hex[:10]}@example.com"
        if _partition(recipient, partitions) == partition:
            return recipient


async def test_a_nul_byte_or_a_huge_id_is_dead_lettered_and_its_domain_goes_on(
    running_sender: Sender,
    sender_settings: SenderSettings,
    smtp: ScriptedSmtp,
    workspace_id: str,
    read_topic: Any,
) -> None:
    deliveries = await read_topic(running_sender.topics.deliveries)
    dead = await read_topic(running_sender.topics.dead_letter)
    count = sender_settings.topic_partitions

    def on_the_poisons_partition(**fields: Any) -> Any:
        return outbound_message(workspace_id, _recipient_on(0, count), **fields)

    before = [on_the_poisons_partition() for _ in range(5)]
    nul = on_the_poisons_partition(profile_id="anon-\x00-visitor")
    huge = on_the_poisons_partition(message_id=f"m-{secrets.token_hex(5000)}")  # ~10 KB, incompressible
    after = [on_the_poisons_partition() for _ in range(5)]
    await produce(sender_settings, *before, nul, huge, *after)  # all on partition 0

    good = {m.message_id for m in before + after}
    await deliveries.until(lambda _: good <= {d.message_id for d in deliveries.deliveries()}, timeout_s=90)
    letters = await dead.until(lambda values: len(values) >= 2, timeout_s=60)

    decode = decoder(DeadLettered)
    reasons = {decode.decode(v).value: decode.decode(v).reason for v in letters}
    assert len(reasons) == 2 and all(decode.decode(v).stage == "sender" for v in letters)
    nul_reason = next(r for value, r in reasons.items() if nul.message_id in value)
    huge_reason = next(r for value, r in reasons.items() if huge.message_id in value)
    assert nul_reason.startswith("CharacterNotInRepertoireError"), nul_reason
    assert huge_reason.startswith("ProgramLimitExceededError"), huge_reason
    outcomes = [(d.message_id, d.outcome) for d in deliveries.deliveries()]
    assert set(outcomes) == {(mid, "sent") for mid in good}  # no outcome for the poison ones
    for m in before + after:
        assert smtp.count(f"<{m.message_id}@shop.example>") == 1
    assert smtp.count(f"<{nul.message_id}@shop.example>") == 0
