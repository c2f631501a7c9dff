"""Write keys: where they are read from, and the TTL cache in front of the database."""

from __future__ import annotations

import base64

import pytest

from retarget.ingest.auth import CachedKeyResolver, write_key_from
from retarget.ingest.errors import Unauthorized
from retarget.ingest.testing import FakeKeys


def basic(username: str, password: str = "") -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def test_key_is_the_basic_username_or_the_body_write_key() -> None:
    assert write_key_from(basic("wk_a"), None) == "wk_a"
    assert write_key_from(basic("wk_a"), "wk_body") == "wk_a"
    assert write_key_from(None, "wk_body") == "wk_body"
    assert write_key_from("Bearer xyz", "wk_body") == "wk_body"


@pytest.mark.parametrize("header", [None, basic(""), "Basic !!!not-base64"])
def test_no_usable_key_is_unauthorized(header: str | None) -> None:
    with pytest.raises(Unauthorized):
        write_key_from(header, None)


class Ticks:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_known_keys_are_cached_for_the_ttl_then_looked_up_again() -> None:
    keys, ticks = FakeKeys({"wk_good": "ws1"}), Ticks()
    resolver = CachedKeyResolver(keys, ttl_s=30, negative_ttl_s=5, max_entries=10, monotonic=ticks)
    for _ in range(3):
        workspace, _hash = await resolver.workspace_for("wk_good")
        assert workspace == "ws1"
    assert keys.lookups == 1
    keys.workspaces_by_key.clear()  # revoked
    ticks.now = 29
    assert (await resolver.workspace_for("wk_good"))[0] == "ws1"
    ticks.now = 31
    with pytest.raises(Unauthorized):
        await resolver.workspace_for("wk_good")


async def test_unknown_keys_are_cached_for_less_time() -> None:
    keys, ticks = FakeKeys(), Ticks()
    resolver = CachedKeyResolver(keys, ttl_s=30, negative_ttl_s=5, max_entries=10, monotonic=ticks)
    for _ in range(3):
        with pytest.raises(Unauthorized):
            await resolver.workspace_for("wk_unknown")
    assert keys.lookups == 1
    keys.workspaces_by_key["wk_unknown"] = "ws1"  # created meanwhile
    ticks.now = 6
    assert (await resolver.workspace_for("wk_unknown"))[0] == "ws1"


async def test_the_cache_is_bounded() -> None:
    keys = FakeKeys()
    resolver = CachedKeyResolver(keys, ttl_s=30, negative_ttl_s=30, max_entries=2, monotonic=Ticks())
    for key in ("a", "b", "c", "a"):
        with pytest.raises(Unauthorized):
            await resolver.workspace_for(key)
    assert keys.lookups == 4  # "a" was evicted when "c" came in
