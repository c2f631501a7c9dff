"""Segmenter workers as separate processes on the real broker, and the Kafka ends of a test."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner

from retarget.common.identity import trigger_id
from retarget.common.schemas import TrackedEvent, TriggerFired, decoder, encode
from retarget.common.topics import Topics, visitor_key
from retarget.devstack.child import Child, free_port, start_child

_triggers = decoder(TriggerFired)


class Worker(Child):
    def ready(self) -> dict | None:
        try:
            response = httpx.get(f"http://127.0.0.1:{self.port}/readyz", timeout=1)
        except httpx.TransportError:
            return None
        return response.json() if response.status_code == 200 else None

    def wait_ready(self, timeout_s: float = 60) -> None:
        """Ready and owning partitions (so a test's records are not produced into the void)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"{self.name} exited with {self.process.returncode}:\n{self.tail()}")
            state = self.ready()
            if state and state.get("assigned_topic_partitions"):
                return
            time.sleep(0.2)
        pytest.fail(f"{self.name} not ready after {timeout_s}s:\n{self.tail()}")

    def metric(self, name: str) -> float:
        text = httpx.get(f"http://127.0.0.1:{self.port}/metrics", timeout=2).text
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith(name) and not line.startswith("#")
        )


@pytest.fixture
def segmenter_env(stack: dict[str, str], topic_prefix: str) -> dict[str, str]:
    """Fast settings: 2 partitions, the broker's minimum session timeout, second-long waits."""
    return {
        **stack,
        "RETARGET_TOPIC_PREFIX": topic_prefix,
        "RETARGET_TOPIC_PARTITIONS": "2",
        "RETARGET_SESSION_TIMEOUT_S": "6",
        "RETARGET_TIMER_INTERVAL_S": "0.1",
        "RETARGET_CAMPAIGN_WAITS": '{"abandoned_cart": "2s"}',
        "RETARGET_WAIT_SCALE": "1000",  # every other campaign: out of the way in these tests
        "RETARGET_LOG_LEVEL": "INFO",
    }


@pytest.fixture
def start_worker(tmp_path: Path, segmenter_env: dict[str, str]) -> Iterator:
    started: list[Worker] = []

    def _start(name: str, port: int | None = None, **env: str) -> Worker:
        """`port`: keep the previous worker's (faust's assignor checks it under static membership)."""
        port = port or free_port()
        child = start_child(
            name,
            "retarget.segmenter",
            env={
                **segmenter_env,
                "RETARGET_WEB_PORT": str(port),
                "RETARGET_DATA_DIR": str(tmp_path / name),
                **env,
            },
            port=port,
            log=tmp_path / f"{name}-{len(started)}.log",
            cwd=tmp_path,
        )
        worker = Worker(child.name, child.process, child.port, child.log)
        started.append(worker)
        return worker

    yield _start
    for worker in started:
        if worker.process.poll() is None:
            worker.process.kill()
            worker.process.wait()


@dataclass
class Kafka:
    bootstrap: str
    topics: Topics
    producer: AIOKafkaProducer
    triggers: list[TriggerFired] = field(default_factory=list)
    reader: asyncio.Task | None = None

    def start_reading(self) -> None:
        """Read the triggers topic from the start; call once a worker created the topics."""
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        consumer = AIOKafkaConsumer(
            self.topics.triggers,
            bootstrap_servers=self.bootstrap,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        await consumer.start()
        try:
            async for record in consumer:
                self.triggers.append(_triggers.decode(record.value))
        finally:
            await consumer.stop()

    async def send(self, *events: TrackedEvent) -> None:
        for e in events:
            key = visitor_key(e.workspace_id, e.user_id, e.anonymous_id)
            # the record's time is its receipt, as ingest's producer stamps it (the read watermark)
            stamp = int(e.received_at.timestamp() * 1000)
            await self.producer.send_and_wait(self.topics.events, encode(e), key=key, timestamp_ms=stamp)

    async def wait_for_triggers(self, count: int, timeout_s: float) -> list[TriggerFired]:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while asyncio.get_running_loop().time() < deadline:
            if len(self.triggers) >= count:
                break
            await asyncio.sleep(0.1)
        return list(self.triggers)

    def ids(self) -> Counter[str]:
        return Counter(t.trigger_id for t in self.triggers)

    async def wait_for_ids(self, ids: set[str], timeout_s: float) -> set[str]:
        """The ids still missing at the deadline (none: all arrived)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if ids <= set(self.ids()):
                break
            await asyncio.sleep(0.2)
        return ids - set(self.ids())

    async def after_markers(
        self, ws: str, partitions: int = 2, timeout_s: float = 60, *, at: datetime | None = None
    ) -> set[str]:
        """One more cart per partition, sent now; returns once their triggers were read (their ids).

        How "nothing twice" is judged without a pause: a partition's triggers are produced in
        order and due in order, so a duplicate of an earlier trigger (a replay, a re-armed tick)
        is read before its partition's marker. `at`: the markers' event time (default: now) —
        just after the test's last event, they are due just after its carts rather than a whole
        wait after the moment they are sent."""
        every = list(range(partitions))
        markers: set[str] = set()
        for partition in every:
            while True:
                marker = f"marker-{uuid.uuid4().hex[:6]}"
                add = marker_cart(ws, marker, at)
                key = visitor_key(ws, None, marker)
                if DefaultPartitioner()(key, every, every) == partition:
                    break
            await self.send(marker_identify(ws, marker, at), add)
            markers.add(trigger_id(ws, "abandoned_cart", marker, add.message_id))
        missing = await self.wait_for_ids(markers, timeout_s)
        assert not missing, f"the markers' triggers never arrived: {missing}"
        return markers


def marker_cart(ws: str, visitor: str, at: datetime | None = None) -> TrackedEvent:
    props = {"product_id": "marker", "name": "Marker", "price": 1.0, "currency": "EUR"}
    return _event(ws, visitor, "track", at, event="Product Added", properties=props)


def marker_identify(ws: str, visitor: str, at: datetime | None = None) -> TrackedEvent:
    return _event(ws, visitor, "identify", at, traits={"email": f"{visitor}@example.com"})


def _event(ws: str, visitor: str, kind: Any, at: datetime | None = None, **fields: Any) -> TrackedEvent:
    """Received now; its own time `at` (a client's clock, or a late event), now by default."""
    received = datetime.now(UTC)
    return TrackedEvent(
        workspace_id=ws, type=kind, message_id=uuid.uuid4().hex, timestamp=at or received,
        received_at=received, anonymous_id=visitor, **fields,
    )  # fmt: skip


@pytest.fixture
async def kafka(stack: dict[str, str], topic_prefix: str) -> AsyncIterator[Kafka]:
    bootstrap = stack["RETARGET_KAFKA_BOOTSTRAP"]
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    k = Kafka(bootstrap, Topics(topic_prefix), producer)
    yield k
    if k.reader is not None:
        k.reader.cancel()
        await asyncio.gather(k.reader, return_exceptions=True)
    await producer.stop()
