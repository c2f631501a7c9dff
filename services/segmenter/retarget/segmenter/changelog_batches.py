"""A table partition's changelog records sent as closed producer batches (fencing.py).

Why not `producer.send` per record: each call costs a future, a partitioner pass and an
accumulator append in Python, and its batch stays open for `linger_ms` before it leaves.
Recording a batch waits for three changelogs one after the other (due, profiles, positions),
so it waited out the linger three times per batch while the worker had nothing else to do.
A closed batch is drained at once, and one acknowledgement covers all its records.

Nothing else changes: aiokafka queues a partition's batches in the order given (a batch is
added only once the previous one of that partition was drained), the idempotent producer
numbers them like any other, and a batch that is full is closed and sent, the rest going
into the next one (the first record of a batch always fits, whatever its size).
"""

from __future__ import annotations

from collections.abc import Awaitable, Iterable
from typing import Any

#: a batch's acknowledgement (aiokafka's RecordMetadata of its first record) and its records
SentBatch = tuple[Awaitable[Any], int]


async def send_in_batches(
    producer: Any, topic: str, partition: int, records: Iterable[tuple[bytes, bytes | None]]
) -> list[SentBatch]:
    """`records` (key, value or None for a tombstone) in order, as closed batches, on a started
    aiokafka producer (fencing.py's transactional ones: a batch joins the open transaction)."""
    sent: list[SentBatch] = []
    batch, count = producer.create_batch(), 0
    for key, value in records:
        if batch.append(key=key, value=value, timestamp=None) is None:  # full: it closed itself
            sent.append((await producer.send_batch(batch, topic, partition=partition), count))
            batch, count = producer.create_batch(), 0
            if batch.append(key=key, value=value, timestamp=None) is None:
                raise RuntimeError("an empty producer batch refused a record")  # aiokafka never does
        count += 1
    if count:
        batch.close()  # closed: drained at once instead of lingering for more records
        sent.append((await producer.send_batch(batch, topic, partition=partition), count))
    return sent


def newest_offset(acknowledged: Any, count: int) -> int:
    """The offset of a batch's last record, from its acknowledgement (the first record's)."""
    offset: int = acknowledged.offset + count - 1
    return offset
