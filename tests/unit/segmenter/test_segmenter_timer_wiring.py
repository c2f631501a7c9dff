"""The timer's guards (timer.py), on fakes of the worker's parts: each one's deletion survived
every unit and fast integration test."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from faust.types import TP

from retarget.segmenter.batching import SendsUnacknowledged
from retarget.segmenter.loop_wiring import LoopSlot
from retarget.segmenter.schedule import DueSchedule
from retarget.segmenter.timer import wire_timer

DUE = b"2026-03-01T10:00:02+00:00"


class FakeLoop:
    running = True

    def __init__(self) -> None:
        self.fired: list[bytes] = []
        self.read_until = float("inf")  # caught up: the timer's cut-off is its clock

    def watermark(self, now: float) -> float:
        return min(now, self.read_until)

    async def handle_ticks(self, keys: list[bytes], partition_of: Any, until: Any = None) -> None:
        self.fired += keys


def wired(**app_state: Any) -> tuple[Any, Any, FakeLoop, dict[str, Any]]:
    hooks: dict[str, Any] = {}
    app = SimpleNamespace(
        rebalancing=False,
        in_recovery=False,
        assignor=SimpleNamespace(assigned_actives=lambda: {TP("t.profile-events.v1", 0)}),
        timer=lambda interval: lambda fn: hooks.setdefault("find_due", fn),
        **app_state,
    )
    entries = {b"ws:a": DUE}
    ready = asyncio.Event()
    ready.set()
    due = SimpleNamespace(
        on_recover=lambda fn: hooks.setdefault("recovered", fn),
        items=lambda: list(entries.items()),
        data=SimpleNamespace(data=entries),  # the memory store's dict: what partition_db reads
    )
    w = SimpleNamespace(
        app=app,
        schedule=DueSchedule(),
        due=due,
        partition_of=lambda key: 0,
        settings=SimpleNamespace(timer_interval_s=0.1, batch_size=100),
        modes=SimpleNamespace(attempted=True),
        models=SimpleNamespace(attempted=True),
        config_ready=ready,
        campaigns=SimpleNamespace(changed_since_sweep=set()),
        lock=asyncio.Lock(),
        clock=SimpleNamespace(timestamp=lambda: 2e9),  # long after DUE
    )
    loop, slot = FakeLoop(), LoopSlot()
    slot.loop = loop  # type: ignore[assignment]
    wire_timer(w, SimpleNamespace(), slot)  # type: ignore[arg-type]
    return w, entries, loop, hooks


async def test_nothing_fires_before_the_consent_modes_were_loaded():
    w, _, loop, hooks = wired()
    w.modes.attempted = False
    await hooks["find_due"]()
    assert loop.fired == []
    w.modes.attempted = True
    await hooks["find_due"]()
    assert loop.fired == [b"ws:a"]


async def test_nothing_fires_before_the_propensity_models_were_loaded():
    w, _, loop, hooks = wired()
    w.models.attempted = False  # a likely buyer's discount would pass unscored meanwhile
    await hooks["find_due"]()
    assert loop.fired == []
    w.models.attempted = True
    await hooks["find_due"]()
    assert loop.fired == [b"ws:a"]


async def test_nothing_fires_while_partitions_move_or_tables_recover():
    for state in ("rebalancing", "in_recovery"):
        w, _, loop, hooks = wired()
        setattr(w.app, state, True)
        w.schedule.dirty = False
        await hooks["find_due"]()
        assert loop.fired == [] and w.schedule.dirty  # rebuilt once they are done


async def test_a_new_assignment_or_a_recovery_rebuilds_the_schedule():
    w, entries, loop, hooks = wired()
    await hooks["find_due"]()  # first build; the entry fires
    entries[b"ws:b"] = DUE  # restored from the changelog with a partition now ours
    w.app.assignor = SimpleNamespace(assigned_actives=lambda: {TP("t.profile-events.v1", 1)})
    await hooks["find_due"]()
    assert b"ws:b" in loop.fired
    entries[b"ws:c"] = DUE  # recovered into a partition the worker kept
    await hooks["recovered"]()
    await hooks["find_due"]()
    assert b"ws:c" in loop.fired


async def test_the_timer_waits_for_the_batch_in_hand():
    w, _, loop, hooks = wired()
    async with w.lock:
        finding = asyncio.ensure_future(hooks["find_due"]())
        await asyncio.sleep(0.01)
        assert loop.fired == []  # not while a batch holds the lock
    await finding
    assert loop.fired == [b"ws:a"]


async def test_due_keys_whose_batch_could_not_be_recorded_fire_again_at_the_next_turn():
    _, _, loop, hooks = wired()
    refused = True

    async def handle_ticks(keys: list[bytes], partition_of: Any, until: Any = None) -> None:
        nonlocal refused
        if refused:
            refused = False
            raise SendsUnacknowledged("the broker refused the trigger")
        loop.fired += keys

    loop.handle_ticks = handle_ticks  # type: ignore[method-assign]
    await hooks["find_due"]()
    assert loop.fired == []
    await hooks["find_due"]()  # not 30 s later, when the schedule would re-arm it
    assert loop.fired == [b"ws:a"]


async def test_nothing_fires_past_what_the_events_loop_has_read() -> None:
    _, _, loop, hooks = wired()
    loop.read_until = 0.0  # behind a backlog: nothing received after 1970 has been read
    await hooks["find_due"]()
    assert loop.fired == []
    loop.read_until = float("inf")
    await hooks["find_due"]()
    assert loop.fired != []


async def test_nothing_fires_before_the_campaigns_were_read_from_the_change_feed():
    w, _, loop, hooks = wired()
    w.config_ready.clear()
    await hooks["find_due"]()
    assert loop.fired == []
    w.config_ready.set()
    await hooks["find_due"]()
    assert loop.fired == [b"ws:a"]


LATER = b"2036-03-01T10:00:00+00:00"  # not due yet at the fake clock (2e9: 2033)


async def test_a_campaign_change_re_checks_at_once_the_waiting_profiles_of_its_workspace_only():
    w, entries, loop, hooks = wired()
    entries.clear()
    entries.update({b"ws:a": LATER, b"ws:b": LATER, b"other:a": LATER})
    await hooks["find_due"]()
    assert loop.fired == []  # nothing due by the index
    w.campaigns.changed_since_sweep.add("ws")  # a wait of workspace ws got shorter
    await hooks["find_due"]()
    assert sorted(loop.fired) == [b"ws:a", b"ws:b"]
    assert w.campaigns.changed_since_sweep == set()  # swept once
    loop.fired.clear()
    await hooks["find_due"]()
    assert loop.fired == []


async def test_a_sweep_re_checks_a_batch_s_worth_per_timer_pass():
    w, entries, loop, hooks = wired()
    entries.clear()
    entries.update({f"ws:{i}".encode(): LATER for i in range(250)})
    w.campaigns.changed_since_sweep.add("ws")
    for passes in (1, 2, 3):
        await hooks["find_due"]()
        assert len(loop.fired) == min(250, 100 * passes)  # batch_size 100: the others wait their turn


async def test_a_schedule_rebuilt_in_the_middle_of_a_sweep_still_re_checks_the_rest():
    """The sweep's entries live in the heap only (the table keeps the old, later due times):
    a rebuild between two passes (a new assignment, a recovery, a batch not recorded, a
    compaction) must not put the profiles not yet re-checked back to their old due time."""
    w, entries, loop, hooks = wired()
    entries.clear()
    entries.update({f"ws:{i}".encode(): LATER for i in range(250)})
    w.campaigns.changed_since_sweep.add("ws")
    await hooks["find_due"]()
    assert len(loop.fired) == 100
    w.schedule.dirty = True  # e.g. a batch of due triggers could not be recorded
    for _ in range(3):
        await hooks["find_due"]()
    assert len(set(loop.fired)) == 250  # every waiting profile re-checked, not 100


async def test_a_sweep_whose_last_batch_could_not_be_recorded_is_not_forgotten():
    w, entries, loop, hooks = wired()
    entries.clear()
    entries.update({f"ws:{i}".encode(): LATER for i in range(50)})  # one batch: the sweep's last
    refused = True

    async def handle_ticks(keys: list[bytes], partition_of: Any, until: Any = None) -> None:
        nonlocal refused
        if refused:
            refused = False
            raise SendsUnacknowledged("the broker refused the triggers")
        loop.fired += keys

    loop.handle_ticks = handle_ticks  # type: ignore[method-assign]
    w.campaigns.changed_since_sweep.add("ws")
    await hooks["find_due"]()
    assert loop.fired == []
    await hooks["find_due"]()  # the rebuild brings back the old due times: swept again
    assert len(set(loop.fired)) == 50
