"""Process plumbing shared by the services: the event loop and graceful shutdown.

SIGTERM or SIGINT sets a stop event; the service finishes the work in hand, commits its
offsets and closes its clients. A second signal is left to the default handler, so an
operator can still force the exit.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable


def install_stop_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()

    def _on_signal(sig: signal.Signals) -> None:
        stop.set()
        loop.remove_signal_handler(sig)  # a second signal terminates at once

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, _on_signal, sig)


def run(main: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    """Run `main(stop)` on uvloop (when available) with stop-signal handling."""

    async def _main() -> None:
        stop = asyncio.Event()
        install_stop_signals(stop)
        await main(stop)

    try:
        import uvloop

        uvloop.run(_main())
    except ImportError:  # pragma: no cover - uvloop is a dependency on POSIX
        asyncio.run(_main())
