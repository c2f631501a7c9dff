"""How the worker wires the fence (fencing.py): which producer writes the changelogs, who records
through it, and who is fenced when faust assigns partitions. FencedChangelog's own bookkeeping
is test_segmenter_fencing.py's; each check here failed no test before (a mutation survived)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from faust.types import TP

from retarget.common.clock import SystemClock
from retarget.segmenter.agent_wiring import wire_agent
from retarget.segmenter.app import registry_from
from retarget.segmenter.loop_wiring import wire_events_loop
from retarget.segmenter.settings import SegmenterSettings
from retarget.segmenter.wiring import Worker, new_faust_app


def worker() -> Worker:
    settings = SegmenterSettings(store="memory://", topic_prefix="tfence", topic_partitions=4)
    modes: Any = SimpleNamespace()  # never asked here
    return Worker(settings, new_faust_app(settings), SystemClock(), registry_from(settings), modes)


async def test_the_changelog_producers_are_transactional_with_the_partitions_id():
    w = worker()
    producer = w.changelog._make("tfence-segmenter-3")
    try:
        assert producer._txn_manager is not None
        assert producer._txn_manager.transactional_id == "tfence-segmenter-3"
    finally:
        await producer.stop()  # never started: closes its client only


async def test_the_agent_records_through_the_fenced_changelog():
    w = worker()
    agent = wire_agent(w, None)
    recorder = agent.batch._record.__self__  # type: ignore[union-attr]
    assert recorder.changelog is w.changelog


async def test_an_assignment_fences_the_events_partitions_under_the_lock():
    w = worker()
    wire_events_loop(w, enabled=True)
    owned: list[tuple[list[int], bool]] = []

    async def own(partitions: Any) -> None:
        owned.append((sorted(partitions), w.lock.locked()))

    w.changelog.own = own  # type: ignore[method-assign]
    actives = {
        TP(w.profile_events_name, 1),
        TP(w.profile_events_name, 3),
        TP(w.privacy_name, 2),  # co-partitioned, but not what names the events partitions
        TP("tfence-segmenter-profiles-changelog", 0),
    }
    w.app.assignor.assigned_actives = lambda: actives  # type: ignore[method-assign]
    await w.app.on_partitions_assigned.send(actives)
    assert owned == [([1, 3], True)]


async def test_the_workers_app_recovers_read_committed():
    app: Any = worker().app
    assert app.tables.recovery.app.in_transaction is True  # faust_internals.recover_read_committed
    consumer = app.consumer._thread._create_worker_consumer(app.transport)
    try:
        assert consumer._isolation_level == "read_committed"
    finally:
        await consumer.stop()
