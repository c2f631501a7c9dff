"""Who is sending: the write key, and the workspace it belongs to.

Segment's SDKs send the key as the HTTP Basic username with an empty password; some
callers put `writeKey` in the body instead. Keys are looked up by their sha256 (the key
itself is never stored) and the answer is cached for a short TTL, so authentication costs
no query per request and a revocation takes effect within the TTL. Unknown keys are cached
too, for less time, so a client with a bad key can't turn its retries into database load.
"""

from __future__ import annotations

import base64
import binascii
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol

from retarget.common.write_keys import hash_key
from retarget.ingest.errors import Unauthorized


class WriteKeyLookup(Protocol):
    async def workspace_for(self, key_hash: bytes) -> str | None:
        """The workspace of an active key; None when unknown or revoked."""
        ...


def write_key_from(authorization: str | None, body_key: str | None) -> str:
    if authorization:
        scheme, _, credentials = authorization.partition(" ")
        if scheme.lower() == "basic":
            try:
                decoded = base64.b64decode(credentials.strip(), validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                raise Unauthorized("Authorization header is not valid Basic credentials") from None
            username = decoded.partition(":")[0]
            if username:
                return username
    if body_key:
        return body_key
    raise Unauthorized("no write key: send it as the Basic auth username or as `writeKey` in the body")


class CachedKeyResolver:
    def __init__(
        self,
        lookup: WriteKeyLookup,
        *,
        ttl_s: float,
        negative_ttl_s: float,
        max_entries: int,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._lookup = lookup
        self._ttl_s = ttl_s
        self._negative_ttl_s = negative_ttl_s
        self._max_entries = max_entries
        self._monotonic = monotonic
        self._cache: OrderedDict[bytes, tuple[str | None, float]] = OrderedDict()

    async def workspace_for(self, write_key: str) -> tuple[str, bytes]:
        """(workspace id, key hash) of an active key; Unauthorized otherwise."""
        key_hash = hash_key(write_key)
        now = self._monotonic()
        cached = self._cache.get(key_hash)
        if cached is not None and cached[1] > now:
            workspace = cached[0]
        else:
            workspace = await self._lookup.workspace_for(key_hash)
            self._remember(key_hash, workspace, now)
        if workspace is None:
            raise Unauthorized("unknown or revoked write key")
        return workspace, key_hash

    def _remember(self, key_hash: bytes, workspace: str | None, now: float) -> None:
        ttl = self._ttl_s if workspace is not None else self._negative_ttl_s
        self._cache[key_hash] = (workspace, now + ttl)
        self._cache.move_to_end(key_hash)
        while len(self._cache) > self._max_entries:
            self._cache.popitem(last=False)  # the least recently refreshed entry
