"""The wall-clock timer: due keys from the in-memory heap (schedule.py) over the `due` table of
the partitions this worker owns, fired as a batch of ticks between the other batches —
through the events loop's write path, or the agent's before the loop runs."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from retarget.segmenter import batch_agent, metrics
from retarget.segmenter.agent_wiring import Agent
from retarget.segmenter.batching import SendsUnacknowledged
from retarget.segmenter.live_changes import recheck_now
from retarget.segmenter.loop_wiring import LoopSlot
from retarget.segmenter.processor import due_epoch
from retarget.segmenter.recording import PartitionTable
from retarget.segmenter.wiring import Worker

log = logging.getLogger(__name__)


def wire_timer(w: Worker, agent: Agent, slot: LoopSlot) -> None:
    app, schedule = w.app, w.schedule
    due_table = PartitionTable(w.due)
    seen_assignment: set[Any] = set()
    # workspaces swept whose re-checks may still wait in the heap (the `due` table keeps their
    # old due times): a rebuild forgets the heap's entries, so it sweeps them again
    unfinished_sweeps: set[str] = set()

    def due_of(key: bytes) -> bytes | None:
        return due_table.get_in(w.partition_of(key), key)

    @w.due.on_recover
    async def _recovered() -> None:
        schedule.dirty = True

    async def fire(keys: list[bytes], until: float) -> None:
        try:
            if slot.loop is not None and slot.running:  # its fast path, no faust per key
                await slot.loop.handle_ticks(keys, w.partition_of, datetime.fromtimestamp(until, UTC))
            else:
                ticks = [batch_agent.tick_event(app, key, w.partition_of(key)) for key in keys]
                await batch_agent.handle_batch(ticks, agent.batch, agent.handle, agent.scans_tables)
        except SendsUnacknowledged:
            # nothing of the batch was recorded (recording.py): the due entries stay, fire next time
            log.exception("a batch of due triggers could not be recorded; retrying")
            schedule.dirty = True

    @app.timer(interval=w.settings.timer_interval_s)
    async def find_due() -> None:
        # nothing fires before the workspaces' consent modes and propensity models were loaded
        # (or found unreachable) and their campaigns read from the change feed
        if not (w.modes.attempted and w.models.attempted) or not w.config_ready.is_set():
            return
        # under the lock no batch is half-written: the tables are the whole truth
        async with w.lock:
            # while partitions move or tables recover, the local view of `due` is incomplete
            if app.rebalancing or app.in_recovery:
                schedule.dirty = True
                return
            actives = set(app.assignor.assigned_actives())
            if actives != seen_assignment:
                seen_assignment.clear()
                seen_assignment.update(actives)
                schedule.dirty = True
            if schedule.dirty or schedule.needs_compaction():
                schedule.rebuild(w.due.items(), due_epoch)
                log.info("due schedule rebuilt", extra={"entries": len(schedule)})
                w.campaigns.changed_since_sweep.update(unfinished_sweeps)
            if w.campaigns.changed_since_sweep:
                unfinished_sweeps.update(w.campaigns.changed_since_sweep)
                sweep_due(w)
            # a batch's worth at a time: the other batches get their turns in between
            now = w.clock.timestamp()
            # behind a backlog, nothing fires past what was read: an order received before the
            # due time must cancel the wait first, as it would on an idle worker (watermark.py)
            until = slot.loop.watermark(now) if slot.loop is not None and slot.running else now
            keys = schedule.take_due(now, due_of, limit=w.settings.batch_size, until=until)
            swept = len(keys) < w.settings.batch_size and until >= now  # every re-check made due is taken
            if keys:
                # a worker told to stop finishes this batch first; one that can't be recorded exits
                await batch_agent.record_or_die(fire(keys, until))
            if swept and not schedule.dirty:  # ... and recorded
                unfinished_sweeps.clear()
        metrics.DUE_SCHEDULED.set(len(schedule))


def sweep_due(w: Worker) -> None:
    """A workspace's wait got shorter or a campaign went away: re-check now every profile of it
    waiting on this worker (live_changes.py). One pass over the owned `due` entries, then a
    batch's worth of re-checks per timer pass, recorded like any batch of due triggers."""
    count = recheck_now(w.schedule, w.due.items(), w.campaigns.changed_since_sweep, w.clock.timestamp())
    log.info("waits re-checked after a campaign change", extra={"profiles": count})
