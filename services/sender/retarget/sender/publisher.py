"""EventPublisher: how the retry loop (which is not a Stage) publishes outcomes.

Same shape as retarget.common.testing.RecordingPublisher, the fake the unit tests use.
"""

from __future__ import annotations

from typing import Protocol

from aiokafka import AIOKafkaProducer


class EventPublisher(Protocol):
    async def publish(self, topic: str, value: bytes, key: bytes | None = None) -> None: ...


class KafkaPublisher:
    def __init__(self, producer: AIOKafkaProducer) -> None:
        self.producer = producer

    async def publish(self, topic: str, value: bytes, key: bytes | None = None) -> None:
        """Returns once the broker acknowledged the record (acks=all on our producers)."""
        await self.producer.send_and_wait(topic, value, key=key)
