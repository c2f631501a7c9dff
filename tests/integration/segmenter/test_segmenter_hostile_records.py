"""Records written to the events topic by something other than ingest — garbage, a tombstone, no
key, a value near Kafka's limit, a timestamp in year 9999 — are dead-lettered with the reason;
the worker neither stalls the partition nor exits (a crash loop, as each restart replays them)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer
from aiokafka.partitioner import DefaultPartitioner

from retarget.common.schemas import DeadLettered, decoder, encode
from retarget.common.topics import visitor_key
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
    letters = await dead_letters(kafka.bootstrap, kafka.topics.dead_letter, 5, timeout_s=30)
    reasons = " | ".join(letter.reason for letter in letters)
    assert len(letters) >= 5, (reasons, worker.tail())
    assert "not a TrackedEvent" in reasons and "without a key" in reasons and "cut" in reasons
    assert "after the event was received" in reasons  # year 9999: ingest's bound, held here too
    assert worker.process.poll() is None, worker.tail()  # no exit: no crash loop
    assert worker.stop() == 0


async def test_events_produced_to_a_partition_their_key_does_not_hash_to_reach_one_profile(
    start_worker, kafka, workspace_id
):
    """A producer with another partitioner (or an explicit partition) put a visitor's events on
    the wrong partition: they are re-routed to the key's own one, so the visitor has one profile
    there, which the timer finds: the cart's reminder fires, once."""
    worker = start_worker("segmenter")
    await asyncio.to_thread(worker.wait_ready)
    kafka.start_reading()
    ws, every = workspace_id, [0, 1]
    first, added = identify(ws, "anon-wrong", "wrong@example.com"), cart_add(ws, "anon-wrong")
    key = visitor_key(ws, None, "anon-wrong")
    wrong = 1 - DefaultPartitioner()(key, every, every)
    for e in (first, added):
        stamp = int(e.received_at.timestamp() * 1000)
        await kafka.producer.send_and_wait(
            kafka.topics.events, encode(e), key=key, partition=wrong, timestamp_ms=stamp
        )
    triggers = await kafka.wait_for_triggers(1, timeout_s=90)
    assert [t.profile_id for t in triggers] == ["anon-wrong"], worker.tail()
    markers = await kafka.after_markers(ws)  # a repeat would be read before its partition's marker
    assert [t.profile_id for t in kafka.triggers if t.trigger_id not in markers] == ["anon-wrong"]
    assert await asyncio.to_thread(worker.metric, 'retarget_segmenter_events_total{outcome="rerouted"}') == 2
    assert worker.stop() == 0


async def test_a_worker_killed_after_re_routing_before_recording_replays_it_as_a_duplicate_only(
    start_worker, kafka, workspace_id
):
    """kill -9 once the re-routed copies are acknowledged, before the batch's position is recorded:
    the restart re-routes them again, and the owner takes the second copies as duplicates — one
    profile, one reminder."""
    worker = start_worker("segmenter", RETARGET_CRASH_AT="segmenter.after_sends@1")
    await asyncio.to_thread(worker.wait_ready)
    kafka.start_reading()
    ws, every = workspace_id, [0, 1]
    first, added = identify(ws, "anon-crash", "crash@example.com"), cart_add(ws, "anon-crash")
    key = visitor_key(ws, None, "anon-crash")
    wrong = 1 - DefaultPartitioner()(key, every, every)
    for e in (first, added):
        stamp = int(e.received_at.timestamp() * 1000)
        await kafka.producer.send_and_wait(
            kafka.topics.events, encode(e), key=key, partition=wrong, timestamp_ms=stamp
        )
    assert await asyncio.to_thread(worker.process.wait, 60) == -9, worker.tail()
    worker = start_worker("segmenter", port=worker.port)
    await asyncio.to_thread(worker.wait_ready)
    triggers = await kafka.wait_for_triggers(1, timeout_s=90)
    assert [t.profile_id for t in triggers] == ["anon-crash"], worker.tail()
    markers = await kafka.after_markers(ws)
    assert [t.profile_id for t in kafka.triggers if t.trigger_id not in markers] == ["anon-crash"]
    # the restart replayed the batch the kill cut: both records re-routed again
    assert await asyncio.to_thread(worker.metric, 'retarget_segmenter_events_total{outcome="rerouted"}') == 2
    assert worker.stop() == 0
