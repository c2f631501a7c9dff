"""The origin caches (allowed_origins.py) with a fake clock: per workspace and all of them."""

from __future__ import annotations

import asyncio

import pytest

from retarget.ingest.allowed_origins import CachedWorkspaceOrigins, KnownOrigins
from retarget.ingest.errors import Unavailable
from retarget.ingest.testing import FakeOrigins


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_a_workspace_s_origins_are_cached_for_the_ttl() -> None:
    lookup, clock = FakeOrigins({"ws1": ("https://shop.example",)}), Clock()
    cache = CachedWorkspaceOrigins(lookup, ttl_s=30, max_entries=10, monotonic=clock)
    assert await cache.allows("ws1", "https://shop.example")
    lookup.origins["ws1"] = ()
    assert await cache.allows("ws1", "https://shop.example") and lookup.lookups == 1
    clock.now = 30.0
    assert not await cache.allows("ws1", "https://shop.example") and lookup.lookups == 2


async def test_the_per_workspace_cache_is_bounded() -> None:
    lookup = FakeOrigins({f"ws{i}": (f"https://s{i}.example",) for i in range(5)})
    cache = CachedWorkspaceOrigins(lookup, ttl_s=30, max_entries=2, monotonic=Clock())
    for i in range(5):
        await cache.allows(f"ws{i}", "https://x.example")
    await cache.allows("ws0", "https://x.example")  # pushed out by the later ones: asked again
    assert lookup.lookups == 6


async def test_an_outage_is_unavailable_and_nothing_is_cached() -> None:
    lookup = FakeOrigins({"ws1": ("https://shop.example",)}, down=True)
    cache = CachedWorkspaceOrigins(lookup, ttl_s=30, max_entries=10, monotonic=Clock())
    with pytest.raises(Unavailable):
        await cache.allows("ws1", "https://shop.example")
    lookup.down = False
    assert await cache.allows("ws1", "https://shop.example")


async def test_known_origins_refresh_as_one_set_after_the_ttl_with_wildcards() -> None:
    lookup, clock = FakeOrigins({"a": ("https://*.brand.example",), "b": ("http://127.0.0.1:8123",)}), Clock()
    known = KnownOrigins(lookup, ttl_s=30, max_origins=100, monotonic=clock)
    assert await known.allows("https://www.brand.example") and await known.allows("http://127.0.0.1:8123")
    assert not await known.allows("https://brand.example") and lookup.lookups == 1
    lookup.origins["c"] = ("https://new.example",)
    assert not await known.allows("https://new.example")  # within the TTL: the old set
    clock.now = 31.0
    assert await known.allows("https://new.example") and lookup.lookups == 2


async def test_concurrent_preflights_share_one_refresh() -> None:
    lookup = FakeOrigins({"a": ("https://shop.example",)})
    known = KnownOrigins(lookup, ttl_s=30, max_origins=100, monotonic=Clock())
    answers = await asyncio.gather(*(known.allows("https://shop.example") for _ in range(20)))
    assert all(answers) and lookup.lookups == 1


async def test_known_origins_are_bounded() -> None:
    lookup = FakeOrigins({f"ws{i}": (f"https://s{i:02d}.example",) for i in range(10)})
    known = KnownOrigins(lookup, ttl_s=30, max_origins=3, monotonic=Clock())
    assert await known.allows("https://s00.example") and not await known.allows("https://s09.example")
