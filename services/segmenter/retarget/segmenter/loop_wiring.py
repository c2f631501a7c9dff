"""The events loop (events_loop.py) as a task of the faust app: its own overlays over the same
tables, the worker's producer and lock, and faust's signals to pause and stop it."""

from __future__ import annotations

from typing import Any

from retarget.segmenter import metrics
from retarget.segmenter.batching import BatchOutputs, WriteBehind
from retarget.segmenter.events_loop import EventsLoop, LoopParts
from retarget.segmenter.recording import PartitionTable, Recorder
from retarget.segmenter.wiring import Worker


class LoopSlot:
    """The running loop, once the task started it (None before, and in agent tests)."""

    loop: EventsLoop | None = None

    @property
    def running(self) -> bool:
        return self.loop is not None and self.loop.running


def wire_events_loop(w: Worker, *, enabled: bool) -> LoopSlot:
    slot = LoopSlot()

    async def run_events_loop() -> None:
        await w.config_ready.wait()  # every workspace's campaigns first (wiring.wire_config_feed)
        await w.send_windows.attempted.wait()  # and their time zones (send_windows.py)
        tables = [PartitionTable(w.profiles), PartitionTable(w.due)]
        positions = PartitionTable(w.positions)
        outputs = BatchOutputs(w.produce)
        counts = metrics.BatchCounts()  # applied once a batch is recorded
        profiles = WriteBehind(tables[0], current=tables[0].current_partition)
        due = WriteBehind(tables[1], current=tables[1].current_partition)

        async def dead_letter(topic: str, part: int, offset: int, key: Any, raw: Any, reason: str) -> None:
            await w.send_dead_letter(outputs, topic, part, offset, key, raw, reason)

        parts = LoopParts(
            app=w.app,
            processor=w.make_processor(profiles, due, outputs, counts),
            # due before profiles: recording.py says why
            recorder=Recorder(
                [(due, tables[1]), (profiles, tables[0])], outputs, w.changelog, positions, counts
            ),
            positions=positions,
            lock=w.lock,
            dead_letter=dead_letter,
            partition_of=w.partition_of,
        )
        slot.loop = EventsLoop(
            parts,
            bootstrap=w.settings.kafka_bootstrap,
            events_topic=w.topics.events,
            owner_topic=w.profile_events_name,
            # the groups older versions committed the events' offsets under (an upgrade starts there)
            legacy_groups=(f"{w.app.conf.id}-events", w.app.conf.id),
            batch_size=w.settings.batch_size,
            within_s=w.settings.batch_within_s,
        )
        # the producer is not stopped: every batch awaited its records' acknowledgements
        await slot.loop.run()

    if enabled:
        w.app.task(run_events_loop)

    @w.app.on_partitions_revoked.connect  # type: ignore[arg-type]  # mode types handlers as sync
    async def _finish_before_partitions_move(sender: Any, *args: Any, **kwargs: Any) -> None:
        if slot.loop is not None:
            await slot.loop.pause()

    if enabled:

        @w.app.on_partitions_assigned.connect  # type: ignore[arg-type]  # mode types handlers as sync
        async def _fence_former_owners(sender: Any, *args: Any, **kwargs: Any) -> None:
            """As soon as faust says a partition is ours, before we record anything there
            (fencing.py); under the lock: no batch of the old assignment is half-recorded."""
            actives = w.app.assignor.assigned_actives()
            async with w.lock:
                await w.changelog.own(tp.partition for tp in actives if tp.topic == w.profile_events_name)

    @w.app.on_before_shutdown.connect  # type: ignore[arg-type]  # mode types handlers as sync
    async def _finish_before_stopping(sender: Any, *args: Any, **kwargs: Any) -> None:
        if slot.loop is not None:
            await slot.loop.stop()

    return slot
