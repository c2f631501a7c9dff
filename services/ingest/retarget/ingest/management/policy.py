"""/v1/workspaces/{workspace_id}/policy and …/identity: the workspace's sending policy
(consent mode, caps, quiet hours, rate) and sender identity (from, reply-to, postal
address, timezone, link domains, allowed browser origins), one object each (ConfigService kinds `policy` and
`identity`, name ""). PUT replaces the whole object; the services apply it within seconds."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from retarget.config.records import Kind
from retarget.ingest.management.access import Admin, AdminDep
from retarget.ingest.management.bodies import read_object
from retarget.ingest.management.context import Management, ManagementDep
from retarget.ingest.management.effective import change_view
from retarget.ingest.management.objects import apply_checked, body_doc, json_response, stored

router = APIRouter(prefix="/v1/workspaces/{workspace_id}", tags=["management: policy and identity"])

POLICY_DOC = '{"consent_mode", "quiet_hours": {"start", "end"} or null, "rate": {"per_s", "burst"} or null, "caps": [...]}'
IDENTITY_DOC = (
    '{"from_name", "from_email", "reply_to", "postal_address", "timezone", "link_domains", "allowed_origins"}'
)


async def _current(m: Management, workspace_id: str, kind: Kind) -> Response:
    own = [c for c in await m.store.current(workspace_id, kind) if c.name == "" and not c.deleted]
    if not own:  # never set through the API: the deployment's defaults (and the workspaces table) apply
        return json_response({"kind": kind, "name": "", "source": "default", "version": None, "body": None})
    return json_response(change_view(max(own, key=lambda c: c.version)))


async def _replace(request: Request, m: Management, admin: Admin, kind: Kind, *, dry_run: bool) -> Response:
    body = await read_object(request, limit=m.max_body_bytes)
    workspace_id, author = admin.workspace_id, admin.author
    return stored(
        await apply_checked(m, workspace_id, kind, "", body, author=author, dry_run=dry_run), dry_run=dry_run
    )


@router.get("/policy", summary="The workspace's sending policy")
async def get_policy(admin: AdminDep, m: ManagementDep) -> Response:
    return await _current(m, admin.workspace_id, "policy")


@router.put(
    "/policy",
    summary="Replace the sending policy (?dry_run=true: validate only)",
    openapi_extra=body_doc(POLICY_DOC),
)
async def put_policy(request: Request, admin: AdminDep, m: ManagementDep, dry_run: bool = False) -> Response:
    return await _replace(request, m, admin, "policy", dry_run=dry_run)


@router.get("/identity", summary="The workspace's sender identity")
async def get_identity(admin: AdminDep, m: ManagementDep) -> Response:
    return await _current(m, admin.workspace_id, "identity")


@router.put(
    "/identity",
    summary="Replace the sender identity (?dry_run=true: validate only)",
    openapi_extra=body_doc(IDENTITY_DOC),
)
async def put_identity(
    request: Request, admin: AdminDep, m: ManagementDep, dry_run: bool = False
) -> Response:
    return await _replace(request, m, admin, "identity", dry_run=dry_run)
