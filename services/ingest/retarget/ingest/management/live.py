"""GET /v1/workspaces/{workspace_id}/config/live: for every service instance (table
config_applied, upserted by each instance every few seconds), the feed offset it applied
and whether each of the workspace's current versions is live there — i.e. the instance
applied the feed at least up to the record that carries that version (config_versions'
feed_offset, set when it was published). A version not yet published is live nowhere."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from retarget.ingest.management.access import AdminDep
from retarget.ingest.management.context import ManagementDep
from retarget.ingest.management.objects import json_response

router = APIRouter(prefix="/v1/workspaces/{workspace_id}/config", tags=["management: live"])

_CURRENT = """SELECT kind, name, version, feed_offset FROM config_current WHERE workspace_id = $1
ORDER BY kind, name"""
_INSTANCES = (
    "SELECT service, instance, feed_offset, applied_at FROM config_applied ORDER BY service, instance"
)


def is_live(version_offset: int | None, applied_offset: int) -> bool:
    return version_offset is not None and applied_offset >= version_offset


@router.get("/live", summary="Which of the workspace's current versions each service instance applied")
async def live(admin: AdminDep, m: ManagementDep) -> Response:
    current = await m.db.run("read the current versions", lambda p: p.fetch(_CURRENT, admin.workspace_id))
    rows = await m.db.run("read config_applied", lambda p: p.fetch(_INSTANCES))
    instances: list[dict[str, Any]] = []
    for row in rows:
        versions = [
            {
                "kind": c["kind"],
                "name": c["name"],
                "version": c["version"],
                "live": is_live(c["feed_offset"], row["feed_offset"]),
            }
            for c in current
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
