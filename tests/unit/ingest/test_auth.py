"""Write keys: where they are read from, and the TTL cache in front of the database."""

from __future__ import annotations

import asyncio
import base64

import pytest

from retarget.ingest.auth import CachedKeyResolver, write_key_from
from retarget.ingest.errors import RateLimited, Unauthorized
from retarget.ingest.testing import FakeKeys


def basic(username: str, password: str = "") -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def test_key_is_the_basic_username_or_the_body_write_key() -> None:
    assert write_key_from(basic("wk_a"), None) == "wk_a"
    assert write_key_from(basic("wk_a"), "wk_body") == "wk_a"
    assert write_key_from(None, "wk_body") == "wk_body"
    assert write_key_from("Bearer xyz", "wk_body") == "wk_body"


@pytest.mark.parametrize(
    "header",
    # "Basic \xff\xfe": header bytes outside ASCII (ASGI servers decode them as latin-1) were a 500
    [None, basic(""), "Basic !!!not-base64", basic("wk_a") + "!", "Basic \xff\xfe", "Basic d2tf\u00e9"],
)
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


async def test_unknown_keys_never_push_a_valid_key_out_of_the_cache() -> None:
    keys = FakeKeys({"wk_good": "ws1"})
    resolver = CachedKeyResolver(keys, ttl_s=30, negative_ttl_s=5, max_entries=2, monotonic=Ticks())
    await resolver.workspace_for("wk_good")
    for n in range(50):
        with pytest.raises(Unauthorized):
            await resolver.workspace_for(f"wk_made_up_{n}")
    lookups = keys.lookups
    assert (await resolver.workspace_for("wk_good"))[0] == "ws1"
    assert keys.lookups == lookups  # still cached


async def test_a_spray_of_unknown_keys_costs_at_most_the_cold_lookup_burst() -> None:
    keys, ticks = FakeKeys({"wk_good": "ws1"}), Ticks()
    resolver = CachedKeyResolver(
        keys,
        ttl_s=30,
        negative_ttl_s=5,
        max_entries=100,
        cold_lookups_per_s=0.01,
        cold_lookup_burst=10,
        monotonic=ticks,
    )
    await resolver.workspace_for("wk_good")
    shed = 0
    for n in range(500):
        try:
            await resolver.workspace_for(f"wk_made_up_{n}")
        except RateLimited as exc:
            shed += 1
            assert exc.status == 429 and exc.retry_after_s >= 1
        except Unauthorized:
            pass
    assert keys.lookups == 10 and shed == 491  # 1 for the good key, 9 left for the spray
    ticks.now = 31  # the good key expired; the bucket is still empty, but refreshing a known key is free
    assert (await resolver.workspace_for("wk_good"))[0] == "ws1"
    assert keys.lookups == 11
    ticks.now = 200  # the bucket refills at its rate
    with pytest.raises(Unauthorized):
        await resolver.workspace_for("wk_made_up_0")
    assert keys.lookups == 12


async def test_a_revoked_key_is_refused_after_its_refresh() -> None:
    keys, ticks = FakeKeys({"wk_good": "ws1"}), Ticks()
    resolver = CachedKeyResolver(keys, ttl_s=30, negative_ttl_s=5, max_entries=10, monotonic=ticks)
    await resolver.workspace_for("wk_good")
    keys.workspaces_by_key.clear()
    ticks.now = 31
    for _ in range(3):
        with pytest.raises(Unauthorized):
            await resolver.workspace_for("wk_good")
    assert keys.lookups == 2  # the miss is cached now


async def test_concurrent_requests_with_one_uncached_key_share_one_lookup() -> None:
    class SlowKeys(FakeKeys):
        async def workspace_for(self, key_hash: bytes) -> str | None:
            await asyncio.sleep(0.01)
            return await super().workspace_for(key_hash)

    keys = SlowKeys({"wk_good": "ws1"})
    resolver = CachedKeyResolver(keys, ttl_s=30, negative_ttl_s=5, max_entries=10, cold_lookup_burst=1)
    answers = await asyncio.gather(*(resolver.workspace_for("wk_good") for _ in range(20)))
    assert {workspace for workspace, _ in answers} == {"ws1"} and keys.lookups == 1


async def test_a_secret_key_is_refused_for_events_without_a_lookup() -> None:
    keys = FakeKeys({"rt_sk_oops": "ws1"})
    resolver = CachedKeyResolver(keys, ttl_s=30, negative_ttl_s=5, max_entries=10)
    with pytest.raises(Unauthorized, match="secret key"):
        await resolver.workspace_for("rt_sk_oops")
    assert keys.lookups == 0


async def test_found_keys_are_bounded_too() -> None:
    keys = FakeKeys({"wk_a": "ws1", "wk_b": "ws1", "wk_c": "ws1"})
    resolver = CachedKeyResolver(keys, ttl_s=30, negative_ttl_s=5, max_entries=2, monotonic=Ticks())
    for key in ("wk_a", "wk_b", "wk_c", "wk_a"):
        await resolver.workspace_for(key)
    assert keys.lookups == 4  # "wk_a" was pushed out by "wk_c"


async def test_a_client_that_hangs_up_does_not_cancel_the_lookup_others_wait_for() -> None:
    started = asyncio.Event()

    class SlowKeys(FakeKeys):
        async def workspace_for(self, key_hash: bytes) -> str | None:
            started.set()
            await asyncio.sleep(0.05)
            return await super().workspace_for(key_hash)

    keys = SlowKeys({"wk_good": "ws1"})
    resolver = CachedKeyResolver(keys, ttl_s=30, negative_ttl_s=5, max_entries=10)
    first = asyncio.ensure_future(resolver.workspace_for("wk_good"))
    await started.wait()
    second = asyncio.ensure_future(resolver.workspace_for("wk_good"))
    await asyncio.sleep(0)
    first.cancel()
    assert (await second)[0] == "ws1" and keys.lookups == 1


async def test_a_revoked_key_is_cold_again_once_its_miss_expires() -> None:
    """Only keys known to be valid are refreshed for free: a revoked one costs a cold lookup."""
    keys, ticks = FakeKeys({"wk_good": "ws1"}), Ticks()
    resolver = CachedKeyResolver(
        keys,
        ttl_s=30,
        negative_ttl_s=5,
        max_entries=10,
        cold_lookups_per_s=0.001,
        cold_lookup_burst=2,
        monotonic=ticks,
    )
    await resolver.workspace_for("wk_good")  # the first cold lookup
    keys.workspaces_by_key.clear()  # revoked
    ticks.now = 31
    with pytest.raises(Unauthorized):
        await resolver.workspace_for("wk_good")  # its refresh is free
    with pytest.raises(Unauthorized):
        await resolver.workspace_for("wk_made_up")  # the second, last cold lookup
    ticks.now = 37  # the miss expired; the bucket is still empty
    with pytest.raises(RateLimited):
        await resolver.workspace_for("wk_good")
