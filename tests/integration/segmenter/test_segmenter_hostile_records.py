"""Records written to the events topic by something other than ingest — garbage, a tombstone, no
key, a value near Kafka's limit, a timestamp in year 9999 — are dead-lettered with the reason;
the worker neither stalls the partition nor exits (a crash loop, as each restart replays them)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer

from retarget.common.schemas import DeadLettered, decoder, encode
from tests.integration.segmenter.test_segmenter_workers import cart_add, identify

_letters = decoder(DeadLettered)


async def dead_letters(bootstrap: str, topic: str, count: int, timeout_s: float) -> list[DeadLettered]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    found: list[DeadLettered] = []
    try:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while len(found) < count and asyncio.get_running_loop().time() < deadline:
            polled = await consumer.getmany(timeout_ms=500)
            found += [_letters.decode(r.value) for records in polled.values() for r in records]
    finally:
        await consumer.stop()
    return found


async def test_hostile_records_are_dead_lettered_and_the_worker_carries_on(start_worker, kafka, workspace_id):
    worker = start_worker("segmenter")
    await asyncio.to_thread(worker.wait_ready)
    kafka.start_reading()
    ws, events = workspace_id, kafka.topics.events
    future = cart_add(ws, "anon-future")
    future.timestamp = datetime(9999, 12, 31, 23, 59, tzinfo=UTC)
    hostile = [
        (f"{ws}:anon-garbage".encode(), b"\xff\x00 not json"),
        (f"{ws}:anon-tombstone".encode(), None),
        (None, encode(cart_add(ws, "anon-nokey"))),
        (f"{ws}:anon-huge".encode(), b"\xfe" * 1_000_000),  # its letter, base64, would not fit whole
        (f"{ws}:anon-future".encode(), encode(future)),
    ]
    for key, value in hostile:
        await kafka.producer.send_and_wait(events, value, key=key)
    quiet = cart_add(ws, "anon-quiet")
    await kafka.send(identify(ws, "anon-quiet", "quiet@example.com"), quiet)  # after them, same topic
    await kafka.wait_for_triggers(1, timeout_s=60)
    letters = await dead_letters(kafka.bootstrap, kafka.topics.dead_letter, 4, timeout_s=30)
    reasons = " | ".join(letter.reason for letter in letters)
    assert len(letters) >= 4, (reasons, worker.tail())
    assert "not a TrackedEvent" in reasons and "without a key" in reasons and "cut" in reasons
    assert worker.process.poll() is None, worker.tail()  # no exit: no crash loop
    assert worker.stop() == 0
