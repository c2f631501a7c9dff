"""The newest propensity model of each workspace, hot-loaded from PostgreSQL for fire time.

Like the consent modes (workspace_modes.py): never a query per trigger. A timer reloads the
newest version of every workspace every RETARGET_PROPENSITY_REFRESH_S seconds; a failed reload
keeps the models already loaded (logged once per outage), so the segmenter keeps firing while
PostgreSQL is away. A model only replaces the loaded one when its version is new, and a row
this build can't use (model.loads refuses it) is logged and leaves the workspace's previous
model in place. Until the first load was tried the timer holds due triggers back (as for the
consent modes), so a worker's first seconds don't pass likely buyers unscored. A workspace
without a model scores None: the campaign condition then passes
(counted as `no_model`, services/segmenter/README.md).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from retarget.segmenter.propensity.model import LogisticModel, ModelError, loads
from retarget.segmenter.propensity.store import ModelStore, StoredModel
from retarget.segmenter.state import Profile

log = logging.getLogger(__name__)
Fetch = Callable[[], Awaitable[dict[str, StoredModel]]]


@dataclass(frozen=True)
class Score:
    value: float
    version: int


Scorer = Callable[[Profile, datetime], Score | None]


class PropensityModels:
    def __init__(self, fetch: Fetch | None = None) -> None:
        self._fetch = fetch
        self._models: dict[str, tuple[int, LogisticModel]] = {}
        self.attempted = fetch is None  # the timer holds due triggers until the first load was tried
        self._failing = False

    def __call__(self, profile: Profile, as_of: datetime) -> Score | None:
        loaded = self._models.get(profile.workspace_id)
        if loaded is None:
            return None
        version, model = loaded
        return Score(model.score(profile, as_of), version)

    def __len__(self) -> int:
        return len(self._models)

    def version(self, workspace_id: str) -> int | None:
        loaded = self._models.get(workspace_id)
        return loaded[0] if loaded else None

    async def refresh(self) -> bool:
        """Load every workspace's newest version; on failure keep what is loaded. True when reloaded."""
        if self._fetch is None:
            return False
        try:
            stored = await self._fetch()
        except Exception as exc:  # PostgreSQL away, timing out, or the table missing
            if not self._failing:
                log.warning(
                    "propensity models not reloaded; keeping the loaded ones",
                    extra={"error": repr(exc), "known": len(self._models)},
                )
            self._failing = True
            return False
        finally:
            self.attempted = True
        if self._failing:
            log.info("propensity models reloaded again", extra={"known": len(stored)})
        self._failing = False
        models = {}
        for workspace_id, row in stored.items():
            newest = self._newest(workspace_id, row)
            if newest is not None:
                models[workspace_id] = newest
        self._models = models
        return True

    def _newest(self, workspace_id: str, row: StoredModel) -> tuple[int, LogisticModel] | None:
        loaded = self._models.get(workspace_id)
        if loaded is not None and loaded[0] == row.version:
            return loaded  # unchanged: not parsed again
        try:
            model = loads(row.body)
        except ModelError as exc:
            log.warning(
                "propensity model not usable; keeping the previous one",
                extra={"workspace": workspace_id, "version": row.version, "reason": str(exc)},
            )
            return loaded
        log.info("propensity model loaded", extra={"workspace": workspace_id, "version": row.version})
        return row.version, model


class PgModels:
    """The fetch: one short-lived connection per reload (no pool to nurse through outages)."""

    def __init__(self, dsn: str, *, timeout_s: float) -> None:
        self._dsn = dsn
        self._timeout_s = timeout_s

    async def __call__(self) -> dict[str, StoredModel]:
        async with asyncio.timeout(self._timeout_s * 2):
            conn = await asyncpg.connect(self._dsn, timeout=self._timeout_s)
            try:
                return await ModelStore(conn).newest_of_each()
            finally:
                await conn.close()
