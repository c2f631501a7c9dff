"""Publishing to Kafka with a bound on waiting: acknowledged, or a 503 in bounded time.

A request is answered 200 only after Kafka acknowledged every one of its events (acks=all,
idempotent producer). When Kafka can't take them — not connected yet, too many events
already waiting for an ack, or no ack within `publish_timeout_s` — the request gets a 503
with Retry-After and the client sends it again; nothing is ever accepted and then dropped.
A timed-out event may still reach Kafka later, so the retry can duplicate it: the segmenter
ignores a messageId it has seen.

Kafka being down at startup does not stop the service: the producer connects in the
background, /readyz reports it, and requests get 503s until it is up.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner, murmur2

from retarget.common.faults import crash_point
from retarget.common.kafka import ensure_topics, make_producer
from retarget.ingest import metrics
from retarget.ingest.errors import Unavailable
from retarget.ingest.settings import IngestSettings

log = logging.getLogger(__name__)

Record = tuple[bytes, bytes]  # (key, value)


class EventPublisher(Protocol):
    async def start(self) -> None: ...

    async def publish(self, topic: str, records: Sequence[Record]) -> None:
        """Return once every record is acknowledged; raise Unavailable otherwise."""
        ...

    async def problem(self) -> str | None:
        """Why the publisher can't publish now (for /readyz); None when it can."""
        ...

    async def close(self) -> None: ...


class KafkaEventPublisher:
    def __init__(
        self,
        settings: IngestSettings,
        topics_to_create: list[str],
        *,
        producer_factory: Callable[[], AIOKafkaProducer] | None = None,
    ) -> None:
        self._settings = settings
        self._topics_to_create = topics_to_create
        self._factory = producer_factory or (lambda: make_producer(settings, **producer_options(settings)))
        self._producer: AIOKafkaProducer | None = None
        self._connected = asyncio.Event()
        self._connector: asyncio.Task[None] | None = None
        self._in_flight = 0

    async def start(self) -> None:
        """Connect in the background; wait up to kafka_connect_wait_s for the first success."""
        self._connector = asyncio.create_task(self._connect_until_done(), name="kafka-connect")
        try:
            await asyncio.wait_for(self._connected.wait(), self._settings.kafka_connect_wait_s)
        except TimeoutError:
            log.warning("Kafka not reachable yet; answering 503 until it is", extra=self._where())

    async def publish(self, topic: str, records: Sequence[Record]) -> None:
        producer = self._producer
        if producer is None:
            raise self._unavailable("Kafka is not connected")
        if self._in_flight + len(records) > self._settings.max_in_flight_events:
            raise self._unavailable("too many events are waiting for Kafka")
        self._in_flight += len(records)
        metrics.IN_FLIGHT_EVENTS.set(self._in_flight)
        started = time.perf_counter()
        try:
            crash_point("ingest.before_publish")
            # asyncio.timeout, not wait_for: wait_for wraps the send in a new task per request
            async with asyncio.timeout(self._settings.publish_timeout_s):
                await _send_all(producer, topic, records)
            crash_point("ingest.after_publish")  # acknowledged; the client's 200 not yet sent
        except TimeoutError:
            raise self._unavailable("Kafka did not acknowledge in time") from None
        except Exception as exc:  # aiokafka's KafkaError family, and connection errors
            log.warning("publish failed", extra={"error": repr(exc), "events": len(records)})
            raise self._unavailable("Kafka refused the events") from None
        finally:
            self._in_flight -= len(records)
            metrics.IN_FLIGHT_EVENTS.set(self._in_flight)
            metrics.PRODUCE_SECONDS.observe(time.perf_counter() - started)

    async def problem(self) -> str | None:
        if self._producer is None:
            return "not connected"
        try:
            await asyncio.wait_for(
                self._producer.client.fetch_all_metadata(), self._settings.readiness_timeout_s
            )
        except Exception as exc:
            return f"no metadata from the cluster: {exc!r}"
        return None

    async def close(self) -> None:
        """Deliver what is buffered (within the shutdown grace), then disconnect."""
        if self._connector is not None:
            self._connector.cancel()
        producer, self._producer = self._producer, None
        if producer is None:
            return
        try:
            await asyncio.wait_for(producer.flush(), self._settings.shutdown_grace_s)
        except TimeoutError:
            log.warning("producer flush timed out at shutdown")
        await producer.stop()

    async def _connect_until_done(self) -> None:
        delay = 0.5
        while True:
            producer = self._factory()
            try:
                await asyncio.wait_for(producer.start(), timeout=10)
                if self._settings.create_topics and self._topics_to_create:
                    await ensure_topics(self._settings, self._topics_to_create, timeout_s=10)
            except Exception as exc:
                log.info("Kafka connect failed; retrying", extra={**self._where(), "error": repr(exc)})
                await _stop_quietly(producer)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
                continue
            self._producer = producer
            self._connected.set()
            log.info("Kafka connected", extra=self._where())
            return

    def _unavailable(self, reason: str) -> Unavailable:
        return Unavailable(f"{reason}; nothing was accepted", retry_after_s=self._settings.retry_after_s)

    def _where(self) -> dict[str, str]:
        return {"bootstrap": self._settings.kafka_bootstrap}


def producer_options(settings: IngestSettings) -> dict[str, object]:
    """Ingest's tuning on top of the shared producer defaults (acks=all, idempotent, lz4)."""
    return {
        "linger_ms": settings.kafka_linger_ms,
        "max_batch_size": settings.kafka_max_batch_bytes,
        "partitioner": partition_by_cached_murmur2,
    }


@functools.lru_cache(maxsize=65536)
def _murmur2(key: bytes) -> int:
    return murmur2(key) & 0x7FFFFFFF  # type: ignore[no-any-return]


def _partition_of(key: bytes, count: int) -> int:
    """Where Kafka's default partitioner puts a keyed record among `count` partitions."""
    return _murmur2(key) % count


def partition_by_cached_murmur2(key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
    """aiokafka's default partitioner (Java's murmur2, so keys land where every client puts
    them), with the hash of recent keys remembered: aiokafka's murmur2 is pure Python, ~9% of a
    batch's CPU, and a visitor's events come in runs, so most keys were hashed moments ago."""
    if key is None:
        return DefaultPartitioner()(key, all_partitions, available)  # type: ignore[no-any-return]
    return all_partitions[_partition_of(key, len(all_partitions))]


async def _send_all(producer: AIOKafkaProducer, topic: str, records: Sequence[Record]) -> None:
    if len(records) == 1:  # the common single-event request: no gather machinery
        key, value = records[0]
        await (await producer.send(topic, value, key=key))
        return
    # the partition named, as the configured partitioner would choose it: aiokafka's send()
    # otherwise builds the topic's partition lists for every record to hand to the partitioner
    count = len(await producer.partitions_for(topic))
    acks = [
        await producer.send(topic, value, key=key, partition=_partition_of(key, count))
        for key, value in records
    ]
    # One by one, not gather: a record's future is resolved with the rest of its produce batch,
    # so nearly every await finds it done; gather added a callback and a wrapper per record
    # (~4% of a batch's CPU). The first failure raises here, as it did from gather.
    try:
        for ack in acks:
            await ack
    except BaseException:
        for ack in acks:  # as gather did: the others' failures are this one's, not log lines
            ack.add_done_callback(_mark_retrieved)
        raise


def _mark_retrieved(ack: asyncio.Future[Any]) -> None:
    if not ack.cancelled():
        ack.exception()


async def _stop_quietly(producer: AIOKafkaProducer) -> None:
    try:
        await producer.stop()
    except Exception:  # a producer that never started may fail to stop; nothing to release
        pass
