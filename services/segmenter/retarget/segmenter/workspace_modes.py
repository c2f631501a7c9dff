"""Each workspace's consent mode (opt_in / opt_out), cached from PostgreSQL for fire time.

The segmenter must keep firing while PostgreSQL is away, so it never asks per trigger: a
timer reloads every workspace's mode every RETARGET_CONSENT_REFRESH_S seconds, and a failed
reload keeps the last known modes (logged once per outage). A workspace the cache doesn't
know (created since the last reload, or PostgreSQL never reached) counts as opt_out: the
sender enforces opt-in again at send time from its own read, so an opt-in workspace's mail
still never goes out without consent. Until the first load was attempted the timer holds
due triggers back (app.py), so a worker's first seconds don't fire on defaults.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import asyncpg

from retarget.common.workspaces import ConsentMode, WorkspaceStore

log = logging.getLogger(__name__)
Fetch = Callable[[], Awaitable[dict[str, ConsentMode]]]
DEFAULT_MODE: ConsentMode = "opt_out"


class ConsentModes:
    def __init__(self, fetch: Fetch | None = None) -> None:
        self._fetch = fetch
        self._modes: dict[str, ConsentMode] = {}
        self.attempted = fetch is None  # nothing to wait for without a database
        self._failing = False

    def __call__(self, workspace_id: str) -> ConsentMode:
        return self._modes.get(workspace_id, DEFAULT_MODE)

    def __len__(self) -> int:
        return len(self._modes)

    async def refresh(self) -> bool:
        """Reload every mode; on failure keep the last known ones. True when reloaded."""
        if self._fetch is None:
            return False
        try:
            modes = await self._fetch()
        except Exception as exc:  # PostgreSQL away, timing out, or the table missing
            if not self._failing:
                log.warning(
                    "workspace consent modes not reloaded; keeping the last known ones",
                    extra={"error": repr(exc), "known": len(self._modes)},
                )
            self._failing = True
            return False
        finally:
            self.attempted = True
        if self._failing:
            log.info("workspace consent modes reloaded again", extra={"known": len(modes)})
        self._failing = False
        self._modes = modes
        return True


class PgConsentModes:
    """The fetch: one short-lived connection per reload (no pool to nurse through outages)."""

    def __init__(self, dsn: str, *, timeout_s: float) -> None:
        self._dsn = dsn
        self._timeout_s = timeout_s

    async def __call__(self) -> dict[str, ConsentMode]:
        async with asyncio.timeout(self._timeout_s * 2):
            conn = await asyncpg.connect(self._dsn, timeout=self._timeout_s)
            try:
                return {w.id: w.consent_mode for w in await WorkspaceStore(conn).list()}
            finally:
                await conn.close()
