"""Who may call a secret-key endpoint (the privacy requests): a secret key with the scope.

The key comes as `Authorization: Bearer rt_sk_…` or as the HTTP Basic username (`curl -u
"$KEY:"`); never from the body, where keys end up in logs. Answers, each naming the
credential that would be accepted ({"needed": {"credential": "secret_key", "scope": …}}):

* no key, an unknown or a revoked one → 401;
* a write key (`wk_…`, public, events only) → 403 `secret_key_required`, without a lookup;
* a secret key without the scope → 403 `insufficient_scope`;
* over the key's token bucket (RATE_LIMIT_SECRET_KEY_*) → 429 with Retry-After.

Lookups go through a KeyCache of their own (made-up keys are bounded as for write keys).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from retarget.common.secret_keys import SECRET_KEY_PREFIX, SecretKeyGrant, is_secret_key
from retarget.common.write_keys import KEY_PREFIX as WRITE_KEY_PREFIX
from retarget.common.write_keys import hash_key
from retarget.ingest.auth import basic_username
from retarget.ingest.errors import InsufficientScope, SecretKeyMissing, SecretKeyRequired, Unauthorized
from retarget.ingest.keycache import KeyCache
from retarget.ingest.ratelimit import RateLimiter


class SecretKeyLookup(Protocol):
    async def grant_for(self, key_hash: bytes) -> SecretKeyGrant | None:
        """What an active key allows; None when unknown or revoked."""
        ...


def bearer_token(authorization: str | None) -> str | None:
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


class SecretKeyAuthorizer:
    def __init__(self, cache: KeyCache[SecretKeyGrant], limiter: RateLimiter) -> None:
        self._cache = cache
        self._limiter = limiter

    async def workspace_for(
        self, authorization: str | None, body_write_key: str | None, *, scope: str
    ) -> str:
        """The workspace whose secret key, holding `scope`, made this request; else the error to answer."""
        needed = f"a secret key ({SECRET_KEY_PREFIX}…) with scope `{scope}`"
        try:
            key = bearer_token(authorization) or basic_username(authorization)
        except Unauthorized:  # Basic credentials that aren't base64: answered as a missing key
            key = None
        if key is None and body_write_key and not is_secret_key(body_write_key):
            key = body_write_key  # only to say what was sent instead: a body never authenticates here
        if not key:
            raise SecretKeyMissing(
                f"this endpoint needs {needed}, as `Authorization: Bearer <key>` or the Basic username "
                f"(never in the body); create one with `retarget secret-key create --scope {scope}`",
                scope=scope,
            )
        if not is_secret_key(key):
            raise SecretKeyRequired(_not_a_secret_key(key, needed), scope=scope)
        key_hash = hash_key(key)
        grant = await self._cache.get(key_hash)
        if grant is None:
            raise SecretKeyMissing(
                f"unknown or revoked secret key; this endpoint needs {needed}", scope=scope
            )
        if scope not in grant.scopes:
            raise InsufficientScope(
                f"this secret key has scope {', '.join(sorted(grant.scopes))}; this endpoint needs {needed}",
                scope=scope,
            )
        self._limiter.check(key_hash, 1)
        return grant.workspace_id


def _not_a_secret_key(key: str, needed: str) -> str:
    if key.startswith(WRITE_KEY_PREFIX):
        return (
            f"this is a write key ({WRITE_KEY_PREFIX}…): write keys are public and only send events; "
            f"this endpoint needs {needed}, sent from your servers in the Authorization header"
        )
    return f"this is not a retarget secret key; this endpoint needs {needed}"


def build_authorizer(
    lookup: SecretKeyLookup,
    *,
    ttl_s: float,
    negative_ttl_s: float,
    max_entries: int,
    cold_lookups_per_s: float,
    cold_lookup_burst: int,
    requests_per_s: float,
    burst: int,
    monotonic: Callable[[], float],
) -> SecretKeyAuthorizer:
    cache: KeyCache[SecretKeyGrant] = KeyCache(
        lookup.grant_for,
        credential="secret_key",
        ttl_s=ttl_s,
        negative_ttl_s=negative_ttl_s,
        max_entries=max_entries,
        cold_lookups_per_s=cold_lookups_per_s,
        cold_lookup_burst=cold_lookup_burst,
        monotonic=monotonic,
    )
    limiter = RateLimiter(requests_per_s, burst, what="secret key", unit="requests", monotonic=monotonic)
    return SecretKeyAuthorizer(cache, limiter)
