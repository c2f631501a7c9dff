"""Write keys: the credentials a platform's SDK sends to ingest, one workspace each.

Only sha256(key) is stored, with the first characters kept to recognise a key in
listings; the key itself is shown once, when created. Revocation is a timestamp, so the
history stays and a revoked key can never come back.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

KEY_PREFIX = "wk_"
SHOWN_CHARS = 11  # "wk_" + 8 random characters: enough to tell keys apart in a listing
MIN_PREFIX_CHARS = 7  # "wk_" + 4: `revoke w` must not revoke whichever key happens to be alone


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(24)  # 192 bits of randomness


def hash_key(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


class UnknownWorkspace(LookupError):
    pass


class AmbiguousKeyPrefix(LookupError):
    pass


@dataclass(frozen=True)
class WriteKeyInfo:
    prefix: str
    workspace_id: str
    created_at: datetime
    revoked_at: datetime | None


class WriteKeyStore:
    """Queries on write_keys. `db` is an asyncpg pool or connection (both have fetch/fetchval)."""

    def __init__(self, db: Any) -> None:
        self._db = db

    async def create(self, workspace_id: str) -> str:
        """A new key for the workspace; the only time the key itself is available."""
        if await self._db.fetchval("SELECT 1 FROM workspaces WHERE id = $1", workspace_id) is None:
            raise UnknownWorkspace(workspace_id)
        key = generate_key()
        await self._db.execute(
            "INSERT INTO write_keys (key_hash, key_prefix, workspace_id) VALUES ($1, $2, $3)",
            hash_key(key),
            key[:SHOWN_CHARS],
            workspace_id,
        )
        return key

    async def workspace_for(self, key_hash: bytes) -> str | None:
        """The workspace of an active key, None when unknown or revoked."""
        return await self._db.fetchval(  # type: ignore[no-any-return]
            "SELECT workspace_id FROM write_keys WHERE key_hash = $1 AND revoked_at IS NULL", key_hash
        )

    async def revoke(self, key_or_prefix: str) -> WriteKeyInfo | None:
        """Revoke one key, given whole or by (the start of) its listed prefix. None when none match."""
        row = await revoke_row(self._db, "write_keys", key_or_prefix, SHOWN_CHARS, MIN_PREFIX_CHARS)
        return None if row is None else _info(row)

    async def list(self, workspace_id: str) -> list[WriteKeyInfo]:
        rows = await self._db.fetch(
            "SELECT key_prefix, workspace_id, created_at, revoked_at FROM write_keys "
            "WHERE workspace_id = $1 ORDER BY created_at",
            workspace_id,
        )
        return [_info(r) for r in rows]


async def revoke_row(db: Any, table: str, key_or_prefix: str, shown_chars: int, min_chars: int) -> Any:
    """Revoke one key of `table` (write_keys or secret_keys); its row after, or None when none match.

    Anything longer than a listed prefix must be the whole key, so a mistyped key can't
    revoke a different one that happens to share its first characters.
    """
    if len(key_or_prefix) < min_chars:
        raise AmbiguousKeyPrefix(f"give at least {min_chars} characters of the key")
    arg: bytes | str
    if len(key_or_prefix) > shown_chars:
        where, arg = "key_hash = $1", hash_key(key_or_prefix)
    else:
        where, arg = "starts_with(key_prefix, $1)", key_or_prefix
    rows = await db.fetch(f"SELECT key_hash FROM {table} WHERE {where}", arg)
    if len(rows) > 1:
        raise AmbiguousKeyPrefix(f"{len(rows)} keys start with {key_or_prefix!r}; give more of the key")
    if not rows:
        return None
    return await db.fetchrow(
        f"UPDATE {table} SET revoked_at = coalesce(revoked_at, now()) WHERE key_hash = $1 RETURNING *",
        rows[0]["key_hash"],
    )


def _info(row: Any) -> WriteKeyInfo:
    return WriteKeyInfo(row["key_prefix"], row["workspace_id"], row["created_at"], row["revoked_at"])
