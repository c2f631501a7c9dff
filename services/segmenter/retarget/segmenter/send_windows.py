"""Each workspace's time zone and quiet hours, cached from PostgreSQL for send-time choices.

`send_time: optimal` picks a local hour (send_time.py), so the segmenter needs what the sender
applies: the workspace's time zone (workspaces.timezone; a profile's own wins) and its quiet
hours (sending_policies, else the default RETARGET_QUIET_HOURS — the sender's setting of the
same name, so one variable sets both). Reloaded with the consent modes (app.py), never per
trigger; a failed reload keeps the last known windows, and an unknown workspace gets UTC and
the default quiet hours. A changed zone or quiet hours applies to waits that end after the
reload: a send time once chosen is kept (firing.hold_for_send_time).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import time

import asyncpg

from retarget.segmenter.send_time import SendWindow

log = logging.getLogger(__name__)
Fetch = Callable[[], Awaitable[dict[str, SendWindow]]]

_LOAD = """
SELECT w.id, w.timezone, p.quiet_start, p.quiet_end
FROM workspaces w LEFT JOIN sending_policies p ON p.workspace_id = w.id
"""


def parse_quiet_hours(text: str | None) -> tuple[time, time] | None:
    """'21:00-08:00' (local time, may wrap midnight); None for unset or an empty period."""
    if not text:
        return None
    try:
        start, end = (time.fromisoformat(part.strip()) for part in text.split("-"))
    except ValueError as exc:
        raise ValueError(f"quiet hours {text!r} are not HH:MM-HH:MM such as 21:00-08:00") from exc
    return None if start == end else (start, end)


class SendWindows:
    def __init__(self, fetch: Fetch | None = None, default_quiet: tuple[time, time] | None = None) -> None:
        self._fetch = fetch
        self._default = SendWindow("UTC", *(default_quiet or (None, None)))
        self._windows: dict[str, SendWindow] = {}
        self._failing = False
        # set once the first load was tried: events wait for it, so an open's local hour is
        # read in the workspace's zone from a worker's first batch on (loop_wiring, agent_wiring)
        self.attempted = asyncio.Event()
        if fetch is None:
            self.attempted.set()

    def __call__(self, workspace_id: str) -> SendWindow:
        return self._windows.get(workspace_id, self._default)

    async def refresh(self) -> bool:
        """Reload every workspace's window; on failure keep the last known ones."""
        if self._fetch is None:
            return False
        try:
            windows = await self._fetch()
        except Exception as exc:  # PostgreSQL away, timing out, or a table missing
            if not self._failing:
                log.warning(
                    "send windows not reloaded; keeping the last known ones", extra={"error": repr(exc)}
                )
            self._failing = True
            return False
        finally:
            self.attempted.set()
        self._failing = False
        self._windows = windows
        return True


class PgSendWindows:
    """The fetch: one short-lived connection per reload, as for the consent modes."""

    def __init__(self, dsn: str, *, timeout_s: float, default_quiet: tuple[time, time] | None) -> None:
        self._dsn, self._timeout_s, self._default_quiet = dsn, timeout_s, default_quiet

    async def __call__(self) -> dict[str, SendWindow]:
        async with asyncio.timeout(self._timeout_s * 2):
            conn = await asyncpg.connect(self._dsn, timeout=self._timeout_s)
            try:
                rows = await conn.fetch(_LOAD)
            finally:
                await conn.close()
        return {row["id"]: self._window(row) for row in rows}

    def _window(self, row: asyncpg.Record) -> SendWindow:
        quiet = self._default_quiet
        if row["quiet_start"] is not None:  # the workspace's own, as the sender reads it (policies.py)
            start, end = row["quiet_start"], row["quiet_end"]
            quiet = None if start == end else (start, end)
        return SendWindow(row["timezone"] or "UTC", *(quiet or (None, None)))
