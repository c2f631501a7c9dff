"""Each workspace's campaigns, applied live from the change feed, on the real broker with a
worker process: two workspaces get different triggers for the same event; a campaign published
while the worker runs applies within seconds, no restart; a shortened wait fires at once when
its new due time is past; a deleted campaign's pending wait is cancelled."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import yaml

from retarget.common.identity import trigger_id
from retarget.common.workspaces import Workspace, WorkspaceStore
from retarget.config.defaults import bundled_campaigns
from retarget.config.records import config_topic
from retarget.config.testing import publish_changes
from retarget.segmenter.testing import campaign_record, deleted_record

from .conftest import Kafka, Worker
from .test_segmenter_workers import cart_add, identify, wait_processed

pytestmark = pytest.mark.integration

# the bundled waits as written (4 h cart): only the workspaces' own records fire in these tests
AS_WRITTEN = {"RETARGET_CAMPAIGN_WAITS": "{}", "RETARGET_WAIT_SCALE": "1"}


def cart(wait: str, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "entry": {"event": "Product Added"},
        "wait": wait,
        "exit": [{"event": "Order Completed"}],
        "snapshot": ["cart"],
    }
    return body | changes


def profile(worker: Worker, ws: str, visitor: str) -> dict[str, Any] | None:
    response = httpx.get(f"http://127.0.0.1:{worker.port}/profiles/{ws}/{visitor}", timeout=2)
    return response.json() if response.status_code == 200 else None


async def eventually(check: Callable[[], Any], what: str, worker: Worker, timeout_s: float = 30) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if result := await asyncio.to_thread(check):
            return result
        await asyncio.sleep(0.2)
    pytest.fail(f"{what} not within {timeout_s}s:\n{worker.tail()}")


async def visit(kafka: Kafka, ws: str) -> tuple[str, str]:
    """A known visitor adds to the cart; returns the visitor and the cart trigger's id."""
    visitor = f"v-{uuid.uuid4().hex[:8]}"
    add = cart_add(ws, visitor)
    await kafka.send(identify(ws, visitor, f"{visitor}@example.com"), add)
    return visitor, trigger_id(ws, "abandoned_cart", visitor, add.message_id)


async def test_two_workspaces_get_their_own_campaign_for_the_same_event(
    start_worker, kafka: Kafka, topic_prefix: str
):
    shop_a, shop_b, shop_c = (f"{name}-{uuid.uuid4().hex[:6]}" for name in ("a", "b", "c"))
    await publish_changes(
        kafka.bootstrap,
        config_topic(topic_prefix),
        [
            campaign_record(
                shop_a, "abandoned_cart", cart("1s", incentive={"kind": "percent_off", "value": 10})
            ),
            campaign_record(shop_b, "abandoned_cart", cart("1s", enabled=False)),
            campaign_record(shop_c, "abandoned_cart", cart("1s", template="cart_plain")),
        ],
    )
    worker = start_worker("segmenter", **AS_WRITTEN)  # reads the feed before it consumes events
    await asyncio.to_thread(worker.wait_ready)
    kafka.start_reading()
    visitor_b, _ = await visit(kafka, shop_b)
    _, fired_a = await visit(kafka, shop_a)
    _, fired_c = await visit(kafka, shop_c)
    assert not await kafka.wait_for_ids({fired_a, fired_c}, timeout_s=30), worker.tail()
    by_workspace = {t.workspace_id: t for t in kafka.triggers}
    assert (
        by_workspace[shop_a].incentive.items() >= {"kind": "percent_off", "value": 10}.items()
    )  # + its coupon
    assert by_workspace[shop_a].template == "abandoned_cart"
    assert by_workspace[shop_c].template == "cart_plain" and by_workspace[shop_c].incentive == {}
    # shop-b disabled it: its visitor's cart add, handled before the others, started no wait
    state = profile(worker, shop_b, visitor_b)
    assert state is not None and state.get("cart") and not state.get("pending"), state
    assert shop_b not in by_workspace
    assert worker.stop() == 0


async def test_a_campaign_changed_while_the_worker_runs_applies_within_seconds(
    start_worker, kafka: Kafka, topic_prefix: str, workspace_id: str
):
    ws = workspace_id
    worker = start_worker("segmenter", **AS_WRITTEN)
    await asyncio.to_thread(worker.wait_ready)
    kafka.start_reading()
    waiting, waiting_id = await visit(kafka, ws)  # the bundled 4 h wait
    await wait_processed(worker, 2)
    state = profile(worker, ws, waiting)
    assert state is not None and "abandoned_cart" in state["pending"]

    # published, no restart: the wait entered under 4 h is now past entry + 1 s, and fires at once
    await publish_changes(
        kafka.bootstrap, config_topic(topic_prefix), [campaign_record(ws, "abandoned_cart", cart("1s"))]
    )
    assert not await kafka.wait_for_ids({waiting_id}, timeout_s=30), worker.tail()
    _, new_id = await visit(kafka, ws)  # a new entry waits the new 1 s
    assert not await kafka.wait_for_ids({new_id}, timeout_s=30), worker.tail()
    (fired,) = [t for t in kafka.triggers if t.trigger_id == new_id]
    assert fired.reason.endswith("waited 1s")  # the new version's wait, not the bundled 4 h

    # deleted: the pending wait is cancelled (counted with its reason), not left to fire
    await publish_changes(
        kafka.bootstrap, config_topic(topic_prefix), [campaign_record(ws, "abandoned_cart", cart("30m"))]
    )
    doomed, doomed_id = await visit(kafka, ws)
    await eventually(lambda: (profile(worker, ws, doomed) or {}).get("pending"), "the 30 m wait", worker)
    await publish_changes(kafka.bootstrap, config_topic(topic_prefix), [deleted_record(ws, "abandoned_cart")])
    await eventually(
        lambda: not (profile(worker, ws, doomed) or {"pending": 1}).get("pending"), "the cancellation", worker
    )
    assert (
        worker.metric(
            'retarget_segmenter_triggers_cancelled_total{campaign="abandoned_cart",reason="campaign deleted"}'
        )
        == 1
    )
    assert doomed_id not in kafka.ids()
    assert worker.stop() == 0


async def apply_with_cli(ws: str, path: Path, stack: dict[str, str], topic_prefix: str) -> None:
    applied = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "retarget.cli.main", "campaigns", "apply", "--workspace", ws, str(path)],
        capture_output=True,
        text=True,
        env=os.environ | stack | {"RETARGET_TOPIC_PREFIX": topic_prefix},
        timeout=120,
    )
    assert applied.returncode == 0, applied.stderr


async def reported_offset(pool: asyncpg.Pool, instance: str, at_least: int, timeout_s: float = 30) -> int:
    """The feed offset the worker reported in config_applied, once it reached `at_least`."""
    query = "SELECT feed_offset FROM config_applied WHERE service = 'segmenter' AND instance = $1"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        offset = await pool.fetchval(query, instance)
        if offset is not None and offset >= at_least:
            return int(offset)
        await asyncio.sleep(0.5)
    return -1 if offset is None else int(offset)


async def test_a_campaign_applied_with_the_cli_fires_for_new_events_and_the_worker_reports_it(
    start_worker, kafka: Kafka, topic_prefix: str, workspace_id: str, stack: dict[str, str], tmp_path: Path
):
    ws = workspace_id
    async with asyncpg.create_pool(stack["RETARGET_DATABASE_URL"], min_size=1, max_size=1) as pool:
        shop = Workspace(
            id=ws, name="Live", from_name="Shop", from_email="shop@example.com", postal_address="1 St"
        )
        await WorkspaceStore(pool).upsert(shop)
        worker = start_worker("segmenter", **AS_WRITTEN)
        await asyncio.to_thread(worker.wait_ready)
        kafka.start_reading()
        path = tmp_path / "abandoned_cart.yaml"
        body = bundled_campaigns()["abandoned_cart"] | {"wait": "1s", "template": "cart_cli"}
        path.write_text(yaml.safe_dump(body))
        await apply_with_cli(ws, path, stack, topic_prefix)

        _, fired_id = await visit(kafka, ws)  # a new cart: the CLI's version, no restart
        assert not await kafka.wait_for_ids({fired_id}, timeout_s=30), worker.tail()
        (fired,) = [t for t in kafka.triggers if t.trigger_id == fired_id]
        assert fired.template == "cart_cli"
        # how far it applied the feed, for the API: the CLI's record is the feed's first (offset 0)
        instance = f"{socket.gethostname()}:{worker.port}"
        assert await reported_offset(pool, instance, at_least=0) == 0, worker.tail()
    assert worker.stop() == 0
