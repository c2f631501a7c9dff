"""Progress for long steps: a spinner on a terminal, a line every few seconds elsewhere.

Progress goes to stderr so `status --json` and other machine output on stdout stay clean.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from rich.console import Console

console = Console(stderr=True, highlight=False)


def say(message: str) -> None:
    # soft_wrap: long paths stay on one line, so logs of `up` can be grepped.
    console.print(message, soft_wrap=True)


async def wait_until(
    check: Callable[[], Awaitable[bool]],
    *,
    what: str,
    timeout: float,
    interval: float = 0.25,
    gave_up: Callable[[], bool] = lambda: False,
) -> float | None:
    """Poll `check` until true; returns seconds waited, or None on timeout / `gave_up()`.

    `gave_up` lets a caller stop early, e.g. when the process being waited for died.
    """
    start = time.monotonic()
    next_note = start + 5.0
    with console.status(f"{what}…") as status:
        while True:
            if await check():
                return time.monotonic() - start
            now = time.monotonic()
            if now - start > timeout or gave_up():
                return None
            status.update(f"{what}… {now - start:.0f}s")
            if not console.is_terminal and now >= next_note:
                say(f"  still {what} ({now - start:.0f}s of {timeout:.0f}s)")
                next_note = now + 5.0
            await asyncio.sleep(interval)
