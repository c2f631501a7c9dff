"""Fixtures of the browser tests: the four services as processes on the real stack, the demo
shop, and a headless Chromium (Debian's, driven by Playwright) — one of each per module, so a
module pays their start once; each journey gets a new browser context (fresh cookies and
localStorage) and its own visitor and address.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Protocol

import pytest
from playwright.async_api import Browser, async_playwright

from retarget.common.kafka import delete_topics_with_prefixes
from retarget.devstack.child import free_port

from ..conftest import Service, kill_all, new_workspace, start_service

# What the brief of issue #15 fixes: Playwright drives the machine's chromium (never a
# downloaded build), with nothing that phones home or needs a GPU or a sandbox in a container.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

# The campaigns' waits in these tests. The cart wait must outlast a journey's steps from the
# cart add to the checkout on a loaded machine (else the reminder fires before the order);
# the thank-you waits longer than the cart, so by the time it is sent a reminder that was
# going to fire has fired (the same visitor's triggers keep their order down to the sender).
CART_WAIT_S = 8
POST_PURCHASE_WAIT_S = 10


def chromium_executable() -> str:
    """Debian's chromium; a missing one fails (never skips) with the command that installs it."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.fail("chromium is not installed: run `make browser-deps` (Debian's chromium, as root)")
    return found


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    """One headless Chromium per module. Playwright gives each launch a fresh user-data dir of
    its own (a temporary profile, deleted at close), and each new_context() a clean jar."""
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=chromium_executable(), headless=True, args=CHROMIUM_FLAGS
        )
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest.fixture(scope="module")
def module_prefix(stack: dict[str, str]) -> Iterator[str]:
    """A topic prefix for the module's services; its topics are deleted afterwards."""
    prefix = f"t{uuid.uuid4().hex[:10]}"
    yield prefix
    asyncio.run(delete_topics_with_prefixes(stack["RETARGET_KAFKA_BOOTSTRAP"], {prefix}))


class Launch(Protocol):
    def __call__(self, name: str, port_var: str, env: dict[str, str], port: int | None = None) -> Service: ...


@pytest.fixture(scope="module")
def module_launch(tmp_path_factory: pytest.TempPathFactory, stack: dict[str, str]) -> Iterator[Launch]:
    """Like e2e's `launch`, for a whole module: `python -m retarget.<name>` on a free port."""
    folder = tmp_path_factory.mktemp("services")
    started: list[Service] = []

    def launch(name: str, port_var: str, env: dict[str, str], port: int | None = None) -> Service:
        module = "retarget.demo.shop" if name == "shop" else None
        started.append(start_service(stack, folder, name, port_var, env, port=port, module=module))
        return started[-1]

    yield launch
    kill_all(started)


def common_env(prefix: str) -> dict[str, str]:
    return {
        "RETARGET_TOPIC_PREFIX": prefix,
        "RETARGET_TOPIC_PARTITIONS": "2",
        "RETARGET_LINK_SECRET": secrets.token_hex(16),
        "RETARGET_LOG_LEVEL": "INFO",
    }


@dataclass(frozen=True)
class Pipeline:
    """ingest → segmenter → composer → sender, as processes on the module's topics."""

    prefix: str
    services: list[Service]

    @property
    def ingest(self) -> Service:
        return self.services[0]

    @property
    def segmenter(self) -> Service:
        return self.services[1]

    def logs(self) -> str:
        return "\n\n".join(f"--- {s.name}\n{s.tail()}" for s in self.services)


@pytest.fixture(scope="module")
async def pipeline(
    module_launch: Launch, module_prefix: str, tmp_path_factory: pytest.TempPathFactory
) -> Pipeline:
    common = common_env(module_prefix)
    waits = {"abandoned_cart": f"{CART_WAIT_S}s", "post_purchase": f"{POST_PURCHASE_WAIT_S}s"}
    segmenter_env = {
        "RETARGET_CAMPAIGN_WAITS": json.dumps(waits),
        "RETARGET_DATA_DIR": str(tmp_path_factory.mktemp("segmenter")),
    }
    services = [
        module_launch("ingest", "RETARGET_PORT", common),
        module_launch("segmenter", "RETARGET_WEB_PORT", {**common, **segmenter_env}),
        module_launch("composer", "RETARGET_OPS_PORT", common),
        module_launch("sender", "RETARGET_OPS_PORT", common),
    ]
    for service in services:
        await asyncio.to_thread(service.wait_healthy)
    return Pipeline(module_prefix, services)


@dataclass(frozen=True)
class Shop:
    """The demo shop of one opt-in workspace, whose only allowed browser origin is the shop's."""

    url: str
    workspace_id: str
    write_key: str
    service: Service


async def new_browser_workspace(database_url: str, workspace_id: str, origin: str) -> str:
    """An opt-in Boot Shop workspace whose pages may send from `origin`; returns a write key."""
    return await new_workspace(database_url, workspace_id, consent_mode="opt_in", allowed_origins=(origin,))


@pytest.fixture(scope="module")
async def shop(module_launch: Launch, pipeline: Pipeline, stack: dict[str, str]) -> Shop:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    workspace_id = f"ws-{uuid.uuid4().hex[:8]}"
    write_key = await new_browser_workspace(stack["RETARGET_DATABASE_URL"], workspace_id, url)
    env = {
        "RETARGET_SHOP_HOST": "127.0.0.1",
        "RETARGET_SHOP_INGEST_URL": pipeline.ingest.url,
        "RETARGET_SHOP_WRITE_KEY": write_key,
        "RETARGET_SHOP_CONSENT_MODE": "opt_in",
    }
    service = module_launch("shop", "RETARGET_SHOP_PORT", env, port=port)
    await asyncio.to_thread(service.wait_healthy)
    return Shop(url, workspace_id, write_key, service)
