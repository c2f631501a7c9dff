"""The Kafka publisher's bounds, with a stub producer: a 503 in bounded time, never a hang."""

from __future__ import annotations

import asyncio
import gc
import time

import pytest
from aiokafka.partitioner import DefaultPartitioner

from retarget.common.kafka import make_producer
from retarget.ingest.errors import Unavailable
from retarget.ingest.publisher import KafkaEventPublisher, partition_by_cached_murmur2, producer_options
from retarget.ingest.settings import IngestSettings


class StubProducer:
    """Acks after `ack_after_s` (None: never); `start` fails when `reachable` is False."""

    def __init__(self, *, reachable: bool = True, ack_after_s: float | None = 0.0) -> None:
        self.reachable = reachable
        self.ack_after_s = ack_after_s
        self.sent: list[tuple[str, bytes, bytes | None]] = []
        self.partitions: list[int | None] = []  # what each send named

    async def partitions_for(self, topic: str) -> set[int]:
        return set(range(12))

    async def start(self) -> None:
        if not self.reachable:
            raise ConnectionError("no broker")

    async def send(
        self, topic: str, value: bytes, key: bytes | None = None, partition: int | None = None
    ) -> asyncio.Future[None]:
        self.sent.append((topic, value, key))
        self.partitions.append(partition)
        ack: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.ack_after_s is not None:
            asyncio.get_running_loop().call_later(self.ack_after_s, ack.set_result, None)
        return ack

    async def flush(self) -> None:
        pass

    async def stop(self) -> None:
        pass


def settings(**overrides: object) -> IngestSettings:
    base: dict[str, object] = {"publish_timeout_s": 0.2, "kafka_connect_wait_s": 0.05, "create_topics": False}
    return IngestSettings(**(base | overrides))  # type: ignore[arg-type]


async def started(publisher: KafkaEventPublisher) -> KafkaEventPublisher:
    await publisher.start()
    return publisher


async def test_acknowledged_records_return_normally() -> None:
    producer = StubProducer()
    publisher = await started(KafkaEventPublisher(settings(), [], producer_factory=lambda: producer))  # type: ignore[arg-type,return-value]
    await publisher.publish("t", [(b"k1", b"v1"), (b"k2", b"v2")])
    assert producer.sent == [("t", b"v1", b"k1"), ("t", b"v2", b"k2")]
    await publisher.close()


async def test_no_ack_in_time_is_unavailable_within_the_timeout() -> None:
    producer = StubProducer(ack_after_s=None)
    publisher = await started(KafkaEventPublisher(settings(), [], producer_factory=lambda: producer))  # type: ignore[arg-type,return-value]
    began = time.monotonic()
    with pytest.raises(Unavailable) as err:
        await publisher.publish("t", [(b"k", b"v")])
    # bounded (without the timeout the stub never acks and this hangs); generous: a loaded machine
    assert time.monotonic() - began < 5
    assert err.value.status == 503 and err.value.headers() == {"Retry-After": "2"}
    await publisher.close()


async def test_unreachable_kafka_is_unavailable_at_once_and_reported() -> None:
    publisher = await started(
        KafkaEventPublisher(settings(), [], producer_factory=lambda: StubProducer(reachable=False))  # type: ignore[arg-type,return-value]
    )
    with pytest.raises(Unavailable):
        await publisher.publish("t", [(b"k", b"v")])
    assert await publisher.problem() == "not connected"
    await publisher.close()


async def test_the_in_flight_bound_refuses_more_instead_of_queueing() -> None:
    producer = StubProducer(ack_after_s=0.1)
    publisher = await started(
        KafkaEventPublisher(settings(max_in_flight_events=3), [], producer_factory=lambda: producer)  # type: ignore[arg-type,return-value]
    )
    slow = asyncio.create_task(publisher.publish("t", [(b"k", b"v")] * 2))
    await asyncio.sleep(0)
    with pytest.raises(Unavailable):
        await publisher.publish("t", [(b"k", b"v")] * 2)
    await slow
    await publisher.publish("t", [(b"k", b"v")] * 3)  # room again once acknowledged
    await publisher.close()


def test_the_cached_partitioner_puts_every_key_where_kafkas_default_one_does() -> None:
    reference = DefaultPartitioner()
    for partitions in (1, 3, 12, 50):
        all_partitions = list(range(partitions))
        for n in range(2000):
            key = f"ws{n % 7}:visitor-{n}".encode()
            expected = reference(key, all_partitions, all_partitions)
            assert partition_by_cached_murmur2(key, all_partitions, all_partitions) == expected
            assert partition_by_cached_murmur2(key, all_partitions, all_partitions) == expected  # cached


async def test_a_batch_names_each_records_partition_where_kafkas_default_partitioner_puts_it() -> None:
    # a batch's records are sent with their partition named (aiokafka's send() built the
    # partition lists for every record to ask the partitioner): it must be the same partition
    producer = StubProducer()
    publisher = await started(KafkaEventPublisher(settings(), [], producer_factory=lambda: producer))  # type: ignore[arg-type,return-value]
    keys = [f"ws1:visitor-{n}".encode() for n in range(200)]
    await publisher.publish("t", [(key, b"v") for key in keys])
    reference, twelve = DefaultPartitioner(), list(range(12))
    assert producer.partitions == [reference(key, twelve, twelve) for key in keys]
    await publisher.close()


async def test_a_topic_grown_while_ingest_runs_is_partitioned_by_its_new_count_at_the_next_batch() -> None:
    # the count is read from the producer's metadata per request, never kept: once aiokafka's
    # metadata refresh (metadata_max_age_ms) sees the new partitions, batches use them, as
    # single events (the producer's own partitioner) do
    producer = StubProducer()
    publisher = await started(KafkaEventPublisher(settings(), [], producer_factory=lambda: producer))  # type: ignore[arg-type,return-value]
    keys = [f"ws1:visitor-{n}".encode() for n in range(50)]
    await publisher.publish("t", [(key, b"v") for key in keys])
    grown = list(range(24))

    async def partitions_for(topic: str) -> set[int]:
        return set(grown)

    producer.partitions_for = partitions_for  # type: ignore[method-assign]
    producer.partitions.clear()
    await publisher.publish("t", [(key, b"v") for key in keys])
    reference = DefaultPartitioner()
    assert producer.partitions == [reference(key, grown, grown) for key in keys]
    assert max(p for p in producer.partitions if p is not None) >= 12
    await publisher.close()


async def test_the_producer_partitions_with_the_cached_partitioner() -> None:
    producer = make_producer(settings(), **producer_options(settings()))
    assert producer._partitioner is partition_by_cached_murmur2


class FailingProducer(StubProducer):
    """Every record's future fails, as aiokafka fails all of a batch's records at once."""

    async def send(
        self, topic: str, value: bytes, key: bytes | None = None, partition: int | None = None
    ) -> asyncio.Future[None]:
        ack: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_soon(ack.set_exception, ConnectionError("broker gone"))
        return ack


async def test_a_failed_batch_is_unavailable_and_logs_no_unretrieved_failure_per_record() -> None:
    loop = asyncio.get_running_loop()
    unhandled: list[str] = []
    loop.set_exception_handler(lambda _, context: unhandled.append(context["message"]))
    producer = FailingProducer()
    publisher = await started(KafkaEventPublisher(settings(), [], producer_factory=lambda: producer))  # type: ignore[arg-type,return-value]
    with pytest.raises(Unavailable):
        await publisher.publish("t", [(b"k%d" % n, b"v") for n in range(20)])
    await asyncio.sleep(0.05)  # the done callbacks run
    gc.collect()  # futures whose failure nobody read complain when collected
    loop.set_exception_handler(None)
    assert unhandled == []
    await publisher.close()


class OneFailsProducer(StubProducer):
    """Record `bad` of a batch fails; the others (the last included) are acknowledged."""

    def __init__(self, bad: int) -> None:
        super().__init__()
        self.bad = bad

    async def send(
        self, topic: str, value: bytes, key: bytes | None = None, partition: int | None = None
    ) -> asyncio.Future[None]:
        ack: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if len(self.sent) == self.bad:
            ack.set_exception(ConnectionError("not leader for partition"))
        else:
            asyncio.get_running_loop().call_later(0.01, ack.set_result, None)
        self.sent.append((topic, value, key))
        return ack


@pytest.mark.parametrize("bad", [0, 3])
async def test_one_failed_record_of_a_batch_is_unavailable_not_a_200(bad: int) -> None:
    # the ack loop must read every record's ack, not only the last one's (the mutation
    # awaiting acks[-1] alone answered 200 for a batch whose record `bad` Kafka never took) (#19, atk19)
    producer = OneFailsProducer(bad)
    publisher = await started(KafkaEventPublisher(settings(), [], producer_factory=lambda: producer))  # type: ignore[arg-type,return-value]
    with pytest.raises(Unavailable):
        await publisher.publish("t", [(b"k%d" % n, b"v") for n in range(5)])
    await publisher.close()
