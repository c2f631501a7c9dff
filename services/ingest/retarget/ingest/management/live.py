"""GET /v1/workspaces/{workspace_id}/config/live: for every service instance (table
config_applied, upserted by each instance every few seconds), the feed offset it applied
and whether each of the workspace's current versions is live there — i.e. the instance
applied the feed past the record that carries that version. A version not yet in the feed
(committed, not yet relayed) is live nowhere."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from retarget.ingest.management.access import AdminDep
from retarget.ingest.management.context import ManagementDep
from retarget.ingest.management.objects import json_response

router = APIRouter(prefix="/v1/workspaces/{workspace_id}/config", tags=["management: live"])

_INSTANCES = (
    "SELECT service, instance, feed_offset, applied_at FROM config_applied ORDER BY service, instance"
)


def is_live(version: int, placed: tuple[int, int] | None, applied_offset: int) -> bool:
    return placed is not None and placed[0] >= version and applied_offset >= placed[1]


@router.get("/live", summary="Which of the workspace's current versions each service instance applied")
async def live(admin: AdminDep, m: ManagementDep) -> Response:
    current = [c for c in await m.store.current(admin.workspace_id)]
    placed = await m.feed_offsets(admin.workspace_id)
    rows = await m.db.run("read config_applied", lambda p: p.fetch(_INSTANCES))
    instances: list[dict[str, Any]] = []
    for row in rows:
        versions = [
            {
                "kind": c.kind,
                "name": c.name,
                "version": c.version,
                "live": is_live(c.version, placed.get((c.kind, c.name)), row["feed_offset"]),
            }
            for c in sorted(current, key=lambda c: (c.kind, c.name))
        ]
        instances.append(
            {
                "service": row["service"],
                "instance": row["instance"],
                "feed_offset": row["feed_offset"],
                "applied_at": row["applied_at"].isoformat(),
                "versions": versions,
                "all_live": all(v["live"] for v in versions),
            }
        )
    return json_response({"instances": instances})
