"""The shared Stage on the real broker: poison found by bisection, and a rebalance mid-batch.

The handler here is a stand-in for composer and sender (copy each record to an output topic);
what is under test is the Stage's loop: which records it dead-letters, what it commits, and
that it survives its partitions moving while it holds a batch.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence

import asyncpg
import msgspec
import pytest
from aiokafka import AIOKafkaConsumer, ConsumerRecord

from retarget.common.kafka import ensure_topics, make_consumer, make_producer
from retarget.common.schemas import DeadLettered
from retarget.common.settings import CommonSettings
from retarget.common.stage import Output, Stage

pytestmark = pytest.mark.integration


def _settings(stack: dict[str, str]) -> CommonSettings:
    return CommonSettings.model_validate({"kafka_bootstrap": stack["RETARGET_KAFKA_BOOTSTRAP"]})


async def _produce(settings: CommonSettings, topic: str, values: list[bytes], key: bytes | None) -> None:
    producer = make_producer(settings)
    await producer.start()
    try:
        for value in values:
            await producer.send(topic, value, key=key or value)
        await producer.flush()
    finally:
        await producer.stop()


async def _read(
    settings: CommonSettings, topic: str, enough: int, timeout_s: float = 90
) -> list[ConsumerRecord]:
    consumer = make_consumer(settings, topic, group_id=f"reader-{uuid.uuid4().hex[:8]}")
    await consumer.start()
    records: list[ConsumerRecord] = []
    try:
        async with asyncio.timeout(timeout_s):
            while len({r.value for r in records}) < enough:
                batches = await consumer.getmany(timeout_ms=200)
                records.extend(r for part in batches.values() for r in part)
    finally:
        await consumer.stop()
    return records


async def _stage_on(settings: CommonSettings, prefix: str, handler, **consumer_options: object) -> Stage:  # type: ignore[no-untyped-def]
    consumer = make_consumer(settings, f"{prefix}.in", group_id=f"{prefix}-stage", **consumer_options)
    producer = make_producer(settings)
    await consumer.start()
    await producer.start()
    return Stage("test", consumer, producer, handler, dead_letter_topic=f"{prefix}.dead", keepalive_s=0.5)


async def _close(stage: Stage) -> None:
    await stage.consumer.stop()
    await stage.producer.stop()


def _copier(prefix: str):  # type: ignore[no-untyped-def]
    async def copy(records: Sequence[ConsumerRecord]) -> list[Output]:
        if any(b"\x00" in (r.value or b"") for r in records):  # what PostgreSQL says about a NUL in text
            raise asyncpg.exceptions.CharacterNotInRepertoireError(
                'invalid byte sequence for encoding "UTF8": 0x00'
            )
        return [Output(f"{prefix}.out", r.key, r.value or b"") for r in records]

    return copy


async def test_a_poison_record_is_dead_lettered_and_its_partition_goes_on(
    stack: dict[str, str], topic_prefix: str
) -> None:
    settings = _settings(stack)
    await ensure_topics(settings, [f"{topic_prefix}.{t}" for t in ("in", "out", "dead")], partitions=1)
    values = [f"v{n}".encode() for n in range(40)]
    values[17] = b"v17-\x00-poison"
    await _produce(settings, f"{topic_prefix}.in", values, key=b"one-partition")
    stage = await _stage_on(settings, topic_prefix, _copier(topic_prefix))
    stop = asyncio.Event()
    task = asyncio.create_task(stage.run(stop))
    try:
        out = await _read(settings, f"{topic_prefix}.out", 39)
        [letter] = await _read(settings, f"{topic_prefix}.dead", 1)
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)
        await _close(stage)
    assert {r.value for r in out} == set(values) - {values[17]}
    dead = msgspec.json.decode(letter.value, type=DeadLettered)
    assert (dead.value, dead.offset, dead.stage) == ("v17-\x00-poison", 17, "test")
    assert dead.reason.startswith("CharacterNotInRepertoireError: invalid byte sequence")


@pytest.mark.parametrize("held_batch_ends", ["done", "failed"])
async def test_a_rebalance_while_a_batch_is_held_loses_nothing_and_crashes_nothing(
    stack: dict[str, str], topic_prefix: str, held_batch_ends: str
) -> None:
    """The first member holds its batch (as a sender waiting for tokens does) longer than the
    max poll interval, then a second member joins and takes partitions from it mid-batch. The
    held batch then succeeds (commit) or fails transiently (rewind): either must leave the
    revoked partitions alone — seeking one raised IllegalStateError and killed the process."""
    settings = _settings(stack)
    await ensure_topics(settings, [f"{topic_prefix}.{t}" for t in ("in", "out", "dead")], partitions=4)
    values = [f"v{n}".encode() for n in range(400)]
    await _produce(settings, f"{topic_prefix}.in", values, key=None)
    holding, release = asyncio.Event(), asyncio.Event()
    copy = _copier(topic_prefix)

    async def hold_first_batch(records: Sequence[ConsumerRecord]) -> list[Output]:
        if not release.is_set():
            holding.set()
            await release.wait()
            if held_batch_ends == "failed":
                raise ConnectionResetError("the database went away")
        return await copy(records)

    options = {"max_poll_interval_ms": 4000, "session_timeout_ms": 6000, "heartbeat_interval_ms": 1000}
    first = await _stage_on(settings, topic_prefix, hold_first_batch, **options)
    stop = asyncio.Event()
    tasks = [asyncio.create_task(first.run(stop))]
    second: Stage | None = None
    try:
        await asyncio.wait_for(holding.wait(), 60)
        await asyncio.sleep(6)  # past max_poll_interval_ms: without polling meanwhile it is evicted
        assert len(first.consumer.assignment()) == 4, "the member holding a batch left its group"
        second = await _stage_on(settings, topic_prefix, copy, **options)
        tasks.append(asyncio.create_task(second.run(stop)))
        await _until_revoked(first.consumer, timeout_s=60)
        release.set()
        out = await _read(settings, f"{topic_prefix}.out", len(values))
        assert not any(t.done() for t in tasks), [t.exception() for t in tasks if t.done()]
    finally:
        release.set()
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 60)
        for stage in (first, second):
            if stage is not None:
                await _close(stage)
    assert {r.value for r in out} == set(values)  # duplicates allowed (at-least-once), no loss
    for t in tasks:
        assert t.exception() is None


async def _until_revoked(consumer: AIOKafkaConsumer, timeout_s: float) -> None:
    async with asyncio.timeout(timeout_s):
        while len(consumer.assignment()) == 4:  # noqa: ASYNC110 - no event for an assignment change
            await asyncio.sleep(0.1)


def _lag(stage: str, topic: str) -> float:
    from prometheus_client import REGISTRY

    return sum(
        s.value
        for metric in REGISTRY.collect()
        if metric.name == "retarget_stage_consumer_lag"
        for s in metric.samples
        if s.labels["stage"] == stage and s.labels["topic"] == topic
    )


async def test_consumer_lag_grows_while_a_batch_is_held_and_falls_to_zero_once_committed(
    stack: dict[str, str], topic_prefix: str
) -> None:
    settings = _settings(stack)
    topic = f"{topic_prefix}.in"
    await ensure_topics(settings, [f"{topic_prefix}.{t}" for t in ("in", "out", "dead")], partitions=2)
    release = asyncio.Event()
    copy = _copier(topic_prefix)

    async def held(records: Sequence[ConsumerRecord]) -> list[Output]:
        await release.wait()  # stuck, as a sender waiting for tokens is: nothing committed
        return await copy(records)

    stage = await _stage_on(settings, topic_prefix, held)
    stage.lag_every_s = 0.2
    stop = asyncio.Event()
    task = asyncio.create_task(stage.run(stop))

    async def lag_becomes(expected: int) -> None:
        deadline = asyncio.get_running_loop().time() + 90  # generous: a loaded machine
        while asyncio.get_running_loop().time() < deadline:
            if _lag("test", topic) == expected:
                return
            await asyncio.sleep(0.2)
        pytest.fail(f"consumer lag {_lag('test', topic)}, not {expected}")

    try:
        await _produce(settings, topic, [f"v{n}".encode() for n in range(10)], key=None)
        await lag_becomes(10)
        await _produce(settings, topic, [f"w{n}".encode() for n in range(5)], key=None)
        await lag_becomes(15)  # measured apart from the stuck batch
        release.set()
        await lag_becomes(0)
    finally:
        release.set()
        stop.set()
        await asyncio.wait_for(task, 60)
        await _close(stage)
