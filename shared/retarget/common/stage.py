"""A consume → handle → produce → commit loop, the backbone of composer and sender.

Ordering of effects is what makes it safe: a batch's outputs are produced and acknowledged
by Kafka before the batch's offsets are committed. A crash anywhere replays the batch, and
the handlers downstream are idempotent, so nothing is lost and the visible result is once.

A record the handler can't use is its own business: it returns a dead-letter Output for it
(see `dead_letter`). An exception that escapes the handler is taken as transient (the
database is down, say): nothing is committed, the consumer rewinds to the last commit and
the batch is retried after a backoff — never dropped.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition

from retarget.common.metrics import STAGE_BATCH_SECONDS, STAGE_RECORDS
from retarget.common.schemas import DeadLettered, encode

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Output:
    topic: str
    key: bytes | None
    value: bytes


Handler = Callable[[Sequence[ConsumerRecord]], Awaitable[list[Output]]]


def dead_letter(record: ConsumerRecord, *, stage: str, reason: str, topic: str) -> Output:
    raw: bytes = record.value or b""
    try:
        value, encoding = raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        value, encoding = base64.b64encode(raw).decode(), "base64"
    letter = DeadLettered(
        stage=stage,
        reason=reason,
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        key=record.key.decode("utf-8", "replace") if record.key else None,
        value=value,
        value_encoding=encoding,  # type: ignore[arg-type]
        at=datetime.now(UTC),
    )
    return Output(topic, record.key, encode(letter))


class Stage:
    def __init__(
        self,
        name: str,
        consumer: AIOKafkaConsumer,
        producer: AIOKafkaProducer,
        handler: Handler,
        *,
        max_batch: int = 500,
        retry_backoff_s: float = 1.0,
    ) -> None:
        self.name = name
        self.consumer = consumer
        self.producer = producer
        self.handler = handler
        self.max_batch = max_batch
        self.retry_backoff_s = retry_backoff_s
        self.batches_done = 0

    async def run(self, stop: asyncio.Event) -> None:
        """Process batches until `stop` is set; the batch in hand is finished and committed."""
        failures = 0
        while not stop.is_set():
            batches = await self.consumer.getmany(timeout_ms=200, max_records=self.max_batch)
            records = [r for part in batches.values() for r in part]
            if not records:
                continue
            started = time.perf_counter()
            try:
                outputs = await self.handler(records)
                await self._produce_all(outputs)
                await self.consumer.commit()
            except asyncio.CancelledError:
                raise
            except Exception:
                if stop.is_set():  # the handler gave up because we are stopping: replayed on restart
                    log.info(
                        "stopping mid-batch; it is replayed from the last commit", extra={"stage": self.name}
                    )
                    await self._rewind(batches.keys())
                    break
                failures += 1
                delay = min(self.retry_backoff_s * 2 ** (failures - 1), 30.0)
                log.exception(
                    "batch failed; rewinding to the last commit",
                    extra={"stage": self.name, "records": len(records), "retry_in_s": delay},
                )
                STAGE_RECORDS.labels(self.name, "retried").inc(len(records))
                await self._rewind(batches.keys())
                await _sleep_unless(stop, delay)
                continue
            failures = 0
            self.batches_done += 1
            STAGE_RECORDS.labels(self.name, "processed").inc(len(records))
            STAGE_BATCH_SECONDS.labels(self.name).observe(time.perf_counter() - started)

    async def _produce_all(self, outputs: list[Output]) -> None:
        futures = [await self.producer.send(o.topic, o.value, key=o.key) for o in outputs]
        if futures:
            await asyncio.gather(*futures)

    async def _rewind(self, partitions: object) -> None:
        for tp in partitions:  # type: ignore[attr-defined]
            assert isinstance(tp, TopicPartition)
            committed = await self.consumer.committed(tp)
            if committed is None:
                await self.consumer.seek_to_beginning(tp)
            else:
                self.consumer.seek(tp, committed)


async def _sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except TimeoutError:
        pass
