"""A trigger whose workspace id PostgreSQL refuses (a NUL byte) on the real stack: dead-lettered
with the reason, and the triggers behind it in the same partition are composed.

Before, the workspace look-up's error escaped the handler, the Stage took it for an outage and
replayed the batch for ever, halting the partition."""

from __future__ import annotations

import msgspec
import pytest

from retarget.common.kafka import make_producer
from retarget.common.schemas import DeadLettered, OutboundMessage, encode
from retarget.common.topics import Topics, profile_key
from retarget.composer.bootstrap import ComposerService
from retarget.composer.samples import sample_trigger
from retarget.composer.settings import ComposerSettings

from .test_composer_kafka import composer, read, settings

__all__ = ["composer", "settings"]  # fixtures shared with the composer's other Kafka test

pytestmark = pytest.mark.integration


async def test_a_nul_byte_workspace_is_dead_lettered_and_its_partition_goes_on(
    settings: ComposerSettings, composer: ComposerService, workspace_id: str
) -> None:
    topics = Topics(settings.topic_prefix)
    base = msgspec.structs.replace(sample_trigger("abandoned_cart"), workspace_id=workspace_id)
    good = [msgspec.structs.replace(base, trigger_id=f"{n:032x}") for n in range(6)]
    poison = msgspec.structs.replace(base, trigger_id="f" * 32, workspace_id=f"{workspace_id}\x00")
    producer = make_producer(settings)
    await producer.start()
    try:
        key = profile_key(workspace_id, base.profile_id)  # one key: one partition
        for trigger in (*good[:3], poison, *good[3:]):
            await producer.send_and_wait(topics.triggers, encode(trigger), key=key)
    finally:
        await producer.stop()

    outbound = [
        msgspec.json.decode(r.value, type=OutboundMessage)
        for r in await read(settings, topics.outbound, 6, 90)
    ]
    assert {m.trigger_id for m in outbound} == {t.trigger_id for t in good}
    [letter] = [
        msgspec.json.decode(r.value, type=DeadLettered)
        for r in await read(settings, topics.dead_letter, 1, 60)
    ]
    assert letter.stage == "composer" and "f" * 32 in letter.value
    assert letter.reason.startswith("CharacterNotInRepertoireError"), letter.reason
