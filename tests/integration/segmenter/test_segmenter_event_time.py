"""Decisions by event time on the real broker: a worker started only after a backlog of
events spanning due times was produced fires what a worker watching them live would have.

The first test's boundary events are stamped at or after their visitor's due time, so the
triggers are the same whichever of the events loop and the timer reaches the visitor first.
The second holds the read watermark (watermark.py): an order received before the due time
but still unread in the backlog, polls behind its cart add, cancels the reminder as it would
have on an idle worker — the timer fires nothing past what was read.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from retarget.common.identity import trigger_id
from retarget.common.kafka import ensure_topics
from retarget.common.schemas import TrackedEvent
from retarget.common.settings import CommonSettings

from .conftest import Kafka

pytestmark = pytest.mark.integration

WAIT = timedelta(seconds=2)  # abandoned_cart's wait in segmenter_env
MS = timedelta(milliseconds=1)


def stamped(ws: str, anon: str, at: datetime, kind: str = "track", **fields) -> TrackedEvent:
    return TrackedEvent(
        workspace_id=ws,
        type=kind,
        message_id=uuid.uuid4().hex,
        timestamp=at,
        received_at=at,
        anonymous_id=anon,
        **fields,
    )


def cart_add(ws: str, anon: str, at: datetime, product: str = "boot-1") -> TrackedEvent:
    props = {"product_id": product, "name": "Trail Boot", "price": 89.5, "currency": "EUR"}
    return stamped(ws, anon, at, event="Product Added", properties=props)


def order(ws: str, anon: str, at: datetime) -> TrackedEvent:
    props = {"order_id": uuid.uuid4().hex[:8], "total": 89.5, "currency": "EUR"}
    return stamped(ws, anon, at, event="Order Completed", properties=props)


def visitor(ws: str, kind: str, n: int, start: datetime) -> tuple[list[TrackedEvent], str]:
    """One visitor's events and the one trigger they must produce (the first cart add's)."""
    anon = f"{kind}-{n}-{uuid.uuid4().hex[:6]}"
    add = cart_add(ws, anon, start)
    due = start + WAIT
    events = [stamped(ws, anon, start - MS, "identify", traits={"email": f"{anon}@example.com"}), add]
    if kind == "order_just_after":  # used to cancel the reminder that was already due
        events.append(order(ws, anon, due + 5 * MS))
    elif kind == "order_at_due":  # a tie goes to the wait
        events.append(order(ws, anon, due))
    elif kind == "add_just_after":  # used to push the wait out and fire it for this later add
        events.append(cart_add(ws, anon, due + 5 * MS, product="boot-2"))
    return events, trigger_id(ws, "abandoned_cart", anon, add.message_id)


async def test_a_worker_started_after_the_backlog_fires_what_a_live_worker_would(
    start_worker, kafka: Kafka, workspace_id: str
):
    await ensure_topics(
        CommonSettings(kafka_bootstrap=kafka.bootstrap, topic_partitions=2), [kafka.topics.events]
    )
    start = datetime.now(UTC) - timedelta(minutes=10)  # every due time is long past
    expected: list[str] = []
    for n in range(10):
        for kind in ("quiet", "order_just_after", "order_at_due", "add_just_after"):
            events, trigger = visitor(workspace_id, kind, n, start + timedelta(seconds=n))
            await kafka.send(*events)
            expected.append(trigger)

    worker = start_worker("segmenter")  # only now: the whole backlog waits for it
    await asyncio.to_thread(worker.wait_ready)
    kafka.start_reading()
    await kafka.wait_for_triggers(len(expected), timeout_s=120)
    await asyncio.sleep(3)  # room for a wrong extra trigger (a restarted wait is due 2 s later)
    assert kafka.ids() == Counter(expected), worker.tail()
    assert {t.campaign for t in kafka.triggers} == {"abandoned_cart"}
    assert worker.stop() == 0


async def test_an_order_received_before_the_due_time_cancels_even_behind_a_backlog(
    start_worker, kafka: Kafka, workspace_id: str
):
    await ensure_topics(
        CommonSettings(kafka_bootstrap=kafka.bootstrap, topic_partitions=2), [kafka.topics.events]
    )
    start = datetime.now(UTC) - timedelta(minutes=10)

    def identified_cart(anon: str) -> list[TrackedEvent]:
        email = {"email": f"{anon}@example.com"}
        return [
            stamped(workspace_id, anon, start - MS, "identify", traits=email),
            cart_add(workspace_id, anon, start),
        ]

    buyers = [f"buyer-{n}-{uuid.uuid4().hex[:6]}" for n in range(4)]
    for anon in buyers:  # each cart add many polls ahead of its order (batches of 5 below)
        await kafka.send(*identified_cart(anon))
    await kafka.send(  # other visitors' page views between them, received before the due time too
        *(stamped(workspace_id, f"reader-{n}", start + WAIT / 2, "page", name="Home") for n in range(60))
    )
    for anon in buyers:  # received 0.5 s before the due time: an idle worker cancels the reminder
        await kafka.send(order(workspace_id, anon, start + WAIT - 500 * MS))
    quiet = f"quiet-{uuid.uuid4().hex[:6]}"
    quiet_events = identified_cart(quiet)
    await kafka.send(*quiet_events)  # no order: its reminder must go out

    worker = start_worker("segmenter", RETARGET_BATCH_SIZE="5")
    await asyncio.to_thread(worker.wait_ready)
    kafka.start_reading()
    expected = {trigger_id(workspace_id, "abandoned_cart", quiet, quiet_events[1].message_id)}
    assert not await kafka.wait_for_ids(expected, timeout_s=120), worker.tail()
    markers = await kafka.after_markers(workspace_id)  # a wrong buyer reminder would come before
    assert kafka.ids() == Counter(expected | markers), worker.tail()
    assert worker.stop() == 0
