"""The events loop records a batch in order: acknowledged sends, then the tables (each touched
key once, in its partition's store and changelog), then the offsets — with the real rules and
fakes for Kafka and the faust store (memory)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from aiokafka.structs import TopicPartition

from retarget.common.schemas import encode
from retarget.segmenter.batching import BatchOutputs, WriteBehind
from retarget.segmenter.campaigns import load_campaigns
from retarget.segmenter.events_loop import EventsLoop, LoopParts, PartitionTable
from retarget.segmenter.processor import ProfileProcessor
from retarget.segmenter.schedule import DueSchedule
from retarget.segmenter.settings import SegmenterSettings
from retarget.segmenter.state import profile_decoder
from retarget.segmenter.testing import identify, track

T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)


class Journal(list[str]):
    """What happened, in order."""


class FakeProducer:
    def __init__(self, journal: Journal) -> None:
        self.journal, self.sent, self.pending = journal, [], []

    async def send(self, topic: str, value: bytes | None, key: bytes, partition: int | None = None) -> Any:
        self.sent.append((topic, key, value, partition))
        loop = asyncio.get_running_loop()
        done: asyncio.Future[Any] = loop.create_future()
        offset = len(self.sent)

        def acknowledge() -> None:  # the broker answers a moment later
            self.journal.append(f"acked {topic}")
            done.set_result(SimpleNamespace(offset=offset))

        loop.call_soon(acknowledge)
        self.pending.append(done)
        return done

    async def flush(self) -> None:
        await asyncio.gather(*self.pending)
        self.journal.append("flushed")


class FakeConsumer:
    def __init__(self, journal: Journal) -> None:
        self.journal, self.commits = journal, []

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.journal.append("commit")
        self.commits.append(offsets)


def memory_table(name: str) -> Any:
    return SimpleNamespace(data=SimpleNamespace(data={}), changelog_topic_name=f"{name}-changelog")


async def test_a_poll_is_recorded_sends_first_then_each_touched_key_once_then_the_offsets():
    journal = Journal()
    producer = FakeProducer(journal)
    tables = [PartitionTable(memory_table("profiles")), PartitionTable(memory_table("due"))]
    for table in tables:
        write = table.write_batch

        def journaled(
            partition: int, writes: Any, write: Any = write, name: str = table.table.changelog_topic_name
        ) -> None:
            journal.append(f"write {name.removesuffix('-changelog')}")
            write(partition, writes)

        table.write_batch = journaled  # type: ignore[method-assign]
    views = [(WriteBehind(t, current=t.current_partition), t) for t in tables]

    async def produce(output: str, key: bytes, value: bytes, wait: bool, partition: int | None) -> Any:
        return await producer.send(output, value, key=key, partition=partition)

    outputs = BatchOutputs(produce)
    campaigns = load_campaigns(SegmenterSettings().campaigns_dir)
    processor = ProfileProcessor(
        profiles=views[0][0], due=views[1][0], send=outputs, campaigns=campaigns,
        clock=SimpleNamespace(now=lambda: T0, timestamp=T0.timestamp), schedule=DueSchedule(),
    )  # fmt: skip
    app = SimpleNamespace(rebalancing=False, in_recovery=False)

    async def dead_letter(*args: Any) -> None:
        journal.append("dead letter")

    parts = LoopParts(app, processor, views, outputs, producer, asyncio.Lock(), dead_letter)  # type: ignore[arg-type]
    loop = EventsLoop(
        parts, bootstrap="127.0.0.1:1", events_topic="t.events.v1", owner_topic="t.profile-events.v1",
        group_id="g", batch_size=100, within_s=0.05,
    )  # fmt: skip
    await loop.consumer.stop()  # never started: the fake below stands in for it
    loop.consumer = FakeConsumer(journal)  # type: ignore[assignment]
    tp = TopicPartition("t.events.v1", 2)
    events = [
        identify(T0, mid="m1", email="ann@example.com"),
        track("Product Viewed", T0, mid="m2", product_id="p1", name="Boots", price=80),
        track("Product Added", T0, mid="m3", product_id="p1", name="Boots", price=80),
        track("Order Completed", T0, mid="m4", order_id="o1", total=80),  # the cart's exit
        track("Product Viewed", T0, mid="m5", anonymous_id="anon-2", product_id="p2", name="Hat", price=20),
        identify(T0, mid="m6", anonymous_id="anon-2", user_id="u-9", email="bo@example.com"),  # a merge
    ]
    keys = [b"ws:anon-1"] * 4 + [b"ws:anon-2"] * 2
    records = [
        SimpleNamespace(key=k, value=encode(e), offset=40 + i)
        for i, (k, e) in enumerate(zip(keys, events, strict=True))
    ]
    polled = {tp: records}

    await loop._handle(polled)  # type: ignore[arg-type]

    store = tables[0].table.data.data
    profile = profile_decoder.decode(store[b"ws:anon-1"])
    assert profile.email == "ann@example.com" and not profile.cart  # four events, one profile
    changelog = [
        (topic, key, partition) for topic, key, _, partition in producer.sent if "changelog" in topic
    ]
    assert changelog.count(("profiles-changelog", b"ws:anon-1", 2)) == 1  # written once, in its partition
    assert journal[-2:] == ["flushed", "commit"] and loop.consumer.commits == [{tp: 46}]  # type: ignore[attr-defined]
    # the merge record (an acknowledged send) before any table write; the changelog before the offsets
    assert journal.index("acked profile_events") < journal.index("write profiles")
    assert (
        journal.index("write profiles") < journal.index("acked profiles-changelog") < journal.index("commit")
    )
    redirect = profile_decoder.decode(store[b"ws:anon-2"])
    assert redirect.merged_into == "u-9"
