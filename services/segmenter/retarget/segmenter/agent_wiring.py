"""The faust agent of the internal topics (profile-events, privacy): batches of records through
the rules, recorded in recording.py's order. Before the events loop runs, the timer's ticks go
through it too (`handle` knows a tick by its topic)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from faust.streams import current_event

from retarget.common.metrics import labelled
from retarget.segmenter import batch_agent, metrics
from retarget.segmenter.batching import Batch, BatchOutputs, WriteBehind
from retarget.segmenter.dead_letters import dead_letter_on_failure
from retarget.segmenter.erasure import is_erasure_step
from retarget.segmenter.processor import ProfileProcessor, Send
from retarget.segmenter.recording import PartitionTable, Recorder
from retarget.segmenter.wiring import Worker


@dataclass
class Agent:
    processor: ProfileProcessor
    batch: Batch
    tables: list[PartitionTable]  # the partition being handled is set on them per record
    worker: Worker

    async def handle(self, event: Any) -> None:
        w, processor = self.worker, self.processor
        topic = event.message.topic
        for table in self.tables:  # the partition the record's key lives in (a tick's too)
            table.partition = event.message.partition
        kind = {batch_agent.TICKS: "tick", w.profile_events_name: "internal", w.privacy_name: "privacy"}.get(
            topic, "event"
        )
        started = time.perf_counter()

        async def by_kind() -> None:
            if kind == "tick":
                if w.app.rebalancing or w.app.in_recovery:  # began while waiting for the agent's batch
                    w.schedule.dirty = True  # the key may have moved: the next pass looks again
                    return
                await processor.on_tick(event.key)
            elif kind == "internal":
                await processor.on_internal(event.key, event.value)
            elif kind == "privacy":
                await processor.on_privacy(event.key, event.value)
            else:
                await processor.on_event(event.key, event.value)

        async def to_dead_letters(reason: str) -> None:
            m = event.message
            await w.send_dead_letter(
                self.batch.outputs, m.topic, m.partition, m.offset, event.key, event.value, reason
            )

        await dead_letter_on_failure(by_kind(), to_dead_letters, topic)
        labelled(metrics.PROCESSING, kind).observe(time.perf_counter() - started)

    def scans_tables(self, event: Any) -> bool:
        """Erasure reads the real tables (a scan): it gets a batch of its own."""
        topic = event.message.topic
        w = self.worker
        return topic == w.privacy_name or (topic == w.profile_events_name and is_erasure_step(event.value))


def wire_agent(w: Worker, send: Send | None) -> Agent:
    """`send`: agent tests' stand-in for Kafka (faust's own table writes, the memory store)."""
    tables = [PartitionTable(w.profiles), PartitionTable(w.due)]
    if send is None:
        counts = metrics.BatchCounts()  # applied once a batch is recorded
        outputs = BatchOutputs(w.produce)
        profiles = WriteBehind(tables[0], current=tables[0].current_partition)
        due = WriteBehind(tables[1], current=tables[1].current_partition)
        # due before profiles: recording.py says why
        recorder = Recorder([(due, tables[1]), (profiles, tables[0])], outputs, w.changelog, counts=counts)
        batch = Batch([profiles, due], outputs, batch_agent.enter_event, recorder.record)
    else:
        counts = metrics.BatchCounts(immediate=True)

        async def enqueue_to(output: str, key: bytes, value: bytes, wait: bool, partition: int | None) -> Any:
            await send(output, key, value, wait, partition)
            return None

        outputs = BatchOutputs(enqueue_to)
        profiles = WriteBehind(w.profiles, current=current_event)
        due = WriteBehind(w.due, current=current_event)
        batch = Batch([profiles, due], outputs, batch_agent.enter_event)
    agent = Agent(w.make_processor(profiles, due, outputs, counts), batch, tables, w)

    @w.app.agent(w.app.topic(w.profile_events_name, w.privacy_name))
    async def segmenter(stream: Any) -> None:
        settings = w.settings
        await w.config_ready.wait()  # every workspace's campaigns first (wiring.wire_config_feed)
        await w.send_windows.attempted.wait()  # and their time zones (send_windows.py)
        await batch_agent.consume(
            stream, agent.batch, agent.handle, agent.scans_tables,
            size=settings.batch_size, within=settings.batch_within_s, lock=w.lock,
        )  # fmt: skip

    return agent
