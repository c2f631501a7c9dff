"""Who may manage a workspace: a secret key with scope `admin` of the workspace in the path.

A FastAPI dependency, so it runs before the handler reads the body: a caller without the
right key learns nothing about the body or the objects (no key, unknown, revoked → 401; a
write key → 403 `secret_key_required`; a `privacy` key → 403 `insufficient_scope`; over the
key's rate → 429; see secret_auth.py). A valid admin key of another workspace → 403
`wrong_workspace`, the same answer whatever the path names, so it reveals nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from retarget.common.secret_keys import SHOWN_CHARS
from retarget.ingest.api.deps import ServicesDep
from retarget.ingest.auth import basic_username
from retarget.ingest.management.errors import OtherWorkspace
from retarget.ingest.secret_auth import bearer_token

ADMIN_SCOPE = "admin"


@dataclass(frozen=True)
class Admin:
    workspace_id: str
    author: str  # "sk:" + the key's shown prefix, as `retarget secret-key list` prints it


async def admin_of_path(workspace_id: str, request: Request, services: ServicesDep) -> Admin:
    authorization = request.headers.get("authorization")
    key_workspace = await services.secret_keys.workspace_for(authorization, None, scope=ADMIN_SCOPE)
    if key_workspace != workspace_id:
        raise OtherWorkspace("this secret key belongs to another workspace; use that workspace's admin key")
    key = bearer_token(authorization) or basic_username(authorization) or ""  # valid: judged above
    return Admin(workspace_id, f"sk:{key[:SHOWN_CHARS]}…")


AdminDep = Annotated[Admin, Depends(admin_of_path)]
