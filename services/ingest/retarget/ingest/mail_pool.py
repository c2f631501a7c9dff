"""Mail is read off the event loop, in a small pool of threads, within a time budget.

Reading a hostile mail took seconds inside the event loop (a 244 KB subject of encoded words:
9 s), and every other SMTP client waited that long for its EHLO. Here a read runs in a
thread: the loop keeps answering other sessions (the GIL is handed back every few ms).

Why threads and not processes: a thread can't be killed, a process can. But what a thread
runs is bounded (mail_reading.py: size, nesting, subject), so an overrunning read ends on its
own; the pool has `workers` slots, a read holds its slot until it really ends — past its
deadline too — and a mail arriving while every slot is taken is answered 451 at once. So at
most `workers` reads ever run, whatever is sent, with no process pool to start, feed and
restart. The measured worst case is in services/ingest/README.md.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")


class PoolBusy(Exception):
    """Every slot is taken (by reads that may have overrun): try again later."""


class TooSlow(Exception):
    """The read did not finish within its budget (its thread finishes it, unheard)."""


class MailPool:
    def __init__(self, workers: int, budget_s: float) -> None:
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mail-read")
        self._slots = threading.BoundedSemaphore(workers)
        self._budget_s = budget_s

    async def run(self, read: Callable[[bytes], T], raw: bytes) -> T:
        if not self._slots.acquire(blocking=False):
            raise PoolBusy
        try:
            future: Future[T] = self._executor.submit(read, raw)
        except BaseException:
            self._slots.release()
            raise
        # released when the read ends, not when we stop waiting for it
        future.add_done_callback(lambda _: self._slots.release())
        try:
            async with asyncio.timeout(self._budget_s):
                return await asyncio.wrap_future(future)
        except TimeoutError:
            raise TooSlow from None

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
