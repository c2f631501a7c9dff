"""/readyz of composer and sender lists the partitions the process owns, grouped by topic."""

from __future__ import annotations

from aiohttp.test_utils import TestClient, TestServer

from retarget.common.ops import build_ops_app, partitions_by_topic


def test_partitions_are_grouped_by_topic_and_sorted():
    assigned = [("t.outbound.v1", 3), ("t.outbound.v1", 0), ("a.triggers.v1", 1)]
    assert partitions_by_topic(assigned) == {"a.triggers.v1": [1], "t.outbound.v1": [0, 3]}


async def _ready() -> dict[str, str]:
    return {}


async def test_readyz_shows_the_assignment_of_the_moment():
    owned = [("t.outbound.v1", 2)]
    async with TestClient(TestServer(build_ops_app(_ready, lambda: owned))) as client:
        first = await (await client.get("/readyz")).json()
        owned.append(("t.outbound.v1", 5))  # a rebalance gave it another partition
        second = await (await client.get("/readyz")).json()
    assert first["partitions"] == {"t.outbound.v1": [2]}
    assert second["partitions"] == {"t.outbound.v1": [2, 5]}


async def test_without_an_assignment_readyz_is_as_before():
    async with TestClient(TestServer(build_ops_app(_ready))) as client:
        body = await (await client.get("/readyz")).json()
    assert body == {"ready": True, "problems": {}}
