"""Write-key and secret-key lookups in PostgreSQL (through the process's shared LazyPool).

A lookup that can't reach the database is a 503 (with Retry-After), never a 401: a valid
key must not look revoked because of an outage.
"""

from __future__ import annotations

from retarget.common.secret_keys import SecretKeyGrant, SecretKeyStore
from retarget.common.write_keys import WriteKeyStore
from retarget.ingest.pool import LazyPool


class PgWriteKeyLookup:
    def __init__(self, pool: LazyPool) -> None:
        self._pool = pool

    async def workspace_for(self, key_hash: bytes) -> str | None:
        return await self._pool.run(
            "check the write key", lambda pool: WriteKeyStore(pool).workspace_for(key_hash)
        )

    async def problem(self) -> str | None:
        return await self._pool.problem()

    async def close(self) -> None:
        pass  # the pool is shared; IngestServices closes it


class PgSecretKeyLookup:
    def __init__(self, pool: LazyPool) -> None:
        self._pool = pool

    async def grant_for(self, key_hash: bytes) -> SecretKeyGrant | None:
        return await self._pool.run(
            "check the secret key", lambda pool: SecretKeyStore(pool).grant_for(key_hash)
        )
