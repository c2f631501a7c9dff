"""Group commit: many concurrent callers, one database statement per round trip.

Each caller submits one item and awaits its own result. While a flush is running, new items
queue; the next flush takes them all. At low load a flush holds one item (no added latency);
at high load one round trip serves hundreds of messages — which is how per-message claims
and outcomes keep up with thousands of messages a second without a per-message transaction.
The flush runs in its own task, so a caller that is cancelled never strands the others.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class GroupCommit(Generic[T, R]):
    def __init__(self, flush: Callable[[list[T]], Awaitable[list[R]]], *, max_items: int = 1000) -> None:
        self._flush = flush
        self.max_items = max_items
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
            self.flushes += 1
            try:
                results = await self._flush([item for item, _ in group])
            except BaseException as exc:  # every caller of this group learns of the failure
                for _, future in group:
                    if not future.done():
                        future.set_exception(exc)
                if isinstance(exc, asyncio.CancelledError):
                    raise
                continue
            for (_, future), result in zip(group, results, strict=True):
                if not future.done():
                    future.set_result(result)
