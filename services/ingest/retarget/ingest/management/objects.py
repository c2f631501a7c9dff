"""The routes campaigns and templates share: list the effective set, read one (and its
history), create or update (or only validate), delete. Mounted by campaigns.py and
templates.py under /v1/workspaces/{workspace_id}/{campaigns|templates}.

Every route first judges the key (access.py), then reads the body, then the name; a body or
name the rules refuse is a 422 naming the field, with nothing stored.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from fastapi import APIRouter, Request, Response

from retarget.config.records import ConfigChange, Kind
from retarget.config.validation import ConfigInvalid
from retarget.ingest.management.access import AdminDep
from retarget.ingest.management.bodies import read_object
from retarget.ingest.management.context import Management, ManagementDep
from retarget.ingest.management.effective import change_view, effective
from retarget.ingest.management.errors import ObjectNotFound, rejected
from retarget.ingest.management.names import NAME_PATTERN, checked_name

log = logging.getLogger(__name__)


def body_doc(description: str) -> dict[str, Any]:
    """OpenAPI text for a body the handler reads itself (after the key is judged)."""
    schema = {"type": "object", "description": description}
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": schema}, "application/yaml": {"schema": schema}},
        }
    }


def json_response(data: Any, status_code: int = 200) -> Response:
    return Response(
        orjson.dumps(data),
        status_code=status_code,
        media_type="application/json",
        headers={"Cache-Control": "no-store"},
    )


async def effective_one(m: Management, workspace_id: str, kind: Kind, name: str) -> dict[str, Any]:
    own = [c for c in await m.store.current(workspace_id, kind) if c.name == name]
    bundled = m.bundled(kind)
    views = effective(kind, own, {name: bundled[name]} if name in bundled else {})
    if name not in views:
        raise ObjectNotFound(f"{kind} {name!r} does not exist in this workspace")
    return views[name]


async def apply_checked(
    m: Management,
    workspace_id: str,
    kind: Kind,
    name: str,
    body: dict[str, Any],
    *,
    author: str,
    dry_run: bool,
) -> ConfigChange:
    try:
        change = await m.store.apply(workspace_id, kind, name, body, author=author, dry_run=dry_run)
    except ConfigInvalid as exc:  # names the object and the field; nothing was stored
        raise rejected(exc) from None
    except LookupError as exc:  # UnknownWorkspace: a key whose workspace row is gone
        raise ObjectNotFound(str(exc)) from None
    if not dry_run:
        log.info(
            "configuration changed",
            extra={
                "workspace_id": workspace_id,
                "kind": kind,
                "name": name,
                "version": change.version,
                "author": author,
            },
        )
    return change


def stored(change: ConfigChange, *, dry_run: bool) -> Response:
    view = change_view(change)
    if dry_run:
        return json_response({"valid": True, "stored": False, "name": change.name, "body": change.body})
    return json_response(view | {"stored": True})


def object_router(kind: Kind, plural: str, description: str) -> APIRouter:
    router = APIRouter(prefix=f"/v1/workspaces/{{workspace_id}}/{plural}", tags=[f"management: {plural}"])
    name_doc = f"{kind} name, matching {NAME_PATTERN}"

    @router.get("", summary=f"The workspace's {plural}: bundled defaults and its own")
    async def list_objects(admin: AdminDep, m: ManagementDep) -> Response:
        views = effective(kind, await m.store.current(admin.workspace_id, kind), m.bundled(kind))
        return json_response({plural: list(views.values())})

    @router.get("/{name}", summary=f"One {kind} (with ?history=true, every stored version)")
    async def get_object(name: str, admin: AdminDep, m: ManagementDep, history: bool = False) -> Response:
        checked_name(kind, name)
        if not history:
            return json_response(await effective_one(m, admin.workspace_id, kind, name))
        versions = sorted(await m.store.history(admin.workspace_id, kind, name), key=lambda c: c.version)
        if versions and versions[-1].deleted:  # a deleted object's history stays readable
            view = change_view(versions[-1])
        else:
            view = await effective_one(m, admin.workspace_id, kind, name)
        view["history"] = [change_view(c) for c in reversed(versions)]
        return json_response(view)

    @router.post(
        "/{name}:validate",
        summary=f"Validate a {kind} without storing it",
        openapi_extra=body_doc(description),
    )
    async def validate_object(name: str, request: Request, admin: AdminDep, m: ManagementDep) -> Response:
        body = await read_object(request, limit=m.max_body_bytes)
        checked_name(kind, name)
        change = await apply_checked(
            m, admin.workspace_id, kind, name, body, author=admin.author, dry_run=True
        )
        return stored(change, dry_run=True)

    @router.put(
        "/{name}",
        summary=f"Create or update a {kind} (?dry_run=true: validate only)",
        openapi_extra=body_doc(description),
        description=name_doc,
    )
    async def put_object(
        name: str, request: Request, admin: AdminDep, m: ManagementDep, dry_run: bool = False
    ) -> Response:
        body = await read_object(request, limit=m.max_body_bytes)
        checked_name(kind, name)
        change = await apply_checked(
            m, admin.workspace_id, kind, name, body, author=admin.author, dry_run=dry_run
        )
        return stored(change, dry_run=dry_run)

    @router.delete("/{name}", summary=f"Delete a {kind} (a bundled one of that name is hidden too)")
    async def delete_object(name: str, admin: AdminDep, m: ManagementDep) -> Response:
        checked_name(kind, name)
        await effective_one(m, admin.workspace_id, kind, name)  # 404 for what the workspace doesn't have
        try:
            change = await m.store.delete(admin.workspace_id, kind, name, author=admin.author)
        except LookupError as exc:  # ConfigNotFound: deleted meanwhile by another writer
            raise ObjectNotFound(str(exc)) from None
        log.info(
            "configuration deleted",
            extra={
                "workspace_id": admin.workspace_id,
                "kind": kind,
                "name": name,
                "version": change.version,
                "author": admin.author,
            },
        )
        return json_response(change_view(change))

    return router
