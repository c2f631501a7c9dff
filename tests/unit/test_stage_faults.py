"""The Stage's loop with an in-memory consumer and producer: which failures it retries,
which records it dead-letters, and that no failing record halts its partition for ever."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import asyncpg
import msgspec
import pytest
from aiokafka import ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaConnectionError, MessageSizeTooLargeError

from retarget.common.schemas import DeadLettered
from retarget.common.stage import Output, Stage, dead_letter

TP = TopicPartition("in", 0)


def _record(offset: int, value: bytes) -> ConsumerRecord:
    return ConsumerRecord(
        topic=TP.topic,
        partition=TP.partition,
        offset=offset,
        timestamp=0,
        timestamp_type=0,
        key=value,
        value=value,
        checksum=None,
        serialized_key_size=len(value),
        serialized_value_size=len(value),
        headers=(),
    )


class FakeConsumer:
    """One partition; getmany hands out records from the position, commit remembers offsets."""

    def __init__(self, values: list[bytes]) -> None:
        self.records = [_record(n, v) for n, v in enumerate(values)]
        self.position = 0
        self.committed_offset: int | None = None
        self.paused = False
        self.changed = asyncio.Event()

    def assignment(self) -> set[TopicPartition]:
        return {TP}

    def pause(self, *tps: TopicPartition) -> None:
        self.paused = True

    def resume(self, *tps: TopicPartition) -> None:
        self.paused = False

    async def getmany(self, timeout_ms: int = 0, max_records: int | None = None):  # type: ignore[no-untyped-def]
        if self.paused or self.position >= len(self.records):
            await asyncio.sleep(0)
            return {}
        part = self.records[self.position : self.position + (max_records or len(self.records))]
        self.position += len(part)
        return {TP: part}

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.position = offset

    async def seek_to_beginning(self, tp: TopicPartition) -> None:
        self.position = 0

    async def committed(self, tp: TopicPartition) -> int | None:
        return self.committed_offset

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.committed_offset = offsets[TP]
        self.changed.set()


class FakeProducer:
    _max_request_size = 1_048_576  # aiokafka refuses a larger record in send(), as here

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes]] = []

    async def send(self, topic: str, value: bytes, key: bytes | None = None) -> asyncio.Future[None]:
        if len(value) + len(key or b"") + 100 > self._max_request_size:
            raise MessageSizeTooLargeError(f"The message is {len(value)} bytes")
        self.sent.append((topic, value))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


async def _run_until(stage: Stage, consumer: FakeConsumer, offset: int, timeout_s: float = 5) -> bool:
    stop = asyncio.Event()
    task = asyncio.create_task(stage.run(stop))
    try:
        async with asyncio.timeout(timeout_s):
            while consumer.committed_offset != offset:
                consumer.changed.clear()
                await consumer.changed.wait()
        return True
    except TimeoutError:
        return False
    finally:
        stop.set()
        await task


def _stage(consumer: FakeConsumer, producer: FakeProducer, handler) -> Stage:  # type: ignore[no-untyped-def]
    return Stage(
        "test",
        consumer,  # type: ignore[arg-type]
        producer,  # type: ignore[arg-type]
        handler,
        dead_letter_topic="dead",
        # 0.1 ms doubling: ten transient failures in a row back off ~0.1 s in all, not ~1 s
        retry_backoff_s=0.0001,
        keepalive_s=0.01,
    )


async def test_a_record_that_sets_off_a_bug_is_dead_lettered_after_a_few_tries_and_the_rest_go_on() -> None:
    consumer, producer = FakeConsumer([b"a", b"b", b"bad", b"c"]), FakeProducer()
    calls = 0

    async def handler(records: Sequence[ConsumerRecord]) -> list[Output]:
        nonlocal calls
        calls += 1
        lookup = {b"a": 1, b"b": 2, b"c": 3}
        return [Output("out", r.key, str(lookup[r.value or b""]).encode()) for r in records]  # KeyError

    stage = _stage(consumer, producer, handler)
    assert await _run_until(stage, consumer, 4), "a KeyError on one record halted its partition"
    out = [v for t, v in producer.sent if t == "out"]
    assert sorted(set(out)) == [b"1", b"2", b"3"]
    [dead] = [msgspec.json.decode(v, type=DeadLettered) for t, v in producer.sent if t == "dead"]
    assert (dead.value, dead.offset) == ("bad", 2) and dead.reason.startswith("KeyError")


@pytest.mark.parametrize(
    "error",
    [
        KafkaConnectionError("broker away"),
        ConnectionRefusedError("database away"),
        TimeoutError(),
        asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed"),
        asyncpg.exceptions.SerializationError("could not serialize access"),
        asyncpg.exceptions.TooManyConnectionsError("too many clients"),
    ],
    ids=type,
)
async def test_a_transient_error_is_retried_and_never_dead_letters_anything(error: Exception) -> None:
    consumer, producer = FakeConsumer([b"a", b"b"]), FakeProducer()
    failures = 0

    async def handler(records: Sequence[ConsumerRecord]) -> list[Output]:
        nonlocal failures
        if failures < 10:  # the broker or database is away for longer than the bug retries
            failures += 1
            raise error
        return [Output("out", r.key, r.value or b"") for r in records]

    stage = _stage(consumer, producer, handler)
    assert await _run_until(stage, consumer, 2)
    assert [t for t, _ in producer.sent] == ["out", "out"]


async def test_a_bug_set_off_only_while_stopping_dead_letters_nothing() -> None:
    consumer, producer = FakeConsumer([b"a"]), FakeProducer()
    stop = asyncio.Event()

    async def handler(records: Sequence[ConsumerRecord]) -> list[Output]:
        stop.set()
        raise RuntimeError("stopping")

    stage = _stage(consumer, producer, handler)
    stage.bug_retries = 0
    await asyncio.wait_for(stage.run(stop), 5)
    assert producer.sent == [] and consumer.committed_offset is None


async def test_a_dead_letter_too_large_for_kafka_is_cut_instead_of_halting_the_partition() -> None:
    # 200 KB of NUL bytes is a record Kafka took; its dead letter escapes each NUL as \u0000,
    # six times larger, over the producer's max request size — refused on every replay.
    consumer, producer = FakeConsumer([b"a", b"\x00" * 200_000, b"b"]), FakeProducer()

    async def handler(records: Sequence[ConsumerRecord]) -> list[Output]:
        return [
            dead_letter(r, stage="test", reason="NUL", topic="dead")
            if b"\x00" in (r.value or b"")
            else Output("out", r.key, r.value or b"")
            for r in records
        ]

    stage = _stage(consumer, producer, handler)
    assert await _run_until(stage, consumer, 3), "a dead letter Kafka refuses halted its partition"
    assert [v for t, v in producer.sent if t == "out"] == [b"a", b"b"]
    [dead] = [msgspec.json.decode(v, type=DeadLettered) for t, v in producer.sent if t == "dead"]
    assert (dead.offset, dead.partition) == (1, 0) and dead.reason.startswith(
        "NUL (value of 200000 chars cut"
    )
    assert set(dead.value) == {"\x00"} and 0 < len(dead.value) < 200_000


async def test_an_ordinary_output_too_large_for_kafka_is_dead_lettered_cut() -> None:
    consumer, producer = FakeConsumer([b"a", b"big", b"b"]), FakeProducer()

    async def handler(records: Sequence[ConsumerRecord]) -> list[Output]:
        return [
            Output("out", r.key, (r.value or b"") * (1_000_000 if r.value == b"big" else 1)) for r in records
        ]

    stage = _stage(consumer, producer, handler)
    assert await _run_until(stage, consumer, 3)
    assert [v for t, v in producer.sent if t == "out"] == [b"a", b"b"]
    [dead] = [msgspec.json.decode(v, type=DeadLettered) for t, v in producer.sent if t == "dead"]
    assert dead.topic == "out" and dead.key == "big" and "too large for Kafka" in dead.reason


async def test_a_data_error_is_dead_lettered_at_once_without_retrying_the_batch() -> None:
    consumer, producer = FakeConsumer([b"a", b"b\x00", b"c"]), FakeProducer()
    calls = 0

    async def handler(records: Sequence[ConsumerRecord]) -> list[Output]:
        nonlocal calls
        calls += 1
        if any(b"\x00" in (r.value or b"") for r in records):
            raise asyncpg.exceptions.CharacterNotInRepertoireError(
                'invalid byte sequence for encoding "UTF8": 0x00'
            )
        return [Output("out", r.key, r.value or b"") for r in records]

    stage = _stage(consumer, producer, handler)
    stage.bug_retries = 1_000_000  # only a data error may be isolated here
    assert await _run_until(stage, consumer, 3)
    assert [v for t, v in producer.sent if t == "out"] == [b"a", b"c"]
    [dead] = [msgspec.json.decode(v, type=DeadLettered) for t, v in producer.sent if t == "dead"]
    assert dead.offset == 1 and dead.reason.startswith("CharacterNotInRepertoireError")
    assert calls <= 5  # the batch, then its halves: bisection, not a retry loop


async def test_a_transient_error_is_never_isolated_even_after_bug_failures() -> None:
    # A bug failed the batch enough times to open bisection; then the database goes away.
    # That is the world's trouble, not the records': nothing may be dead-lettered for it.
    consumer, producer = FakeConsumer([b"a", b"b"]), FakeProducer()
    calls = 0

    async def handler(records: Sequence[ConsumerRecord]) -> list[Output]:
        nonlocal calls
        calls += 1
        if calls <= 3:
            raise RuntimeError("a bug, fixed meanwhile")
        if calls <= 8:
            raise ConnectionRefusedError("database away")
        return [Output("out", r.key, r.value or b"") for r in records]

    stage = _stage(consumer, producer, handler)
    assert await _run_until(stage, consumer, 2)
    assert [t for t, _ in producer.sent] == ["out", "out"]


async def test_only_bug_failures_in_a_row_open_bisection_not_transient_ones() -> None:
    # A long outage, then a bug that a retry or two gets past (a race, say): it is retried
    # like any bug, not dead-lettered because the outage failed the batch many times before.
    consumer, producer = FakeConsumer([b"a", b"b"]), FakeProducer()
    calls = 0

    async def handler(records: Sequence[ConsumerRecord]) -> list[Output]:
        nonlocal calls
        calls += 1
        if calls <= 5:
            raise ConnectionRefusedError("database away")
        if calls <= 7:
            raise RuntimeError("a bug a retry gets past")
        return [Output("out", r.key, r.value or b"") for r in records]

    stage = _stage(consumer, producer, handler)
    assert await _run_until(stage, consumer, 2)
    assert [t for t, _ in producer.sent] == ["out", "out"]


async def test_partitions_paused_while_a_long_batch_is_handled_are_resumed_after_it() -> None:
    # The first batch outlasts the keepalive (rate-limit tokens, say): the Stage pauses every
    # partition to keep polling. Left paused, the consumer would hand out nothing ever again.
    consumer, producer = FakeConsumer([b"a"]), FakeProducer()
    calls = 0

    async def handler(records: Sequence[ConsumerRecord]) -> list[Output]:
        nonlocal calls
        calls += 1
        if calls == 1:
            await asyncio.sleep(0.1)  # ten keepalive rounds
            consumer.records.append(_record(1, b"b"))  # more arrives meanwhile
        return [Output("out", r.key, r.value or b"") for r in records]

    stage = _stage(consumer, producer, handler)
    assert await _run_until(stage, consumer, 2), "the partitions stayed paused after a long batch"
    assert [v for t, v in producer.sent if t == "out"] == [b"a", b"b"]


async def test_every_dead_letter_is_counted_once_by_stage_and_the_series_starts_at_zero() -> None:
    from prometheus_client import REGISTRY

    def dead_letters() -> float | None:
        return REGISTRY.get_sample_value("retarget_dead_letters_total", {"stage": "counted"})

    # a handler's own dead letter, a record that sets off a bug (bisected), an output too large
    consumer, producer = FakeConsumer([b"a", b"mine", b"bug", b"big", b"b"]), FakeProducer()

    async def handler(records: Sequence[ConsumerRecord]) -> list[Output]:
        if any(r.value == b"bug" for r in records):
            raise KeyError("bug")
        return [
            dead_letter(r, stage="counted", reason="mine", topic="dead")
            if r.value == b"mine"
            else Output("out", r.key, (r.value or b"") * (1_000_000 if r.value == b"big" else 1))
            for r in records
        ]

    stage = Stage(
        "counted",
        consumer,  # type: ignore[arg-type]
        producer,  # type: ignore[arg-type]
        handler,
        dead_letter_topic="dead",
        retry_backoff_s=0.001,
        keepalive_s=0.01,
    )
    assert dead_letters() == 0  # an alert's increase() sees the first one
    assert await _run_until(stage, consumer, 5)
    assert len([t for t, _ in producer.sent if t == "dead"]) == 3
    assert dead_letters() == 3
