"""A zombie worker on the real broker: worker A freezes (SIGSTOP) in the middle of recording a
batch, is expelled from the group, worker B takes its partitions, recovers them and handles
newer events for the same visitors; then A is woken (SIGCONT) and finishes its batch.

Fenced (fencing.py), A's late changelog and position records never become visible: B's start
of each partition's transactional producer aborted A's open transaction and refuses A's
later sends and commits, so A exits without recording the batch. What a read_committed
reader of the changelogs sees — what faust's recovery restores — stays B's state, and a
third worker that restores everything from the changelogs ends with every profile equal to
the oracle's (the same events through the same rules, in memory).

Two places to freeze: after the batch's sends (A has yet to send its changelog records) and
inside the transactions (A's records are on the broker, uncommitted: B's recovery must not
restore them, B's fence aborts them).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import uuid
from pathlib import Path

import httpx
import msgspec
import pytest

from retarget.common.kafka import ensure_topics
from retarget.common.schemas import TrackedEvent
from retarget.common.settings import CommonSettings
from retarget.common.topics import visitor_key
from retarget.devstack.topic_reader import read_to_end
from retarget.segmenter.state import profile_decoder

from .conftest import Kafka, Worker
from .test_segmenter_crash_points import oracle, scenario, wait_exited
from .test_segmenter_crash_state import state
from .test_segmenter_workers import event

pytestmark = pytest.mark.integration

WAITS = {"abandoned_cart": "3600s"}  # nothing due during the test: the state alone is judged
ENV = {"RETARGET_BATCH_SIZE": "1000", "RETARGET_CAMPAIGN_WAITS": json.dumps(WAITS)}


def hat_add(ws: str, visitor: str) -> TrackedEvent:
    """A newer event for a visitor: a second product in the cart (the oracle's state shows it)."""
    props = {"product_id": "hat-1", "name": "Hat", "price": 19.0, "currency": "EUR"}
    return event(ws, "track", anon=visitor, event="Product Added", properties=props)


async def wait_frozen(worker: Worker, timeout_s: float = 120) -> None:
    """Until the process stopped itself at its crash point (state T in /proc)."""
    deadline = time.monotonic() + timeout_s
    stat = Path(f"/proc/{worker.process.pid}/stat")
    while time.monotonic() < deadline:
        if worker.process.poll() is not None:
            pytest.fail(f"{worker.name} exited with {worker.process.returncode}:\n{worker.tail()}")
        if (await asyncio.to_thread(stat.read_text)).rsplit(")", 1)[1].split()[0] == "T":
            return
        await asyncio.sleep(0.2)
    pytest.fail(f"{worker.name} never froze at its crash point:\n{worker.tail()}")


async def profiles_differing(port: int, ws: str, wanted: dict[str, dict]) -> list[tuple[str, dict | None]]:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
        differ = []
        for visitor, expected in wanted.items():
            answer = await http.get(f"/profiles/{ws}/{visitor}")
            got = state(answer.json()) if answer.status_code == 200 else None
            if got != expected:
                differ.append((visitor, got))
        return differ


async def until_equal(port: int, ws: str, wanted: dict[str, dict], timeout_s: float) -> list:
    deadline = time.monotonic() + timeout_s
    while True:
        differ = await profiles_differing(port, ws, wanted)
        if not differ or time.monotonic() > deadline:
            return differ
        await asyncio.sleep(1)


async def committed_profiles(bootstrap: str, changelog: str, ws: str, visitors: list[str]) -> dict:
    """Each visitor's profile as the changelog's committed records leave it (what recovery restores)."""
    last: dict[bytes, bytes | None] = {}
    for record in await read_to_end(bootstrap, changelog):
        last[record.key] = record.value
    out: dict[str, dict | None] = {}
    for visitor in visitors:
        raw = last.get(visitor_key(ws, None, visitor))
        out[visitor] = state(msgspec.to_builtins(profile_decoder.decode(raw))) if raw else None
    return out


@pytest.mark.timeout(420)
@pytest.mark.parametrize("frozen_at", ["segmenter.after_sends", "segmenter.in_changelog_transaction"])
async def test_a_worker_woken_after_its_partitions_moved_records_nothing_of_its_batch(
    start_worker, kafka: Kafka, workspace_id: str, frozen_at: str
):
    ws = f"{workspace_id}{uuid.uuid4().hex[:4]}"
    settings = CommonSettings(kafka_bootstrap=kafka.bootstrap, topic_partitions=2)
    await ensure_topics(settings, [kafka.topics.events, kafka.topics.triggers])
    first, _, visitors = scenario(ws, 24)
    await kafka.send(*first)
    # A freezes in its first batch that writes tables: the visitors in it get no record from A
    zombie = start_worker("a", RETARGET_CRASH_AT=f"{frozen_at}@1", RETARGET_CRASH_SIGNAL="SIGSTOP", **ENV)
    await wait_frozen(zombie)
    heir = start_worker("b", **ENV)
    await asyncio.to_thread(heir.wait_ready, 120)
    # newer events for half the visitors, handled by B (A's stale batch lacks them)
    later = [hat_add(ws, visitor) for visitor in visitors[::2]]
    await kafka.send(*later)
    model = oracle([*first, *later])
    for e in [*first, *later]:
        await model.send(e)
    wanted = {v: state(msgspec.to_builtins(model.profile(ws, v))) for v in visitors}
    differ = await until_equal(heir.port, ws, wanted, timeout_s=180)
    assert not differ, f"B never caught up (logs in {heir.log.parent}): {differ[:3]}"

    os.kill(zombie.process.pid, signal.SIGCONT)
    changelog = f"{kafka.topics.prefix}-segmenter-profiles-changelog"
    # until A exits, what recovery would restore is B's state: A's late records never show
    deadline = time.monotonic() + 120
    while zombie.process.poll() is None and time.monotonic() < deadline:
        seen = await committed_profiles(kafka.bootstrap, changelog, ws, visitors)
        stale = {v: got for v, got in seen.items() if got != wanted[v]}
        # (A's late records visible, or B restored A's aborted ones and skipped their events)
        assert not stale, f"committed != oracle (logs in {zombie.log.parent}): {list(stale.items())[:3]}"
        await asyncio.sleep(0.5)
    assert await wait_exited(zombie, timeout_s=5) == 70, zombie.tail()  # record_or_die: fenced
    # its fenced producer refuses the batch's records (aiokafka: ProducerFenced, then the
    # transaction is over: "not in transaction")
    assert "a batch could not be recorded" in zombie.log.read_text()
    seen = await committed_profiles(kafka.bootstrap, changelog, ws, visitors)
    assert {v: got for v, got in seen.items() if got != wanted[v]} == {}

    # a worker restoring every partition from the changelogs has exactly B's state
    assert heir.stop() == 0
    restored = start_worker("c", **ENV)
    await asyncio.to_thread(restored.wait_ready, 120)
    differ = await until_equal(restored.port, ws, wanted, timeout_s=120)
    assert not differ, f"restored state differs (logs in {restored.log.parent}): {differ[:3]}"
    assert restored.stop() == 0
