"""/v1/workspaces/{workspace_id}/campaigns: the shared object routes (objects.py) plus
enable/disable, which store a new version with `enabled` set. Deleting a campaign stores a
deletion record; the segmenter cancels its pending triggers when it applies it."""

from __future__ import annotations

from fastapi import Response

from retarget.config.records import Kind
from retarget.ingest.management.access import AdminDep
from retarget.ingest.management.context import ManagementDep
from retarget.ingest.management.names import checked_name
from retarget.ingest.management.objects import apply_checked, effective_one, object_router, stored

KIND: Kind = "campaign"
router = object_router(KIND, "campaigns", "the campaign file's mapping (services/segmenter/README.md)")


async def _set_enabled(
    workspace_id: str, name: str, author: str, m: ManagementDep, enabled: bool
) -> Response:
    checked_name(KIND, name)
    current = await effective_one(m, workspace_id, KIND, name)  # the workspace's own or the bundled one
    body = dict(current["body"] or {}) | {"enabled": enabled}
    return stored(
        await apply_checked(m, workspace_id, KIND, name, body, author=author, dry_run=False), dry_run=False
    )


@router.post("/{name}/enable", summary="Run the campaign (stores a version with enabled: true)")
async def enable(name: str, admin: AdminDep, m: ManagementDep) -> Response:
    return await _set_enabled(admin.workspace_id, name, admin.author, m, True)


@router.post("/{name}/disable", summary="Stop the campaign (stores a version with enabled: false)")
async def disable(name: str, admin: AdminDep, m: ManagementDep) -> Response:
    return await _set_enabled(admin.workspace_id, name, admin.author, m, False)
