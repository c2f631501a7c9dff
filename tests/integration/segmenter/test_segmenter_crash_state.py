"""The crash-point test's state check alone, fast enough to repeat: one worker SIGKILLed at each
step of recording a batch (recording.py), restarted on the same local state each time, then
run clean; every visitor's profile must equal the oracle's (the same events through the same
rules, in memory, without a crash). No wait is due within the test, so nothing fires and the
check takes ~30 s instead of the long waits of test_segmenter_crash_points.py.

A loss seen there once (two visitors in events partition 0 without their identify, or their
identify and first cart add, the recorded position past those events) was not reproduced;
RETARGET_CRASH_STATE_ROUNDS=N repeats the test N times, each on fresh topics and state. The
ways found for it, each now raised instead of dead-lettered (the worker exits, its restart
replays from the recorded position): a closed database or a disk error, and RocksDB's own
errors, which rocksdict raises as a bare Exception ("IO error: lock hold by current process"
when a partition database faust has not released is opened again); the final check that
nothing was dead-lettered catches either.
"""

from __future__ import annotations

import asyncio
import json
import os

import httpx
import msgspec
import pytest

from retarget.common.kafka import ensure_topics
from retarget.common.settings import CommonSettings
from retarget.devstack.topic_reader import read_to_end

from .conftest import Kafka
from .test_segmenter_crash_points import STEPS, comparable, oracle, scenario, wait_exited

pytestmark = pytest.mark.integration

WAITS = {"abandoned_cart": "3600s"}  # nothing due during the test: the state alone is judged
ROUNDS = int(os.environ.get("RETARGET_CRASH_STATE_ROUNDS", "1"))


def state(profile: dict) -> dict:
    """What the events alone decide (not what fired): address, cart lines, ids remembered."""
    return {k: v for k, v in comparable(profile).items() if k in ("email", "cart", "message_ids")}


@pytest.mark.timeout(300)
@pytest.mark.parametrize("round_", range(ROUNDS))
async def test_after_a_crash_at_each_step_every_profile_equals_the_oracles(
    start_worker, kafka: Kafka, workspace_id: str, round_: int
):
    ws = f"{workspace_id}r{round_}"
    settings = CommonSettings(kafka_bootstrap=kafka.bootstrap, topic_partitions=2)
    await ensure_topics(settings, [kafka.topics.events, kafka.topics.triggers])
    events, _, visitors = scenario(ws, 48)
    await kafka.send(*events)
    env = {
        "RETARGET_BATCH_SIZE": "8",
        "RETARGET_GROUP_INSTANCE_ID": "w",
        "RETARGET_CAMPAIGN_WAITS": json.dumps(WAITS),
    }
    port = None
    for step in STEPS:
        crashing = start_worker("worker", port=port, RETARGET_CRASH_AT=f"{step}@3", **env)
        port = crashing.port
        assert await wait_exited(crashing) == -9, crashing.tail()
    restarted = start_worker("worker", port=port, **env)
    await asyncio.to_thread(restarted.wait_ready, 90)
    model = oracle(events)
    for e in events:
        await model.send(e)
    wanted = {v: state(msgspec.to_builtins(model.profile(ws, v))) for v in visitors}
    differ: list[tuple[str, dict | None, dict]] = []
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{restarted.port}", timeout=10) as http:
        for _ in range(120):  # until the clean worker has read every event
            differ = []
            for visitor in visitors:
                answer = await http.get(f"/profiles/{ws}/{visitor}")
                got = state(answer.json()) if answer.status_code == 200 else None
                if got != wanted[visitor]:
                    differ.append((visitor, got, wanted[visitor]))
            if not differ:
                break
            await asyncio.sleep(1)
    assert not differ, f"{len(differ)} profiles differ (logs in {restarted.log.parent}): {differ[:3]}"
    assert restarted.stop() == 0
    # an event dead-lettered for the worker's own trouble would be lost with its position moved on
    await ensure_topics(CommonSettings(kafka_bootstrap=kafka.bootstrap), [kafka.topics.dead_letter])
    letters = await read_to_end(kafka.bootstrap, kafka.topics.dead_letter, timeout_s=30)
    assert [letter.value for letter in letters] == []
