"""/v1/workspaces/{workspace_id}/dkim: the workspace's DKIM keys (kind `dkim`, name = selector).

POST generates new keys (Ed25519 and RSA-2048 by default; `?algorithm=ed25519|rsa|both`,
`?selector=`, `?domain=`, default the From address's domain), stores them sealed through the
ConfigService (the sender signs with them from the next message) and answers the DNS TXT
records to publish; a workspace's previous keys become `retiring` (both sign until
`retire_at`). GET lists the selectors with their state and DNS records. The private key is
never in an answer: it is sealed before it is stored and only the sender opens it.
Same key rules as every management route (access.py): a secret key with scope `admin` of
the workspace, judged before anything else.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Literal

from fastapi import APIRouter, Response

from retarget.common.workspaces import WorkspaceStore
from retarget.config.dkim import Algorithm
from retarget.config.dkim_admin import generate_keys, list_keys, signing_domain
from retarget.config.dkim_settings import DkimSettings
from retarget.config.seal import SealKeyMissing, load_seal_key
from retarget.ingest.errors import Unavailable
from retarget.ingest.management.access import AdminDep
from retarget.ingest.management.context import ManagementDep
from retarget.ingest.management.errors import ConfigRejected, ObjectNotFound, rejected
from retarget.ingest.management.objects import json_response

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1/workspaces/{workspace_id}/dkim", tags=["management: DKIM"])


@router.get("", summary="The workspace's DKIM selectors, their state and DNS records (never a private key)")
async def get_keys(admin: AdminDep, m: ManagementDep) -> Response:
    keys = await list_keys(m.store, admin.workspace_id)
    return json_response({"keys": [asdict(k) for k in keys]})


@router.post("", summary="Generate DKIM keys (rotates the current ones); answers the DNS records to publish")
async def generate(
    admin: AdminDep,
    m: ManagementDep,
    algorithm: Literal["ed25519", "rsa", "both"] = "both",
    selector: str | None = None,
    domain: str | None = None,
) -> Response:
    settings = DkimSettings()
    try:
        seal_key = load_seal_key(settings)
    except SealKeyMissing as exc:  # an operator's fix, not the caller's
        log.error("DKIM keys can't be generated: no configuration seal key", extra={"problem": str(exc)})
        raise Unavailable(
            "DKIM keys can't be generated here now: the configuration seal key is not set", retry_after_s=300
        ) from None
    workspace_id = admin.workspace_id
    if domain is None:
        workspace = await m.db.run("look up the workspace", lambda p: WorkspaceStore(p).get(workspace_id))
        domain = await signing_domain(m.store, workspace_id, workspace.from_email if workspace else None)
        if domain is None:
            raise ConfigRejected(
                "dkim: field domain: the workspace has no From address; give ?domain=", field="domain"
            )
    algorithms: list[Algorithm] = ["ed25519", "rsa"] if algorithm == "both" else [algorithm]
    try:
        generated = await generate_keys(
            m.store,
            workspace_id,
            domain=domain.lower(),
            algorithms=algorithms,
            seal_key=seal_key,
            grace=settings.rotation_grace,
            now=datetime.now(UTC),
            author=admin.author,
            selector=selector,
        )
    except LookupError as exc:  # UnknownWorkspace: a key whose workspace row is gone
        raise ObjectNotFound(str(exc)) from None
    except ValueError as exc:  # ConfigInvalid, a selector already used: names the field, nothing stored
        raise rejected(exc) from None
    log.info(
        "DKIM keys generated",
        extra={
            "workspace_id": workspace_id,
            "selectors": [k.selector for k in generated.new],
            "author": admin.author,
        },
    )
    return json_response(
        {
            "keys": [asdict(k) for k in generated.new],
            "retiring": [asdict(k) for k in generated.retiring],
            "dns_records": [k.dns for k in generated.new],
        },
        status_code=201,
    )
