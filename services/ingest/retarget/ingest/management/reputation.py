"""/v1/workspaces/{workspace_id}/reputation, /pause, /resume: the reputation guard's operator
side over HTTP (the CLI's `retarget workspace reputation|pause|resume`; docs/deliverability.md).

Same key rules as every management route (access.py): a secret key with scope `admin` of the
workspace. A resume is recorded with the key's shown prefix, so who resumed stays known.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, Request, Response

from retarget.common.reputation_settings import ReputationSettings
from retarget.common.reputation_store import pause, report, resume
from retarget.ingest.errors import InvalidField
from retarget.ingest.management.access import AdminDep
from retarget.ingest.management.bodies import read_object
from retarget.ingest.management.context import ManagementDep
from retarget.ingest.management.objects import body_doc, json_response

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1/workspaces/{workspace_id}", tags=["management: reputation"])
MAX_TEXT_CHARS = 500


@router.get("/reputation", summary="Complaint and hard-bounce rates over the window, and the pause if any")
async def get_reputation(admin: AdminDep, m: ManagementDep) -> Response:
    settings = ReputationSettings()
    window, now = timedelta(hours=settings.window_h), datetime.now(UTC)
    shown = await m.db.run(
        "read the reputation", lambda p: report(p, admin.workspace_id, settings.thresholds(), window, now)
    )
    return json_response(shown)


@router.post(
    "/pause",
    summary="Hold the workspace's marketing mail until it is resumed",
    openapi_extra=body_doc('{"reason": "purchased list imported by mistake"}'),
)
async def pause_workspace(request: Request, admin: AdminDep, m: ManagementDep) -> Response:
    reason = _text(await read_object(request, limit=m.max_body_bytes), "reason", required=True)
    detail = f"{reason} (by {admin.author})"
    done = await m.db.run(
        "pause the workspace", lambda p: pause(p, admin.workspace_id, "operator", detail, datetime.now(UTC))
    )
    log.warning("workspace paused by an operator", extra={"workspace_id": admin.workspace_id})
    return json_response({"paused": True, "changed": done})


@router.post(
    "/resume",
    summary="Send the held mail (once each) and new mail again; rates are judged afresh from now",
    openapi_extra=body_doc('{"note": "list cleaned, campaign fixed"}'),
)
async def resume_workspace(request: Request, admin: AdminDep, m: ManagementDep) -> Response:
    has_body = request.headers.get("content-length", "0") not in ("", "0")
    note = _text(await read_object(request, limit=m.max_body_bytes), "note") if has_body else ""
    detail = f"resumed by {admin.author}" + (f": {note}" if note else "")
    done = await m.db.run(
        "resume the workspace", lambda p: resume(p, admin.workspace_id, datetime.now(UTC), detail)
    )
    if done:
        log.warning("workspace resumed", extra={"workspace_id": admin.workspace_id})
    return json_response({"paused": False, "changed": done})


def _text(body: dict[str, object], field: str, *, required: bool = False) -> str:
    value = body.get(field, None if required else "")
    if (
        not isinstance(value, str)
        or (required and not value.strip())
        or len(value) > MAX_TEXT_CHARS
        or "\x00" in value  # PostgreSQL's text can't hold it: a 503 "try later" that never succeeds
    ):
        raise InvalidField(
            f"{field} must be a text of 1 to {MAX_TEXT_CHARS} characters, without NUL", field=field
        )
    return value.strip()
