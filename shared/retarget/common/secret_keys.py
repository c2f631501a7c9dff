"""Secret keys: a workspace's server-side credentials, each with scopes.

Write keys are public by design (SDKs embed them in pages and apps) and only send events.
Whatever reads or changes people's data — the privacy endpoints — or manages the workspace
needs a secret key instead, which must stay on the customer's servers. The two look
different (`rt_sk_…` against `wk_…`), so a server can say which one it was sent and what
it needed.

Like write keys, only sha256(key) is stored (the key has 192 random bits, so a plain hash
is enough) and the key is shown once, when created. A lookup finds the row by that hash and
then compares the stored hash with hmac.compare_digest, so no answer depends on how many
bytes of a guess were right.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from retarget.common.write_keys import UnknownWorkspace, hash_key, revoke_row

SECRET_KEY_PREFIX = "rt_sk_"
SHOWN_CHARS = 14  # "rt_sk_" + 8 random characters, as listings show it
MIN_PREFIX_CHARS = 10  # "rt_sk_" + 4: `revoke` must not match whichever key happens to be alone
# privacy: export and erase people; admin: manage the workspace; coupons: check and redeem
# coupon codes (a shop's backend), nothing else
SCOPES = ("privacy", "admin", "coupons")


def generate_secret_key() -> str:
    return SECRET_KEY_PREFIX + secrets.token_urlsafe(24)  # 192 bits of randomness


def is_secret_key(key: str) -> bool:
    return key.startswith(SECRET_KEY_PREFIX)


class UnknownScope(ValueError):
    pass


@dataclass(frozen=True)
class SecretKeyGrant:
    """What an active secret key allows: one workspace, these scopes."""

    workspace_id: str
    scopes: frozenset[str]


@dataclass(frozen=True)
class SecretKeyInfo:
    prefix: str
    workspace_id: str
    scopes: tuple[str, ...]
    label: str
    created_at: datetime
    revoked_at: datetime | None


class SecretKeyStore:
    """Queries on secret_keys. `db` is an asyncpg pool or connection."""

    def __init__(self, db: Any) -> None:
        self._db = db

    async def create(self, workspace_id: str, scopes: list[str], label: str = "") -> str:
        """A new key; the only time the key itself is available."""
        unknown = sorted(set(scopes) - set(SCOPES))
        if unknown or not scopes:
            raise UnknownScope(
                f"scopes must be some of {', '.join(SCOPES)} (got {', '.join(unknown) or 'none'})"
            )
        if await self._db.fetchval("SELECT 1 FROM workspaces WHERE id = $1", workspace_id) is None:
            raise UnknownWorkspace(workspace_id)
        key = generate_secret_key()
        await self._db.execute(
            "INSERT INTO secret_keys (key_hash, key_prefix, workspace_id, scopes, label) "
            "VALUES ($1, $2, $3, $4, $5)",
            hash_key(key),
            key[:SHOWN_CHARS],
            workspace_id,
            sorted(set(scopes)),
            label,
        )
        return key

    async def grant_for(self, key_hash: bytes) -> SecretKeyGrant | None:
        """What an active key allows; None when unknown or revoked."""
        row = await self._db.fetchrow(
            "SELECT key_hash, workspace_id, scopes FROM secret_keys WHERE key_hash = $1 AND revoked_at IS NULL",
            key_hash,
        )
        if row is None or not hmac.compare_digest(bytes(row["key_hash"]), key_hash):
            return None
        return SecretKeyGrant(row["workspace_id"], frozenset(row["scopes"]))

    async def revoke(self, key_or_prefix: str) -> SecretKeyInfo | None:
        """Revoke one key, given whole or by (the start of) its listed prefix. None when none match."""
        row = await revoke_row(self._db, "secret_keys", key_or_prefix, SHOWN_CHARS, MIN_PREFIX_CHARS)
        return None if row is None else _info(row)

    async def list(self, workspace_id: str) -> list[SecretKeyInfo]:
        rows = await self._db.fetch(
            "SELECT * FROM secret_keys WHERE workspace_id = $1 ORDER BY created_at", workspace_id
        )
        return [_info(r) for r in rows]


def _info(row: Any) -> SecretKeyInfo:
    return SecretKeyInfo(
        row["key_prefix"],
        row["workspace_id"],
        tuple(row["scopes"]),
        row["label"],
        row["created_at"],
        row["revoked_at"],
    )
