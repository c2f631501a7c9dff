"""The change feed in the worker's bootstrap (wiring.wire_config_feed), on core's fake follower
and a fake of the faust app's hooks: read before anything is consumed, followed live after,
stopped on shutdown."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from retarget.config.testing import FakeConfigFollower
from retarget.segmenter.campaign_registry import CampaignRegistry
from retarget.segmenter.campaigns import read_campaign_files
from retarget.segmenter.ops import add_ops_pages
from retarget.segmenter.settings import DEFAULT_CAMPAIGNS_DIR
from retarget.segmenter.testing import campaign_record
from retarget.segmenter.wiring import wire_config_feed

CART = {"entry": {"event": "Product Added"}, "wait": "1h"}


def wired(follower: FakeConfigFollower | None) -> tuple[Any, dict[str, Any]]:
    hooks: dict[str, Any] = {}
    app = SimpleNamespace(
        task=lambda fn: hooks.setdefault("task", fn),
        on_before_shutdown=SimpleNamespace(connect=lambda fn: hooks.setdefault("shutdown", fn)),
    )
    w = SimpleNamespace(
        app=app,
        campaigns=CampaignRegistry(read_campaign_files(DEFAULT_CAMPAIGNS_DIR)),
        config_ready=asyncio.Event(),
        # the applied-offset report finds no database here: it logs and retries until cancelled
        settings=SimpleNamespace(database_url="postgresql://127.0.0.1:9/none", group_instance_id="w-1"),
    )
    wire_config_feed(w, follower)  # type: ignore[arg-type]
    return w, hooks


async def test_the_feed_is_read_before_the_worker_is_ready_then_followed_live():
    follower = FakeConfigFollower(kinds=["campaign"])
    w, hooks = wired(follower)
    follower.apply(campaign_record("ws", "abandoned_cart", CART))  # in the feed before the start
    assert not w.config_ready.is_set()
    following = asyncio.create_task(hooks["task"]())  # reads, then reports for as long as it runs
    await asyncio.wait_for(w.config_ready.wait(), 10)
    assert follower.ready
    assert w.campaigns.changed_since_sweep == set()  # read at start: not swept
    follower.apply(campaign_record("ws", "abandoned_cart", CART | {"wait": "1m"}))  # live
    assert str(w.campaigns.campaigns_for("ws").by_name["abandoned_cart"].wait) == "0:01:00"
    assert w.campaigns.changed_since_sweep == {"ws"}  # shorter, while running: swept
    await hooks["shutdown"](None)
    assert not follower.ready
    following.cancel()
    await asyncio.gather(following, return_exceptions=True)


async def test_without_a_follower_the_bundled_campaigns_are_ready_at_once():
    w, hooks = wired(None)
    assert w.config_ready.is_set() and hooks == {}


async def test_the_worker_is_not_ready_while_it_reads_the_change_feed():
    pages: dict[str, Any] = {}
    app = SimpleNamespace(
        page=lambda path: lambda fn: pages.setdefault(path, fn),
        rebalancing=False,
        in_recovery=False,
        assignor=SimpleNamespace(assigned_actives=lambda: {("t-segmenter-profiles-changelog", 0)}),
    )
    ready = asyncio.Event()
    events_read = lambda: [("t.events.v1", 0)]  # noqa: E731
    add_ops_pages(app, config_ready=ready.is_set, events_read=events_read)  # type: ignore[arg-type]
    web = SimpleNamespace(json=lambda body, status=200: (body, status))
    body, status = await pages["/readyz"](web, None)
    assert status == 503 and body["problems"] == {"config": "reading the change feed"}
    ready.set()
    body, status = await pages["/readyz"](web, None)
    assert status == 200 and body["assigned_topic_partitions"] == 1
    # what it owns, by topic: the events it reads beside faust's own assignment
    assert body["partitions"] == {"t-segmenter-profiles-changelog": [0], "t.events.v1": [0]}


async def test_the_worker_is_not_ready_while_the_follower_is_still_reading():
    """config_ready only after follower.start() returned (mutation check: setting it first
    survived, the fake follower's start returning at once)."""
    follower = FakeConfigFollower(kinds=["campaign"])
    reading = asyncio.Event()
    started = follower.start

    async def slow_start() -> None:
        await reading.wait()
        await started()

    follower.start = slow_start  # type: ignore[method-assign]
    w, hooks = wired(follower)
    following = asyncio.create_task(hooks["task"]())
    await asyncio.sleep(0.05)
    assert not w.config_ready.is_set() and not w.campaigns.sweeping
    reading.set()
    await asyncio.wait_for(w.config_ready.wait(), 10)
    following.cancel()
    await asyncio.gather(following, return_exceptions=True)
