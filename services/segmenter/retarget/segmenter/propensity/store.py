"""The propensity_models table (migration 016): each workspace's trained versions.

StoredModel carries the model's JSON as it was stored; `model.loads` checks it before anything
scores with it, so a row this build can't use is refused there, with the reason.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from retarget.segmenter.propensity.model import LogisticModel, dumps

_COLUMNS = "workspace_id, version, kind, model::text AS model, metrics::text AS metrics, trained_until, horizon_s, trained_at"


@dataclass(frozen=True)
class StoredModel:
    workspace_id: str
    version: int
    kind: str
    body: bytes  # the model's JSON (model.loads)
    metrics: dict[str, Any]
    trained_until: datetime
    horizon: timedelta
    trained_at: datetime


class ModelStore:
    """Queries on propensity_models. `db` is an asyncpg pool or connection."""

    def __init__(self, db: Any) -> None:
        self._db = db

    async def save(
        self,
        workspace_id: str,
        model: LogisticModel,
        metrics: dict[str, Any],
        *,
        until: datetime,
        horizon: timedelta,
    ) -> int:
        """Stores the model as the workspace's next version; returns the version."""
        for _ in range(5):  # two trainings at once: the second one's version is taken, it retries
            try:
                version: int = await self._db.fetchval(
                    """INSERT INTO propensity_models
                           (workspace_id, version, kind, model, features, metrics, trained_until, horizon_s)
                       SELECT $1, coalesce(max(version), 0) + 1, $2, $3::jsonb, $4, $5::jsonb, $6, $7
                       FROM propensity_models WHERE workspace_id = $1
                       RETURNING version""",
                    workspace_id,
                    model.kind,
                    dumps(model).decode(),
                    list(model.features),
                    json.dumps(metrics),
                    until,
                    horizon.total_seconds(),
                )
                return version
            except asyncpg.UniqueViolationError:
                continue
        raise RuntimeError(f"could not take a model version for {workspace_id!r}: too many trainings at once")

    async def newest(self, workspace_id: str) -> StoredModel | None:
        row = await self._db.fetchrow(
            f"SELECT {_COLUMNS} FROM propensity_models WHERE workspace_id = $1 ORDER BY version DESC LIMIT 1",
            workspace_id,
        )
        return _stored(row) if row else None

    async def get(self, workspace_id: str, version: int) -> StoredModel | None:
        row = await self._db.fetchrow(
            f"SELECT {_COLUMNS} FROM propensity_models WHERE workspace_id = $1 AND version = $2",
            workspace_id,
            version,
        )
        return _stored(row) if row else None

    async def newest_of_each(self) -> dict[str, StoredModel]:
        rows = await self._db.fetch(
            f"SELECT DISTINCT ON (workspace_id) {_COLUMNS} FROM propensity_models ORDER BY workspace_id, version DESC"
        )
        return {r["workspace_id"]: _stored(r) for r in rows}

    async def record_evaluation(self, workspace_id: str, version: int, evaluation: dict[str, Any]) -> None:
        await self._db.execute(
            """UPDATE propensity_models SET metrics = metrics || jsonb_build_object('evaluation', $3::jsonb)
               WHERE workspace_id = $1 AND version = $2""",
            workspace_id,
            version,
            json.dumps(evaluation),
        )


def _stored(row: Any) -> StoredModel:
    return StoredModel(
        workspace_id=row["workspace_id"],
        version=row["version"],
        kind=row["kind"],
        body=row["model"].encode(),
        metrics=json.loads(row["metrics"]),
        trained_until=row["trained_until"],
        horizon=timedelta(seconds=row["horizon_s"]),
        trained_at=row["trained_at"],
    )
