"""A worker SIGKILLed at each step of recording a batch (recording.py), restarted each time on
the same local state: every accepted cart fires exactly once (by trigger id), an order placed
before the crash cancels its reminder, and the state the worker ends with equals the oracle
(the same events through the same rules, in memory, without a crash).

"Nothing twice" is not judged after a pause: once the expected triggers arrived, one more
cart per partition (a marker) is sent, and the test waits for the markers' triggers. A
partition's triggers are produced in order and due in order, so a duplicate of an earlier
trigger — a replay, a re-armed tick — would have been read before its partition's marker.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import timedelta
from typing import Any

import httpx
import msgspec
import pytest

from retarget.common.identity import trigger_id
from retarget.common.kafka import ensure_topics
from retarget.common.schemas import TrackedEvent
from retarget.common.settings import CommonSettings
from retarget.common.testing import FakeClock
from retarget.devstack.topic_reader import read_to_end
from retarget.segmenter.campaigns import load_campaigns
from retarget.segmenter.settings import DEFAULT_CAMPAIGNS_DIR
from retarget.segmenter.testing import Harness

from .conftest import Kafka, Worker
from .test_segmenter_workers import cart_add, identify, order

pytestmark = pytest.mark.integration

PARTITIONS = 2
BATCH_SIZE = 8
# long enough that every event is handled before its cart is due, even across four crashes and
# restarts on a loaded machine: the test is about recording, not about a tick landing between
# two batches of one visitor's events (waits count from the event's time, firing is by the clock)
WAITS = {"abandoned_cart": "150s"}
ORACLE_CAMPAIGNS = load_campaigns(DEFAULT_CAMPAIGNS_DIR, wait_scale=1000, waits=WAITS)


def scenario(ws: str, visitors: int) -> tuple[list[TrackedEvent], list[str], list[str]]:
    """Each visitor identifies and adds the same boot twice (quantity 2: an add applied twice shows);
    every third orders. Returns the events, the expected trigger ids and the visitors."""
    events: list[TrackedEvent] = []
    expected: list[str] = []
    names: list[str] = []
    for i in range(visitors):
        visitor = f"c{i}-{uuid.uuid4().hex[:6]}"
        names.append(visitor)
        first, second = cart_add(ws, visitor), cart_add(ws, visitor)
        events += [identify(ws, visitor, f"{visitor}@example.com"), first, second]
        if i % 3 == 0:
            events.append(order(ws, visitor))
        else:
            expected.append(trigger_id(ws, "abandoned_cart", visitor, second.message_id))
    return events, expected, names


def oracle(events: list[TrackedEvent]) -> Harness:
    """The same events through the same rules, in memory, then every wait run out."""
    latest = max(e.timestamp for e in events)
    return Harness(ORACLE_CAMPAIGNS, clock=FakeClock(latest + timedelta(minutes=5)))


def comparable(profile: dict[str, Any]) -> dict[str, Any]:
    """What the events decide (not when the wall clock fired): cart lines with quantities,
    waits, exits, the campaigns fired, the ids remembered."""
    return {
        "email": profile.get("email"),
        "cart": {pid: item["line"] for pid, item in profile.get("cart", {}).items()},
        "pending": profile.get("pending", {}),
        "last_exit": profile.get("last_exit", {}),
        "fired": sorted(profile.get("last_fired", {})),
        "message_ids": sorted(profile.get("recent_message_ids", [])),
    }


async def wait_exited(worker: Worker, timeout_s: float = 120) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        code = worker.process.poll()
        if code is not None:
            return code
        await asyncio.sleep(0.2)
    pytest.fail(f"{worker.name} did not reach its crash point in {timeout_s}s:\n{worker.tail()}")


STEPS = [
    "segmenter.after_sends",
    "segmenter.in_changelog_transaction",  # records on the broker, transactions open (fencing.py)
    "segmenter.after_changelog",
    "segmenter.after_state_write",
    "segmenter.after_commit",
]


@pytest.mark.timeout(780)  # five crashes and restarts, then the long waits run out
async def test_a_crash_at_each_step_of_recording_a_batch_loses_nothing_and_fires_nothing_twice(
    start_worker, kafka: Kafka, workspace_id: str
):
    """One worker's local state through five crashes, one at each step, then a clean run."""
    ws = workspace_id
    settings = CommonSettings(kafka_bootstrap=kafka.bootstrap, topic_partitions=PARTITIONS)
    await ensure_topics(settings, [kafka.topics.events, kafka.topics.triggers])
    events, expected, visitors = scenario(ws, 48)
    await kafka.send(*events)
    kafka.start_reading()

    env = {
        "RETARGET_BATCH_SIZE": str(BATCH_SIZE),  # ~20 batches: each crash comes with some on record
        "RETARGET_GROUP_INSTANCE_ID": "w",  # a restart takes the partitions straight back
        "RETARGET_CAMPAIGN_WAITS": json.dumps(WAITS),
    }
    port = None
    for step in STEPS:  # the same name each time: the same local state, recovered after each crash
        crashing = start_worker("worker", port=port, RETARGET_CRASH_AT=f"{step}@3", **env)
        port = crashing.port
        assert await wait_exited(crashing) == -9, crashing.tail()
        assert f"crash point {step} reached" in crashing.log.read_text()

    restarted = start_worker("worker", port=port, **env)
    await asyncio.to_thread(restarted.wait_ready, 90)
    # due after every cart above in each partition (the same long wait, from an event time a
    # second after the last event's, so no timer pass holds both): once they fired, every earlier
    # trigger — and any repeat of one — was read. Stamped "now" they were due a whole wait after
    # the crashes and restarts instead.
    last_event_at = max(e.timestamp for e in events)
    markers = await kafka.after_markers(ws, timeout_s=240, at=last_event_at + timedelta(seconds=1))
    missing = await kafka.wait_for_ids(set(expected), timeout_s=5)
    assert not missing, f"never fired: {sorted(missing)}; see the logs in {restarted.log.parent}"

    ids = kafka.ids()
    assert set(ids) == set(expected) | set(markers)  # and none for the carts an order closed
    assert [i for i, n in ids.items() if n > 1] == [], "fired twice"

    model = oracle(events)
    for e in events:
        await model.send(e)
    await model.run_timer()
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{restarted.port}", timeout=10) as http:
        for visitor in visitors:
            answer = await http.get(f"/profiles/{ws}/{visitor}")
            assert answer.status_code == 200, answer.text
            want = model.profile(ws, visitor)
            assert want is not None
            assert comparable(answer.json()) == comparable(msgspec.to_builtins(want)), visitor
    assert restarted.stop() == 0
    # an event dead-lettered for the worker's own trouble would be lost with its position moved on
    await ensure_topics(CommonSettings(kafka_bootstrap=kafka.bootstrap), [kafka.topics.dead_letter])
    letters = await read_to_end(kafka.bootstrap, kafka.topics.dead_letter, timeout_s=30)
    assert [letter.value for letter in letters] == []
