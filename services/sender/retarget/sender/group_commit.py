"""Group commit: many concurrent callers, one database statement per round trip.

Each caller submits one item and awaits its own result. While a flush is running, new items
queue; the next flush takes them all. At low load a flush holds one item (no added latency);
at high load one round trip serves hundreds of messages — which is how per-message claims
and outcomes keep up with thousands of messages a second without a per-message transaction.
The flush runs in its own task, so a caller that is cancelled never strands the others.

One bad row must not fail its neighbours: when a group fails with an error that `isolate`
says is the data's (a NUL byte in a text column, an index row too large), each item of the
group is flushed again on its own, so only the caller whose item is bad gets the error.
Transient errors (the database is away) fail the whole group, and every caller retries.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


def _never(exc: BaseException) -> bool:
    return False


class GroupCommit(Generic[T, R]):
    def __init__(
        self,
        flush: Callable[[list[T]], Awaitable[list[R]]],
        *,
        max_items: int = 1000,
        isolate: Callable[[BaseException], bool] = _never,
    ) -> None:
        self._flush = flush
        self.max_items = max_items
        self.isolate = isolate
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._drain: asyncio.Task[None] | None = None
        self.flushes = 0

    async def submit(self, item: T) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if self._drain is None or self._drain.done():
            self._drain = asyncio.create_task(self._run())
        return await future

    async def _run(self) -> None:
        while self._pending:
            group, self._pending = self._pending[: self.max_items], self._pending[self.max_items :]
            await self._flush_group(group)

    async def _flush_group(self, group: list[tuple[T, asyncio.Future[R]]]) -> None:
        self.flushes += 1
        try:
            results = await self._flush([item for item, _ in group])
        except BaseException as exc:
            if isinstance(exc, asyncio.CancelledError):
                _fail(group, exc)
                raise
            if len(group) > 1 and self.isolate(exc):  # find the bad row: each item on its own
                for one in group:
                    await self._flush_group([one])
                return
            _fail(group, exc)  # every caller of this group learns of the failure
            return
        for (_, future), result in zip(group, results, strict=True):
            if not future.done():
                future.set_result(result)


def _fail(group: list[tuple[T, asyncio.Future[R]]], exc: BaseException) -> None:
    for _, future in group:
        if not future.done():
            future.set_exception(exc)
