"""/v1/workspaces/{workspace_id}/suppressions: look up, list, add and remove the workspace's
suppressions. Only hashes are stored and listed; the one address an answer repeats is the
one the caller asked about. Removing a complaint or an erasure tombstone is refused (409
naming the reason, suppression_rows.py says why); adding is idempotent."""

from __future__ import annotations

import re

from fastapi import APIRouter, Query, Request, Response

from retarget.common.identity import email_digest
from retarget.ingest.errors import InvalidField
from retarget.ingest.management.access import AdminDep
from retarget.ingest.management.bodies import read_object
from retarget.ingest.management.context import ManagementDep
from retarget.ingest.management.errors import ObjectNotFound, SuppressionProtected
from retarget.ingest.management.objects import body_doc, json_response
from retarget.ingest.management.suppression_rows import SuppressionRows

router = APIRouter(prefix="/v1/workspaces/{workspace_id}/suppressions", tags=["management: suppressions"])

MAX_EMAIL_CHARS = 254  # RFC 5321's path limit
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def _digest(email: object) -> bytes:
    if not isinstance(email, str) or len(email.strip()) > MAX_EMAIL_CHARS or not _EMAIL.match(email.strip()):
        raise InvalidField("email must be an address like name@example.com", field="email")
    return email_digest(email)


@router.get("", summary="One address's suppression (?email=), or a page of the list (hashes only)")
async def lookup_or_list(
    admin: AdminDep,
    m: ManagementDep,
    email: str | None = None,
    after: str | None = Query(None, description="email_hash of the last entry of the previous page"),
    limit: int = Query(100, ge=1, le=1000),
) -> Response:
    rows = SuppressionRows(m.db)
    if email is not None:
        found = await rows.find(admin.workspace_id, _digest(email))
        if found is None:
            return json_response({"email": email, "suppressed": False})
        return json_response({"email": email, "suppressed": True} | found.view())
    if after is not None and not _HEX64.match(after):
        raise InvalidField(
            "after must be an email_hash (64 lowercase hex digits) from a previous page", field="after"
        )
    page = await rows.page(admin.workspace_id, bytes.fromhex(after) if after else b"", limit)
    more = len(page) == limit
    return json_response(
        {"suppressions": [s.view() for s in page], "next": page[-1].email_hash.hex() if more else None}
    )


@router.post(
    "", summary="Suppress an address (reason manual)", openapi_extra=body_doc('{"email": "name@example.com"}')
)
async def add(request: Request, admin: AdminDep, m: ManagementDep) -> Response:
    body = await read_object(request, limit=m.max_body_bytes)
    digest = _digest(body.get("email"))
    rows = SuppressionRows(m.db)
    if await rows.add_manual(admin.workspace_id, digest, admin.author):
        return json_response({"suppressed": True, "added": True, "reason": "manual"}, status_code=201)
    existing = await rows.find(admin.workspace_id, digest)
    return json_response(
        {"suppressed": True, "added": False, "reason": existing.reason if existing else None}
    )


@router.delete("", summary="Remove an address's suppression (refused for complaints and erasures)")
async def remove(admin: AdminDep, m: ManagementDep, email: str | None = None) -> Response:
    digest = _digest(email)
    rows = SuppressionRows(m.db)
    if await rows.remove_unprotected(admin.workspace_id, digest):
        return json_response({"email": email, "suppressed": False, "removed": True})
    existing = await rows.find(admin.workspace_id, digest)
    if existing is None:
        raise ObjectNotFound("this address is not on the workspace's suppression list")
    raise SuppressionProtected(
        f"this address was suppressed because of a {existing.reason} and stays suppressed: "
        + (
            "the recipient reported spam"
            if existing.reason == "complaint"
            else "the person was erased (GDPR)"
        ),
        reason=existing.reason,
    )
