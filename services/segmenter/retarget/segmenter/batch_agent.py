"""The agent's loop: records in batches from faust's stream, each batch fully recorded before
faust acknowledges its records (batching.py says why batches).

Faust acknowledges the records of `take_events` when the loop moves on — even after an
exception or a cancellation. So a batch is finished before that: a worker told to stop
finishes its batch first, and a batch that can't be recorded (the broker refused a send)
makes the worker exit at once, as kill -9 would; its restart recovers the tables from the
changelog and the batch's records replay from the committed offsets.

Faust picks a table write's store and changelog partition from its current event; the
batch writes after the stream has moved on, so each record's event is made current again
(a faust internal: faust_internals.py).

The timer's ticks are not records: each gets an event of its own (`tick_event`) that tells
faust the partition its key lives in; faust reads nothing else from it, and nothing
acknowledges it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

from faust.events import Event
from faust.types.tuples import Message

from retarget.segmenter import faust_internals
from retarget.segmenter.batching import Batch

log = logging.getLogger(__name__)

#: the topic name a tick's event carries (no such topic exists)
TICKS = "segmenter-timer-ticks"


def tick_event(app: Any, key: bytes, partition: int) -> Event:
    """An event for a due key, so the tick's table writes go to `partition` (see the module's note)."""
    message = Message(TICKS, partition, -1, time.time(), 0, [], key, b"tick", None)
    return Event(app, key, b"tick", [], message)


def enter_event(event: Any) -> None:
    """Make `event` faust's current event (see the module's note)."""
    faust_internals.set_current_event(event)


async def handle_batch(
    events: list[Any],
    batch: Batch,
    handle: Callable[[Any], Awaitable[None]],
    alone: Callable[[Any], bool],
) -> None:
    """Each record in order; those `alone` says read the real tables get a batch of their own."""
    try:
        for event in events:
            own_batch = alone(event)
            if own_batch:
                await batch.commit()
            enter_event(event)
            await handle(event)
            if own_batch:
                await batch.commit()
        await batch.commit()
    except BaseException:
        batch.discard()
        raise


async def handle_batch_locked(
    events: list[Any],
    batch: Batch,
    handle: Callable[[Any], Awaitable[None]],
    alone: Callable[[Any], bool],
    lock: asyncio.Lock,
) -> None:
    """`handle_batch` once no other batch is in progress: each sees the tables as the last one left them."""
    async with lock:
        await handle_batch(events, batch, handle, alone)


async def consume(
    stream: Any,
    batch: Batch,
    handle: Callable[[Any], Awaitable[None]],
    alone: Callable[[Any], bool],
    *,
    size: int,
    within: float,
    lock: asyncio.Lock,
) -> None:
    """`lock`: whatever else handles batches with `batch` (the timer) takes turns with the agent."""
    async for events in stream.take_events(size, within=within):
        await record_or_die(handle_batch_locked(events, batch, handle, alone, lock))


async def record_or_die(batch: Awaitable[None]) -> None:
    """Run a batch to its end, even when the worker is told to stop meanwhile; a batch that
    can't be recorded ends the process before anything acknowledges its records."""
    work = asyncio.ensure_future(batch)
    try:
        await finish_before_stopping(work)
    except asyncio.CancelledError:
        if not work.cancelled() and work.exception() is not None:
            die(work.exception())  # type: ignore[arg-type]
        raise
    except BaseException as exc:
        die(exc)


async def finish_before_stopping(work: asyncio.Future[None]) -> None:
    """Await `work`; cancelled meanwhile (the worker is stopping), let it finish first, then re-raise."""
    try:
        await asyncio.shield(work)
    except asyncio.CancelledError:
        if not work.done():
            await asyncio.wait([work])
        raise


def die(exc: BaseException) -> None:
    """Exit without letting faust acknowledge the batch's records (see the module's note)."""
    log.critical("a batch could not be recorded; exiting without acknowledging it", exc_info=exc)
    logging.shutdown()
    os._exit(70)
