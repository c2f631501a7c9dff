"""Who is sending events: the write key, and the workspace it belongs to.

Segment's SDKs send the key as the HTTP Basic username with an empty password; some
callers put `writeKey` in the body instead. Keys are looked up by their sha256 (the key
itself is never stored) through a KeyCache, so authentication costs no query per request,
a revocation takes effect within the TTL, and made-up keys can neither load the database
nor push valid keys out of the cache (see keycache.py).

Write keys are public (they sit in web pages), so they only send events. A secret key
(`rt_sk_…`, secret_auth.py) is refused here without a lookup: one sent from an SDK is
exposed, and the answer says so.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from typing import Protocol

from retarget.common.secret_keys import is_secret_key
from retarget.common.write_keys import hash_key
from retarget.ingest.errors import Unauthorized
from retarget.ingest.keycache import KeyCache


class WriteKeyLookup(Protocol):
    async def workspace_for(self, key_hash: bytes) -> str | None:
        """The workspace of an active key; None when unknown or revoked."""
        ...


def basic_username(authorization: str | None) -> str | None:
    """The username of HTTP Basic credentials, None for another scheme or an empty one."""
    if not authorization:
        return None
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(credentials.strip(), validate=True).decode()
    except ValueError:  # binascii.Error, UnicodeDecodeError, and a header with non-ASCII characters
        raise Unauthorized("Authorization header is not valid Basic credentials") from None
    return decoded.partition(":")[0] or None


def write_key_from(authorization: str | None, body_key: str | None) -> str:
    key = basic_username(authorization) or body_key
    if key:
        return key
    raise Unauthorized("no write key: send it as the Basic auth username or as `writeKey` in the body")


class CachedKeyResolver:
    def __init__(
        self,
        lookup: WriteKeyLookup,
        *,
        ttl_s: float,
        negative_ttl_s: float,
        max_entries: int,
        cold_lookups_per_s: float = 200.0,
        cold_lookup_burst: int = 1000,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._cache: KeyCache[str] = KeyCache(
            lookup.workspace_for,
            credential="write_key",
            ttl_s=ttl_s,
            negative_ttl_s=negative_ttl_s,
            max_entries=max_entries,
            cold_lookups_per_s=cold_lookups_per_s,
            cold_lookup_burst=cold_lookup_burst,
            monotonic=monotonic,
        )

    async def workspace_for(self, write_key: str) -> tuple[str, bytes]:
        """(workspace id, key hash) of an active key; Unauthorized otherwise."""
        if is_secret_key(write_key):
            raise Unauthorized(
                "this is a secret key (rt_sk_…), which never goes into an SDK or a page: events are "
                "sent with the workspace's write key (wk_…). If this key was in public code, revoke "
                "it (`retarget secret-key revoke`)."
            )
        key_hash = hash_key(write_key)
        workspace = await self._cache.get(key_hash)
        if workspace is None:
            raise Unauthorized("unknown or revoked write key")
        return workspace, key_hash
