"""Ingest killed (SIGKILL, via RETARGET_CRASH_AT) on either side of Kafka's acknowledgement.

Ingest runs as a process of its own against the real broker. A client posts one event with
its own messageId; the process dies
* before publishing: the client gets no 200, nothing reached Kafka, and the retry (to a
  restarted ingest) is the one copy;
* after Kafka acknowledged, before answering: the client still gets no 200 (it can't know),
  the event is in Kafka, and the retry puts a second record with the same messageId and
  the same key on the topic — the same partition and profile, where the segmenter drops a
  messageId it has seen (its per-profile window), so retrying is safe.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import msgspec
import pytest

from retarget.common.schemas import TrackedEvent
from retarget.common.topics import Topics
from retarget.devstack.child import Child, free_port, start_child
from retarget.devstack.env import kafka_bootstrap
from retarget.devstack.topic_reader import read_to_end

from .conftest import Tenant

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

StartIngest = Callable[..., Child]


@pytest.fixture
def ingest_process(tmp_path: Path, stack: dict[str, str], topic_prefix: str) -> Iterator[StartIngest]:
    """ingest_process(crash_at) starts ingest as a process and waits until it can publish."""
    started: list[Child] = []

    def start(crash_at: str = "") -> Child:
        port, ops_port = free_port(), free_port()
        env = {
            **stack,
            "RETARGET_PORT": str(port),
            "RETARGET_INGEST_OPS_PORT": str(ops_port),
            "RETARGET_TOPIC_PREFIX": topic_prefix,
            "RETARGET_TOPIC_PARTITIONS": "3",
            "RETARGET_CRASH_AT": crash_at,
        }
        log = tmp_path / f"ingest-{len(started)}.log"
        child = start_child("ingest", "retarget.ingest", env=env, port=port, log=log, cwd=tmp_path)
        started.append(child)
        _wait_ready(child, f"http://127.0.0.1:{ops_port}")
        return child

    yield start
    for child in started:
        if child.exited() is None:
            child.kill9()


def _wait_ready(child: Child, ops_url: str, timeout_s: float = 90) -> None:
    """/readyz 200 on the ops port: the producer is connected and the topic exists (a deadline,
    not a speed)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert child.exited() is None, f"ingest exited:\n{child.tail()}"
        try:
            if httpx.get(f"{ops_url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    pytest.fail(f"ingest not ready after {timeout_s}s:\n{child.tail()}")


async def _post(child: Child, tenant: Tenant, message_id: str) -> int | str:
    body = {"userId": "crash-visitor", "event": "Product Viewed", "messageId": message_id}
    async with httpx.AsyncClient(base_url=child.url, auth=(tenant.write_key, ""), timeout=30) as client:
        try:
            return (await client.post("/v1/track", json=body)).status_code
        except httpx.HTTPError as exc:  # the connection died with the process
            return type(exc).__name__


def _died_by_sigkill(child: Child) -> None:
    assert child.process.wait(30) == -9, f"ingest did not crash at its crash point:\n{child.tail()}"
    assert "crash point ingest." in child.tail()


async def _records_with(topic: str, message_id: str) -> list[tuple[bytes, str]]:
    """(key, messageId) of every record on the topic carrying `message_id`."""
    decoder = msgspec.json.Decoder(TrackedEvent)
    records = await read_to_end(kafka_bootstrap(), topic)
    return [(r.key, m) for r in records if (m := decoder.decode(r.value).message_id) == message_id]


async def test_a_crash_before_publishing_answers_no_200_and_sends_nothing(
    ingest_process: StartIngest, tenant: Tenant, topic_prefix: str
) -> None:
    topic = Topics(topic_prefix).events
    message_id = f"crash-before-{uuid.uuid4().hex}"
    doomed = await asyncio.to_thread(ingest_process, "ingest.before_publish")

    assert await _post(doomed, tenant, message_id) != 200
    _died_by_sigkill(doomed)
    assert await _records_with(topic, message_id) == [], "a request that died before publishing reached Kafka"

    restarted = await asyncio.to_thread(ingest_process)
    assert await _post(restarted, tenant, message_id) == 200  # the client's retry
    assert len(await _records_with(topic, message_id)) == 1


async def test_a_crash_after_the_ack_answers_no_200_and_the_retry_repeats_the_same_message_id(
    ingest_process: StartIngest, tenant: Tenant, topic_prefix: str
) -> None:
    topic = Topics(topic_prefix).events
    message_id = f"crash-after-{uuid.uuid4().hex}"
    doomed = await asyncio.to_thread(ingest_process, "ingest.after_publish")

    assert await _post(doomed, tenant, message_id) != 200, "a 200 from a process that died answering"
    _died_by_sigkill(doomed)
    [(key, _)] = await _records_with(topic, message_id)  # acknowledged before the crash: kept

    restarted = await asyncio.to_thread(ingest_process)
    assert await _post(restarted, tenant, message_id) == 200  # the client's retry
    # two records, one messageId, one key: one partition and profile, whose window drops the copy
    assert await _records_with(topic, message_id) == [(key, message_id), (key, message_id)]
