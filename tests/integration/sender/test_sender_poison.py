"""Poison records on the real stack: one bad message never halts its partition.

The outbound topic is keyed by recipient domain, so every message below shares a partition
with the poison ones. PostgreSQL refuses the poison (a NUL byte in text; a message id too long
for the primary key's index); before, the Stage replayed that batch for ever and every later
message of the domain waited behind it.
"""

from __future__ import annotations

import secrets
from typing import Any

import pytest

from retarget.common.schemas import DeadLettered, decoder
from retarget.sender.bootstrap import Sender
from retarget.sender.settings import SenderSettings

from .conftest import ScriptedSmtp, outbound_message, produce

pytestmark = pytest.mark.integration


async def test_a_nul_byte_or_a_huge_id_is_dead_lettered_and_its_domain_goes_on(
    running_sender: Sender,
    sender_settings: SenderSettings,
    smtp: ScriptedSmtp,
    workspace_id: str,
    read_topic: Any,
) -> None:
    deliveries = await read_topic(running_sender.topics.deliveries)
    dead = await read_topic(running_sender.topics.dead_letter)
    before = [outbound_message(workspace_id) for _ in range(5)]
    nul = outbound_message(workspace_id, profile_id="anon-\x00-visitor")
    huge = outbound_message(workspace_id, message_id=f"m-{secrets.token_hex(5000)}")  # ~10 KB, incompressible
    after = [outbound_message(workspace_id) for _ in range(5)]
    await produce(sender_settings, *before, nul, huge, *after)  # one domain: one partition

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
