"""Test helpers: a follower fed by hand (unit tests) and a publisher of feed records
(integration tests that need the feed but not the API)."""

from __future__ import annotations

from collections.abc import Collection, Iterable

from aiokafka import AIOKafkaProducer

from retarget.common.kafka import ensure_topics
from retarget.common.settings import CommonSettings
from retarget.config.records import ConfigChange, Kind, encode
from retarget.config.state import ConfigState, Subscriber, notify


class FakeConfigFollower:
    """ConfigFollower's interface without Kafka; `apply(change)` plays a feed record."""

    def __init__(
        self,
        bootstrap_servers: str = "",
        topic: str = "",
        *,
        kinds: Collection[Kind] | None = None,
        changes: Iterable[ConfigChange] = (),
    ) -> None:
        self._state = ConfigState(kinds)
        self._subscribers: list[Subscriber] = []
        self.ready = False
        self.applied_offset = -1
        for change in changes:
            self.apply(change)

    def subscribe(self, callback: Subscriber) -> None:
        self._subscribers.append(callback)

    def apply(self, change: ConfigChange) -> bool:
        """As if the next feed record were `change`; True when it was newer (subscribers called)."""
        self.applied_offset += 1
        if not self._state.apply(change):
            return False
        notify(self._subscribers, change)
        return True

    async def start(self) -> None:
        self.ready = True

    async def stop(self) -> None:
        self.ready = False

    def current(self, workspace_id: str, kind: Kind, name: str = "") -> ConfigChange | None:
        return self._state.current(workspace_id, kind, name)

    def of_workspace(self, workspace_id: str, kind: Kind) -> list[ConfigChange]:
        return self._state.of_workspace(workspace_id, kind)

    def of_kind(self, kind: Kind) -> list[ConfigChange]:
        return self._state.of_kind(kind)


async def publish_changes(bootstrap: str, topic: str, changes: Iterable[ConfigChange]) -> list[int]:
    """Publish `changes` to the feed in order (acks=all), creating the topic if missing;
    returns their offsets."""
    await ensure_topics(CommonSettings(kafka_bootstrap=bootstrap), [topic])
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        offsets = []
        for change in changes:
            key, value = encode(change)
            metadata = await producer.send_and_wait(topic, value, key=key)
            offsets.append(metadata.offset)
        return offsets
    finally:
        await producer.stop()
