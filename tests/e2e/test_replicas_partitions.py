"""Two processes of each consumer (segmenter, composer, sender) on the real stack: their /readyz
name the partitions each owns, the pair's are disjoint and cover the input topic, and when one
stops the other takes them all — what `retarget demo --replicas` lets a person watch."""

from __future__ import annotations

import asyncio
import secrets
import time
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.e2e
PARTITIONS = 4
INPUTS = {"segmenter": "events", "composer": "triggers", "sender": "outbound"}
PORT_VARS = {"segmenter": "RETARGET_WEB_PORT", "composer": "RETARGET_OPS_PORT", "sender": "RETARGET_OPS_PORT"}


def owned(url: str, topic: str) -> set[int] | None:
    """The partitions of `topic` a process's /readyz lists; None while it is not ready."""
    try:
        response = httpx.get(f"{url}/readyz", timeout=3)
    except httpx.HTTPError:
        return None
    if response.status_code != 200:
        return None
    return set(response.json()["partitions"].get(topic, []))


def wait_for_split(urls: list[str], topic: str, timeout_s: float) -> list[set[int]]:
    """Until every process is ready and together they own each partition exactly once."""
    deadline = time.monotonic() + timeout_s
    seen: list[set[int] | None] = []
    while time.monotonic() < deadline:
        seen = [owned(url, topic) for url in urls]
        if all(s is not None for s in seen):
            split = [s for s in seen if s is not None]
            if sum(len(s) for s in split) == PARTITIONS and set().union(*split) == set(range(PARTITIONS)):
                return split
        time.sleep(0.5)
    pytest.fail(
        f"{topic}: no clean split of {PARTITIONS} partitions over {urls} within {timeout_s} s: {seen}"
    )


@pytest.mark.timeout(900)  # six processes start and rebalance twice on a shared, loaded machine
async def test_replicas_own_disjoint_partitions_that_cover_the_topic_and_take_over(
    launch, topic_prefix: str, tmp_path: Path
):
    common = {
        "RETARGET_TOPIC_PREFIX": topic_prefix,
        "RETARGET_TOPIC_PARTITIONS": str(PARTITIONS),
        "RETARGET_LINK_SECRET": secrets.token_hex(16),
        "RETARGET_SENDER_GROUP": f"{topic_prefix}-sender",
        "RETARGET_SESSION_TIMEOUT_S": "10",  # the segmenter notices a gone peer sooner
    }
    pairs = {}
    for name, port_var in PORT_VARS.items():
        pairs[name] = []
        for n in (1, 2):
            extra = {"RETARGET_DATA_DIR": str(tmp_path / f"segmenter-{n}")} if name == "segmenter" else {}
            pairs[name].append(launch(name, port_var, {**common, **extra}))
    for services in pairs.values():
        for service in services:
            await asyncio.to_thread(service.wait_healthy, 120)

    for name, services in pairs.items():
        topic = f"{topic_prefix}.{INPUTS[name]}.v1"
        split = await asyncio.to_thread(wait_for_split, [s.url for s in services], topic, 240)
        assert all(split), f"{name}: each replica owns some of {topic}: {split}"

    # one of each stops (SIGTERM: it leaves the group); the other takes all the partitions over
    for services in pairs.values():
        assert await asyncio.to_thread(services[1].stop) == 0
    for name, services in pairs.items():
        topic = f"{topic_prefix}.{INPUTS[name]}.v1"
        [alone] = await asyncio.to_thread(wait_for_split, [services[0].url], topic, 240)
        assert alone == set(range(PARTITIONS))
