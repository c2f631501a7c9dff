"""ConfigFollower: one per service process, reads the change feed into memory.

It assigns itself the topic's partitions (no consumer group: every instance reads
everything, and there is no committed offset to expire), reads from the beginning up to the
end offsets taken at start — then it is ready — and follows the topic in a task. The
newest version per object wins (state.py). A record it can't decode is logged by offset
(never its content) and skipped, so one bad record never stalls the feed; a subscriber that
raises is logged and the feed goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Collection

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from retarget.config.records import ConfigChange, Kind, decode
from retarget.config.state import ConfigState, Subscriber, notify

log = logging.getLogger(__name__)

_RETRY_S = 1.0  # after a failed fetch (broker away): the client reconnects meanwhile


class ConfigFollower:
    def __init__(
        self,
        bootstrap_servers: str,
        topic: str,
        *,
        kinds: Collection[Kind] | None = None,
        topic_wait_s: float = 60.0,
    ) -> None:
        self._bootstrap = bootstrap_servers
        self._topic = topic
        self._state = ConfigState(kinds)
        self._subscribers: list[Subscriber] = []
        self._topic_wait_s = topic_wait_s
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self.ready = False
        self.applied_offset = -1

    def subscribe(self, callback: Subscriber) -> None:
        """`callback(change)` after each change that is newer than what was known of its object."""
        self._subscribers.append(callback)

    def current(self, workspace_id: str, kind: Kind, name: str = "") -> ConfigChange | None:
        return self._state.current(workspace_id, kind, name)

    def of_workspace(self, workspace_id: str, kind: Kind) -> list[ConfigChange]:
        return self._state.of_workspace(workspace_id, kind)

    def of_kind(self, kind: Kind) -> list[ConfigChange]:
        return self._state.of_kind(kind)

    async def start(self) -> None:
        """Return once every record up to the end offsets seen now is applied (ready)."""
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap,
            group_id=None,
            enable_auto_commit=False,
            isolation_level="read_committed",
        )
        await consumer.start()
        self._consumer = consumer
        try:
            partitions = await self._partitions(consumer)
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            ends = await consumer.end_offsets(partitions)
            while not await self._reached(consumer, ends):
                await self._poll(consumer)
        except BaseException:
            self._consumer = None
            await consumer.stop()
            raise
        self.ready = True
        log.info("config feed read", extra={"topic": self._topic, "offset": self.applied_offset})
        self._task = asyncio.create_task(self._follow(consumer), name="config-follower")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None
        self.ready = False

    async def _partitions(self, consumer: AIOKafkaConsumer) -> list[TopicPartition]:
        """The topic's partitions, waiting a while for a topic another process is creating."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._topic_wait_s
        while True:
            # a consumer keeps metadata only of the topics it reads: ask the cluster instead
            cluster = await consumer._client.fetch_all_metadata()
            found = cluster.partitions_for_topic(self._topic)
            if found:
                return [TopicPartition(self._topic, p) for p in sorted(found)]
            if loop.time() > deadline:
                raise RuntimeError(
                    f"topic {self._topic} does not exist after {self._topic_wait_s}s: "
                    "create it with `retarget kafka create-topics`"
                )
            await asyncio.sleep(0.2)

    @staticmethod
    async def _reached(consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int]) -> bool:
        for partition, end in ends.items():
            if await consumer.position(partition) < end:
                return False
        return True

    async def _follow(self, consumer: AIOKafkaConsumer) -> None:
        while True:
            try:
                await self._poll(consumer)
            except asyncio.CancelledError:
                raise
            except Exception:  # the broker went away, a timeout: aiokafka reconnects
                log.warning("config feed fetch failed; retrying", exc_info=True)
                await asyncio.sleep(_RETRY_S)

    async def _poll(self, consumer: AIOKafkaConsumer) -> None:
        batches = await consumer.getmany(timeout_ms=1000, max_records=500)
        for records in batches.values():
            for record in records:
                self._take(record)

    def _take(self, record: ConsumerRecord[bytes, bytes]) -> None:
        try:
            change = decode(record.key or b"", record.value or b"")
        except ValueError as exc:
            log.warning(
                "config record skipped: undecodable",
                extra={"topic": record.topic, "offset": record.offset, "reason": str(exc)},
            )
        else:
            if self._state.apply(change):
                notify(self._subscribers, change)
        self.applied_offset = record.offset
