"""A consume → handle → produce → commit loop, the backbone of composer and sender.

Ordering of effects is what makes it safe: a batch's outputs are produced and acknowledged
by Kafka before the batch's offsets are committed. A crash anywhere replays the batch, and
the handlers downstream are idempotent, so nothing is lost and the visible result is once.

Failures come in two kinds (poison.py):

* a record the handler can't use is its own business: the handler returns a dead-letter
  Output for it (see `dead_letter`). When a *data* error (poison.is_data_error) escapes the
  handler instead, the Stage finds the record by bisection — it hands the halves of the batch
  to the handler again until the one failing record is alone — and dead-letters that record
  with the error as reason. Its neighbours go on. Handlers are idempotent, so handling a
  record twice during the search is harmless.
* a transient exception (poison.is_transient: the database is down, say): nothing is
  committed, the consumer rewinds to the last commit and the batch is retried after a
  backoff — never dropped, however long it lasts.
* anything else is a bug (a KeyError on one record's odd content, say). It is retried like
  a transient error, but once the same batch has failed that way `bug_retries` times in a
  row it is bisected like a data error, so a record that sets off a bug is dead-lettered
  instead of halting its partition for ever.

Rebalances: while the handler runs (it may wait minutes for rate-limit tokens) the Stage
keeps polling the consumer with every partition paused, so the member never passes the max
poll interval and is not thrown out of its group. A partition can still be revoked
mid-batch (another member joined); the Stage then neither commits nor seeks it — its new
owner replays it from the last commit (at-least-once, the outputs may be produced twice).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, MessageSizeTooLargeError

from retarget.common.faults import crash_point
from retarget.common.metrics import DEAD_LETTERS, STAGE_BATCH_SECONDS, STAGE_CONSUMER_LAG, STAGE_RECORDS
from retarget.common.poison import describe, is_data_error, is_transient
from retarget.common.schemas import DeadLettered, decoder, encode

log = logging.getLogger(__name__)

Batch = dict[TopicPartition, list[ConsumerRecord]]

_decode_dead_letter = decoder(DeadLettered)
_DEFAULT_MAX_REQUEST_SIZE = 1_048_576  # aiokafka's default max_request_size
_MAX_KEY = 1000  # of an output too large for Kafka, the most of its key its dead letter keeps


@dataclass(frozen=True)
class Output:
    topic: str
    key: bytes | None
    value: bytes


Handler = Callable[[Sequence[ConsumerRecord]], Awaitable[list[Output]]]


def dead_letter(record: ConsumerRecord, *, stage: str, reason: str, topic: str) -> Output:
    key = record.key.decode("utf-8", "replace") if record.key else None
    value = dead_letter_value(
        stage=stage,
        reason=reason,
        source=(record.topic, record.partition, record.offset),
        key=key,
        raw=record.value,
    )
    return Output(topic, record.key, value)


def dead_letter_value(
    *, stage: str, reason: str, source: tuple[str, int, int], key: str | None, raw: bytes | None
) -> bytes:
    """A DeadLettered record: the original bytes whole, where they came from, and why."""
    raw = raw or b""
    try:
        value, encoding = raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        value, encoding = base64.b64encode(raw).decode(), "base64"
    letter = DeadLettered(
        stage=stage,
        reason=reason,
        topic=source[0],
        partition=source[1],
        offset=source[2],
        key=key,
        value=value,
        value_encoding=encoding,  # type: ignore[arg-type]
        at=datetime.now(UTC),
    )
    return encode(letter)


class Stage:
    def __init__(
        self,
        name: str,
        consumer: AIOKafkaConsumer,
        producer: AIOKafkaProducer,
        handler: Handler,
        *,
        dead_letter_topic: str,
        max_batch: int = 500,
        retry_backoff_s: float = 1.0,
        keepalive_s: float = 1.0,
        bug_retries: int = 3,
        lag_every_s: float = 5.0,
    ) -> None:
        self.name = name
        self.consumer = consumer
        self.producer = producer
        self.handler = handler
        self.dead_letter_topic = dead_letter_topic
        self.dead_letters = DEAD_LETTERS.labels(name)  # the series exists, at 0, from the start
        self.max_batch = max_batch
        self.retry_backoff_s = retry_backoff_s
        self.keepalive_s = keepalive_s  # how often the consumer is polled while a batch is handled
        self.bug_retries = bug_retries  # failures by a bug (not data, not transient) before bisecting
        self.lag_every_s = lag_every_s
        self._lag_partitions: set[TopicPartition] = set()
        self.batches_done = 0
        self._stopping: asyncio.Event | None = None

    async def run(self, stop: asyncio.Event) -> None:
        """Process batches until `stop` is set; the batch in hand is finished and committed."""
        lag = asyncio.create_task(self._report_lag(stop))
        try:
            await self._process(stop)
        finally:
            lag.cancel()  # done before the caller stops the consumer it asks
            with contextlib.suppress(asyncio.CancelledError):
                await lag

    async def _report_lag(self, stop: asyncio.Event) -> None:
        """The group's lag (end minus committed offset) per assigned partition, apart from the
        batch loop: a stage stuck on one batch still shows its lag growing."""
        while not stop.is_set():
            try:
                await self._measure_lag()
            except asyncio.CancelledError:
                raise
            except Exception:  # a rebalance or a broker away: measured again next time
                log.debug("consumer lag not measured", exc_info=True)
            await _sleep_unless(stop, self.lag_every_s)

    async def _measure_lag(self) -> None:
        assigned = set(self.consumer.assignment())
        for gone in self._lag_partitions - assigned:  # moved to another member: it reports them
            with contextlib.suppress(KeyError):  # never measured
                STAGE_CONSUMER_LAG.remove(self.name, gone.topic, str(gone.partition))
        self._lag_partitions = assigned
        if not assigned:
            return
        ends = await self.consumer.end_offsets(list(assigned))
        for tp in assigned:
            committed = await self.consumer.committed(tp)
            lag = ends[tp] - (committed or 0)
            STAGE_CONSUMER_LAG.labels(self.name, tp.topic, str(tp.partition)).set(max(0, lag))

    async def _process(self, stop: asyncio.Event) -> None:
        failures = bug_failures = 0
        self._stopping = stop
        while not stop.is_set():
            batch: Batch = await self.consumer.getmany(timeout_ms=200, max_records=self.max_batch)
            records = [r for part in batch.values() for r in part]
            if not records:
                continue
            started = time.perf_counter()
            try:
                outputs = await self._handle_keeping_membership(
                    records, isolate_bugs=bug_failures >= self.bug_retries
                )
                crash_point("stage.after_handle")
                await self._produce_all(outputs)
                crash_point("stage.after_produce")
                await self._commit(batch)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if stop.is_set():  # the handler gave up because we are stopping: replayed on restart
                    log.info(
                        "stopping mid-batch; it is replayed from the last commit", extra={"stage": self.name}
                    )
                    await self._rewind(batch)
                    break
                failures += 1
                bug_failures = 0 if is_transient(exc) else bug_failures + 1
                delay = min(self.retry_backoff_s * 2 ** (failures - 1), 30.0)
                log.exception(
                    "batch failed; rewinding to the last commit",
                    extra={"stage": self.name, "records": len(records), "retry_in_s": delay},
                )
                STAGE_RECORDS.labels(self.name, "retried").inc(len(records))
                await self._rewind(batch)
                await _sleep_unless(stop, delay)
                continue
            failures = bug_failures = 0
            self.batches_done += 1
            STAGE_RECORDS.labels(self.name, "processed").inc(len(records))
            STAGE_BATCH_SECONDS.labels(self.name).observe(time.perf_counter() - started)

    async def _handle_keeping_membership(
        self, records: list[ConsumerRecord], *, isolate_bugs: bool = False
    ) -> list[Output]:
        """Run the handler; meanwhile poll with every partition paused, so the group keeps us."""
        task = asyncio.ensure_future(self._handle_isolating_poison(records, isolate_bugs=isolate_bugs))
        try:
            while not task.done():
                await asyncio.wait({task}, timeout=self.keepalive_s)
                if not task.done():
                    await self._poll_paused()
        finally:
            if not task.done():
                task.cancel()
            self.consumer.resume(*self.consumer.assignment())
        return task.result()

    async def _poll_paused(self) -> None:
        # A partition assigned since the last pause (a rebalance) is paused here too; a record
        # fetched in the meantime is put back by seeking to it, so nothing is skipped.
        self.consumer.pause(*self.consumer.assignment())
        fetched: Batch = await self.consumer.getmany(timeout_ms=0)
        for tp, part in fetched.items():
            if part and tp in self.consumer.assignment():
                self.consumer.seek(tp, part[0].offset)

    def _is_records_fault(self, exc: Exception, isolate_bugs: bool) -> bool:
        if is_data_error(exc):
            return True
        stopping = self._stopping is not None and self._stopping.is_set()
        return isolate_bugs and not stopping and not is_transient(exc)

    async def _handle_isolating_poison(
        self, records: Sequence[ConsumerRecord], *, isolate_bugs: bool = False
    ) -> list[Output]:
        try:
            return await self.handler(records)
        except Exception as exc:
            if not self._is_records_fault(exc, isolate_bugs):
                raise
            if len(records) == 1:
                [record] = records
                log.warning(
                    "record dead-lettered: the handler failed on its data",
                    extra={"stage": self.name, "partition": record.partition, "offset": record.offset},
                )
                STAGE_RECORDS.labels(self.name, "dead_lettered").inc()
                return [
                    dead_letter(record, stage=self.name, reason=describe(exc), topic=self.dead_letter_topic)
                ]
            half = len(records) // 2
            first = await self._handle_isolating_poison(records[:half], isolate_bugs=isolate_bugs)
            return first + await self._handle_isolating_poison(records[half:], isolate_bugs=isolate_bugs)

    async def _produce_all(self, outputs: list[Output]) -> None:
        futures = []
        dead_letters = 0
        for o in outputs:
            try:
                futures.append(await self.producer.send(o.topic, o.value, key=o.key))
                dead_letters += o.topic == self.dead_letter_topic
            except MessageSizeTooLargeError:
                # The same output is as large on every replay: retrying would halt the
                # partition for ever. It is dead-lettered, cut to a size Kafka takes.
                letter = self._too_large(o)
                key = o.key[:_MAX_KEY] if o.key else o.key
                futures.append(await self.producer.send(self.dead_letter_topic, letter, key=key))
                dead_letters += 1
        if futures:
            await asyncio.gather(*futures)
        # counted once Kafka has them (a replayed batch counts its dead letters again)
        self.dead_letters.inc(dead_letters)

    def _too_large(self, output: Output) -> bytes:
        """A dead letter for an output over the producer's max request size, itself under it."""
        budget = int(getattr(self.producer, "_max_request_size", _DEFAULT_MAX_REQUEST_SIZE)) // 2
        STAGE_RECORDS.labels(self.name, "dead_lettered").inc()
        log.warning(
            "output too large for Kafka; dead-lettered, cut",
            extra={"stage": self.name, "topic": output.topic, "bytes": len(output.value)},
        )
        try:
            letter = (
                _decode_dead_letter.decode(output.value) if output.topic == self.dead_letter_topic else None
            )
        except ValueError:
            letter = None
        if letter is None:  # an ordinary output: where it came from is in the batch, not in it
            letter = _decode_dead_letter.decode(
                dead_letter_value(
                    stage=self.name,
                    reason=f"output to {output.topic} too large for Kafka",
                    source=(output.topic, -1, -1),
                    key=output.key.decode("utf-8", "replace") if output.key else None,
                    raw=output.value,
                )
            )
        size = len(letter.value)
        if letter.key is not None:
            letter.key = letter.key[:_MAX_KEY]
        letter.reason = f"{letter.reason[:1000]} (value of {size} chars cut: too large for Kafka)"
        value = encode(letter)
        while len(value) > budget and letter.value:
            keep = min(len(letter.value) - 1, int(len(letter.value) * budget / len(value) * 0.9))
            letter.value = letter.value[: max(keep, 0)]
            value = encode(letter)
        return value

    async def _commit(self, batch: Batch) -> None:
        """Commit the batch's partitions that are still ours; a revoked one is its new owner's."""
        assigned = self.consumer.assignment()
        offsets = {tp: part[-1].offset + 1 for tp, part in batch.items() if part and tp in assigned}
        if len(offsets) < len(batch):
            log.info("partitions revoked mid-batch; not committing them", extra={"stage": self.name})
        if not offsets:
            return
        try:
            await self.consumer.commit(offsets)
        except (CommitFailedError, IllegalStateError):
            # The group rebalanced while we committed: the partitions' owner (maybe us again,
            # from the last commit) replays the batch. Its outputs are acknowledged already.
            log.warning(
                "commit refused by a rebalance; the batch will be replayed", extra={"stage": self.name}
            )

    async def _rewind(self, batch: Batch) -> None:
        for tp in batch:
            if tp not in self.consumer.assignment():
                continue  # revoked: seeking it raises, and its new owner starts from the last commit
            try:
                committed = await self.consumer.committed(tp)
                if committed is None:
                    await self.consumer.seek_to_beginning(tp)
                else:
                    self.consumer.seek(tp, committed)
            except IllegalStateError:
                log.info("partition revoked while rewinding", extra={"stage": self.name})


async def _sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except TimeoutError:
        pass
