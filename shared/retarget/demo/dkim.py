"""The demo workspace's DKIM keys: an Ed25519 and an RSA key, generated on the first run through
the same code as `retarget dkim generate` (sealed, stored, on the change feed), reused later.

The sender signs every demo email with both (d= the From domain, shop.example), and the demo
prints the DNS records a real domain would publish for them.
"""

from __future__ import annotations

from datetime import UTC, datetime

from retarget.cli._config import config_service
from retarget.common.settings import CommonSettings
from retarget.common.workspaces import WorkspaceStore
from retarget.config.dkim import PublishedKey
from retarget.config.dkim_admin import generate_keys, list_keys, signing_domain
from retarget.config.dkim_settings import DkimSettings
from retarget.config.seal import load_seal_key
from retarget.devstack.seal_key import seal_key_file


async def ensure_dkim_keys(workspace_id: str, settings: CommonSettings | None = None) -> list[PublishedKey]:
    """The workspace's active keys, made (Ed25519 + RSA) when it has none; [] when the stack is away."""
    sealing = DkimSettings()
    if sealing.config_seal_key_file is None and sealing.config_seal_key is None:
        sealing = DkimSettings(config_seal_key_file=seal_key_file())  # the local stack's, as its services get
    seal_key = load_seal_key(sealing)
    async with config_service(settings) as opened:
        if opened is None:
            return []
        service = opened
        active = [k for k in await list_keys(service, workspace_id) if k.state == "active"]
        if active:
            return active
        workspace = await WorkspaceStore(service.pool).get(workspace_id)
        domain = await signing_domain(service, workspace_id, workspace.from_email if workspace else None)
        if domain is None:
            raise LookupError(f"workspace {workspace_id} has no From address to sign for")
        generated = await generate_keys(
            service,
            workspace_id,
            domain=domain,
            algorithms=("ed25519", "rsa"),
            seal_key=seal_key,
            grace=sealing.rotation_grace,
            now=datetime.now(UTC),
            author="demo",
        )
        return generated.new
