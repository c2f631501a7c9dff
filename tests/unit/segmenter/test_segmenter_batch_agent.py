"""The agent's loop and the timer take turns with the tables, a whole batch at a time."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from retarget.segmenter import batch_agent
from retarget.segmenter.batching import Batch, BatchOutputs


class Record:
    """An event as the loop sees it (faust keeps a weak reference to the current one)."""

    def __init__(self, source: str, n: int) -> None:
        self.source, self.n = source, n

    def __repr__(self) -> str:
        return f"{self.source}{self.n}"


class Stream:
    """What `consume` uses of a faust stream: batches of events from `take_events`."""

    def __init__(self, batches: list[list[Any]]) -> None:
        self.batches = batches

    async def take_events(self, size: int, within: float) -> AsyncIterator[list[Any]]:
        for events in self.batches:
            yield events
            await asyncio.sleep(0)


async def run(lock: asyncio.Lock, other_lock: asyncio.Lock) -> list[Any]:
    """The agent consumes two batches while a timer handles two batches of ticks."""

    async def enqueue(output: str, key: bytes, value: bytes, wait: bool, partition: int | None) -> Any:
        return None

    batch = Batch([], BatchOutputs(enqueue), enter=lambda _: None)
    handled: list[Any] = []

    async def handle(event: Any) -> None:
        handled.append(event)
        await asyncio.sleep(0)  # a send: the timer gets the loop here

    events = Stream([[Record("e", 1), Record("e", 2), Record("e", 3)], [Record("e", 4), Record("e", 5)]])

    async def timer() -> None:
        for ticks in ([Record("t", 1), Record("t", 2)], [Record("t", 3), Record("t", 4), Record("t", 5)]):
            await batch_agent.handle_batch_locked(ticks, batch, handle, lambda _: False, other_lock)

    await asyncio.gather(
        batch_agent.consume(events, batch, handle, lambda _: False, size=10, within=0.01, lock=lock), timer()
    )
    return handled


def switches(handled: list[Any]) -> int:
    return sum(1 for a, b in zip(handled[1:], handled, strict=False) if a.source != b.source)


async def test_the_agent_and_the_timer_never_interleave_their_batches():
    lock = asyncio.Lock()
    handled = await run(lock, lock)
    assert len(handled) == 10
    assert switches(handled) <= 3, handled  # four batches, each handled whole


async def test_without_one_lock_they_would_interleave():
    handled = await run(asyncio.Lock(), asyncio.Lock())
    assert switches(handled) > 3, handled


async def test_a_batch_in_progress_is_finished_before_a_stop_takes_effect():
    steps: list[str] = []

    async def a_batch() -> None:
        for step in ("sent", "settled", "written"):
            await asyncio.sleep(0.01)
            steps.append(step)

    work = asyncio.ensure_future(a_batch())
    waiting = asyncio.create_task(batch_agent.finish_before_stopping(work))
    await asyncio.sleep(0.015)
    waiting.cancel()  # the worker is told to stop mid-batch
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert steps == ["sent", "settled", "written"] and work.done() and not work.cancelled()
