"""The demo workspace, its write key, secret key and link secret: created once, reused by every
later run.

The write key is shown by `retarget devstack status` on purpose (it is public by design: anyone
may post events to the local demo). The link secret and the privacy secret key are not: they
live in files only their owner reads (.devstack/secrets/), and the demo names the file, never
the secret."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from retarget.common.secret_keys import SecretKeyStore
from retarget.common.workspaces import Workspace, WorkspaceStore
from retarget.common.write_keys import WriteKeyStore, hash_key
from retarget.demo.services import SHOP_PORT
from retarget.devstack.paths import devstack_dir
from retarget.devstack.state import load_state, update_state

DEMO_WORKSPACE = Workspace(
    id="demo",
    name="Demo Outdoor Shop",
    from_name="Demo Outdoor Shop",
    from_email="hello@shop.example",
    reply_to="support@shop.example",
    postal_address="1 Demo Street, Springfield, 12345, USA",
    # the simulated shop's site (product pages, images) and the survey campaign's survey host
    link_domains=("shop.example", "survey.example.com"),
    # the demo shop's pages (however the browser names the host) may send its events (CORS)
    allowed_origins=(f"http://127.0.0.1:{SHOP_PORT}", f"http://localhost:{SHOP_PORT}"),
)


@dataclass(frozen=True)
class DemoCredentials:
    workspace_id: str
    write_key: str
    link_secret: str
    secret_key: str  # scope privacy: for /v1/privacy/*, never shown (see secret_key_file)
    secret_key_file: Path
    coupons_key: str = ""  # scope coupons: the demo shop's backend redeems codes with it, never shown


async def ensure_demo_workspace(database_url: str) -> DemoCredentials:
    demo = load_state().get("demo", {})
    conn = await asyncpg.connect(database_url)
    try:
        await WorkspaceStore(conn).upsert(DEMO_WORKSPACE)
        keys = WriteKeyStore(conn)
        write_key = demo.get("write_key")
        # a key from an earlier run survives if the database does (devstack down/up keeps it)
        if not write_key or await keys.workspace_for(hash_key(write_key)) != DEMO_WORKSPACE.id:
            write_key = await keys.create(DEMO_WORKSPACE.id)
        secret_key = await _privacy_key(SecretKeyStore(conn))
        coupons_key = await _scoped_key(
            SecretKeyStore(conn), "coupons", "demo: the shop redeems coupon codes"
        )
    finally:
        await conn.close()
    update_state(lambda s: s.__setitem__("demo", {"workspace_id": DEMO_WORKSPACE.id, "write_key": write_key}))
    return DemoCredentials(
        DEMO_WORKSPACE.id, write_key, _link_secret(), secret_key, _secret_file("privacy_key"), coupons_key
    )


async def _privacy_key(store: SecretKeyStore) -> str:
    """The demo's secret key with scope privacy, kept in its file; a new one if the database lost it."""
    return await _scoped_key(store, "privacy", "demo: privacy export and erasure")


async def _scoped_key(store: SecretKeyStore, scope: str, label: str) -> str:
    """The demo's secret key with this one scope, kept in its file (`<scope>_key`); a new one if
    the database lost it."""
    path = _secret_file(f"{scope}_key")
    key = path.read_text().strip() if path.exists() else ""
    grant = await store.grant_for(hash_key(key)) if key else None
    if grant is None or grant.workspace_id != DEMO_WORKSPACE.id or scope not in grant.scopes:
        key = await store.create(DEMO_WORKSPACE.id, [scope], label=label)
        _write_secret(path, key)
    return key


def _link_secret() -> str:
    """The demo's HMAC key for links: a file only its owner reads, never shown by `status`."""
    path = _secret_file("link_secret")
    if not path.exists():
        _write_secret(path, secrets.token_hex(32))
    return path.read_text().strip()


def _secret_file(name: str) -> Path:
    return devstack_dir() / "secrets" / name


def _write_secret(path: Path, value: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.touch(mode=0o600)  # created unreadable by others before the secret goes in
    path.write_text(value)
