"""Segmenter workers as processes on the real broker: identity merge, exits, on-time firing,
kill -9 and restart, and partitions moving to a second worker — nothing lost, nothing twice.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from retarget.common.identity import trigger_id
from retarget.common.kafka import ensure_topics
from retarget.common.schemas import TrackedEvent
from retarget.common.settings import CommonSettings

from .conftest import Kafka, Worker

pytestmark = pytest.mark.integration


def now() -> datetime:
    return datetime.now(UTC)


def event(ws: str, kind: str, *, anon: str | None, user: str | None = None, **fields) -> TrackedEvent:
    at = now()
    return TrackedEvent(
        workspace_id=ws,
        type=kind,
        message_id=uuid.uuid4().hex,
        timestamp=at,
        received_at=at,
        anonymous_id=anon,
        user_id=user,
        **fields,
    )


def cart_add(ws: str, anon: str | None, user: str | None = None) -> TrackedEvent:
    props = {"product_id": "boot-1", "name": "Trail Boot", "price": 89.5, "currency": "EUR"}
    return event(ws, "track", anon=anon, user=user, event="Product Added", properties=props)


def identify(ws: str, anon: str | None, email: str, user: str | None = None) -> TrackedEvent:
    return event(ws, "identify", anon=anon, user=user, traits={"email": email, "firstName": "Ann"})


def order(ws: str, anon: str | None, user: str | None = None) -> TrackedEvent:
    props = {"order_id": uuid.uuid4().hex[:8], "total": 89.5, "currency": "EUR"}
    return event(ws, "track", anon=anon, user=user, event="Order Completed", properties=props)


async def wait_processed(worker: Worker, count: int, timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await asyncio.to_thread(worker.metric, "retarget_segmenter_events_total") >= count:
            return
        await asyncio.sleep(0.1)
    pytest.fail(f"{worker.name} did not process {count} events in {timeout_s}s:\n{worker.tail()}")


async def carts(kafka: Kafka, ws: str, n: int, *, buy_every: int = 0) -> tuple[list[str], int]:
    """n identified visitors add to cart; every `buy_every`-th buys. Returns the expected trigger ids."""
    expected: list[str] = []
    sent = 0
    for i in range(n):
        visitor = f"v{i}-{uuid.uuid4().hex[:6]}"
        add = cart_add(ws, visitor)
        await kafka.send(identify(ws, visitor, f"{visitor}@example.com"), add)
        sent += 2
        if buy_every and i % buy_every == 0:
            await kafka.send(order(ws, visitor))
            sent += 1
        else:
            expected.append(trigger_id(ws, "abandoned_cart", visitor, add.message_id))
    return expected, sent


async def test_merge_exit_and_a_quiet_visitor_firing_on_time(start_worker, kafka: Kafka, workspace_id: str):
    # RETARGET_CART_WAIT_S: the shorthand the thin-path e2e test and the demo use
    worker = start_worker("segmenter", RETARGET_CAMPAIGN_WAITS="{}", RETARGET_CART_WAIT_S="1")
    await asyncio.to_thread(worker.wait_ready)
    kafka.start_reading()
    ws = workspace_id

    # anonymous cart, then the email (and a userId) at checkout, then gone: fires for the known user
    merged_add = cart_add(ws, "anon-merge")
    await kafka.send(merged_add, identify(ws, "anon-merge", "merge@example.com", user="user-merge"))
    # a cart followed by a server-side order keyed by the userId only: the exit cancels it
    await kafka.send(
        identify(ws, "anon-buyer", "buyer@example.com", user="user-buyer"), cart_add(ws, "anon-buyer")
    )
    await kafka.send(order(ws, None, user="user-buyer"))
    # a quiet visitor: nothing after the cart add, fired by the wall clock
    quiet_add = cart_add(ws, "anon-quiet")
    await kafka.send(identify(ws, "anon-quiet", "quiet@example.com"), quiet_add)

    await kafka.wait_for_triggers(2, timeout_s=20)
    markers = await kafka.after_markers(ws)  # a wrong extra trigger would have come before them
    by_profile = {t.profile_id: t for t in kafka.triggers if t.trigger_id not in markers}
    assert set(by_profile) == {"user-merge", "anon-quiet"}, worker.tail()
    merged = by_profile["user-merge"]
    assert merged.trigger_id == trigger_id(ws, "abandoned_cart", "user-merge", merged_add.message_id)
    assert merged.recipient.email == "merge@example.com" and merged.cart[0].name == "Trail Boot"
    quiet = by_profile["anon-quiet"]
    assert quiet.trigger_id == trigger_id(ws, "abandoned_cart", "anon-quiet", quiet_add.message_id)
    lag = (quiet.fired_at - quiet.due_at).total_seconds()
    assert 0 <= lag < 1.5, f"fired {lag:.2f}s after due"
    assert worker.metric("retarget_segmenter_merges_total") >= 1  # anon-buyer had no state to move
    assert worker.stop() == 0


async def test_kill_9_and_restart_loses_nothing_and_fires_nothing_twice(
    start_worker, kafka: Kafka, workspace_id: str
):
    # static membership: the restarted worker takes its partitions back without a session timeout
    worker = start_worker("segmenter", RETARGET_GROUP_INSTANCE_ID="worker-a")
    await asyncio.to_thread(worker.wait_ready)
    kafka.start_reading()

    fired_before, sent = await carts(kafka, workspace_id, 6, buy_every=3)
    await kafka.wait_for_triggers(len(fired_before), timeout_s=20)
    pending, more = await carts(kafka, workspace_id, 10, buy_every=3)
    await wait_processed(worker, sent + more)
    worker.kill9()  # the second batch is due in ~2 s: its waits live only in the changelog now

    restarted = start_worker("segmenter", port=worker.port, RETARGET_GROUP_INSTANCE_ID="worker-a")
    await asyncio.to_thread(restarted.wait_ready, 90)
    expected = fired_before + pending
    await kafka.wait_for_triggers(len(expected), timeout_s=30)
    markers = await kafka.after_markers(workspace_id)  # a repeat would have come before them
    ids = kafka.ids()
    assert set(ids) == set(expected) | markers, restarted.tail()
    assert max(ids.values()) == 1, f"fired twice: {[i for i, n in ids.items() if n > 1]}"
    assert restarted.stop() == 0


async def test_a_second_worker_takes_over_the_partitions_of_a_killed_one(
    start_worker, kafka: Kafka, workspace_id: str
):
    first = start_worker("first", RETARGET_STANDBY_REPLICAS="1")
    await asyncio.to_thread(first.wait_ready)
    second = start_worker("second", RETARGET_STANDBY_REPLICAS="1")
    await asyncio.to_thread(second.wait_ready, 60)
    kafka.start_reading()

    expected, sent = await carts(kafka, workspace_id, 16, buy_every=4)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        done = await asyncio.to_thread(
            lambda: (
                first.metric("retarget_segmenter_events_total")
                + second.metric("retarget_segmenter_events_total")
            )
        )
        if done >= sent:
            break
        await asyncio.sleep(0.1)
    assert (
        first.metric("retarget_segmenter_events_total") > 0
        and second.metric("retarget_segmenter_events_total") > 0
    )
    first.kill9()

    await kafka.wait_for_triggers(len(expected), timeout_s=40)
    markers = await kafka.after_markers(workspace_id)  # a repeat would have come before them
    ids = kafka.ids()
    assert set(ids) == set(expected) | markers, second.tail()
    assert max(ids.values()) == 1
    assert second.stop() == 0


async def test_a_worker_upgraded_from_the_agent_reading_events_carries_on_where_it_stopped(
    start_worker, kafka: Kafka, workspace_id: str
):
    """Before the events loop, faust's own group read the events topic: its offsets are where
    the loop starts (not the earliest record, which would replay the whole topic)."""
    settings = CommonSettings(kafka_bootstrap=kafka.bootstrap, topic_partitions=2)
    await ensure_topics(settings, [kafka.topics.events])
    await kafka.send(*(cart_add(workspace_id, anon=f"old-{i}") for i in range(6)))  # read by the old version
    faust_group = f"{kafka.topics.prefix}-segmenter"
    old = AIOKafkaConsumer(bootstrap_servers=kafka.bootstrap, group_id=faust_group, enable_auto_commit=False)
    await old.start()
    try:
        partitions = [TopicPartition(kafka.topics.events, p) for p in range(2)]
        old.assign(partitions)
        await old.seek_to_end(*partitions)
        await old.commit({tp: await old.position(tp) for tp in partitions})
    finally:
        await old.stop()
    await kafka.send(*(cart_add(workspace_id, anon=f"new-{i}") for i in range(3)))  # after the upgrade

    worker = start_worker("upgraded")
    await asyncio.to_thread(worker.wait_ready)
    await wait_processed(worker, 3)
    await asyncio.sleep(2)  # room for a replay of the old ones to show
    assert worker.metric("retarget_segmenter_events_total") == 3, worker.tail()
    assert worker.stop() == 0
