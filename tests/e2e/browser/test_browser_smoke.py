"""A page in headless Chromium sends an event to ingest the way the browser SDKs do — a
`text/plain` body with the `writeKey` inside, by fetch and by sendBeacon — and only pages of
an origin the workspace allows are heard. Needs no shop: the test serves the page itself
(a blank page from a loopback server of its own), so this fails on the browser, ingest or CORS alone.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Awaitable, Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from playwright.async_api import Browser, Page

from retarget.devstack.child import free_port

from .conftest import Launch, common_env, new_browser_workspace
from .observe import events_on_topic, ingest_answers

pytestmark = pytest.mark.e2e

SEND = """async ([ingest, writeKey, anonymousId]) => {
  const body = (event) => JSON.stringify({writeKey, anonymousId, type: 'track', event})
  const beaconQueued = navigator.sendBeacon(ingest + '/v1/t', body('By Beacon'))
  try {
    const answer = await fetch(ingest + '/v1/t', {method: 'POST', keepalive: true, body: body('By Fetch')})
    return {beaconQueued, fetched: answer.status, readable: await answer.json()}
  } catch (error) {
    return {beaconQueued, fetched: String(error)}
  }
}"""


class BlankPage(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"<!doctype html><p>a shop</p>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def page_server() -> Iterator[int]:
    """A blank page on a loopback port. A real server, not a Playwright route: Chromium lets
    only a page it fetched from loopback call a loopback ingest (Local Network Access)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), BlankPage)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    thread.join()


async def page_at(browser: Browser, url: str) -> Page:
    """A new visitor (fresh context) on `url`."""
    page = await (await browser.new_context()).new_page()
    await page.goto(url)
    return page


async def until(count: Callable[[], Awaitable[float]], wanted: float, timeout_s: float = 60) -> None:
    """Polls `count` until it reaches `wanted`; fails past the deadline."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while (seen := await count()) < wanted:
        assert asyncio.get_running_loop().time() < deadline, f"{seen} after {timeout_s} s, {wanted} expected"
        await asyncio.sleep(0.3)


async def test_only_an_allowed_origin_s_page_gets_its_events_in(
    browser: Browser, module_launch: Launch, module_prefix: str, stack: dict[str, str], page_server: int
) -> None:
    # one page server by two names: two origins, only the first allowed
    allowed, stranger = f"http://127.0.0.1:{page_server}", f"http://localhost:{page_server}"
    workspace_id = f"ws-{uuid.uuid4().hex[:8]}"
    write_key = await new_browser_workspace(stack["RETARGET_DATABASE_URL"], workspace_id, allowed)
    ops_port = free_port()
    ingest_env = {**common_env(module_prefix), "RETARGET_INGEST_OPS_PORT": str(ops_port)}
    ingest = module_launch("ingest", "RETARGET_PORT", ingest_env)
    await asyncio.to_thread(ingest.wait_healthy)

    refused_page = await page_at(browser, f"{stranger}/")
    refused = await refused_page.evaluate(SEND, [ingest.url, write_key, "stranger"])
    assert refused["fetched"] != 200, refused  # a 403 the page can't even read: a TypeError
    # ingest itself refused both (not the browser): the beacon's answer only shows in its metrics
    await until(lambda: ingest_answers(f"http://127.0.0.1:{ops_port}", 403), 2)
    await refused_page.context.close()
    heard_page = await page_at(browser, f"{allowed}/")
    heard = await heard_page.evaluate(SEND, [ingest.url, write_key, "visitor"])
    assert heard["beaconQueued"] and heard["fetched"] == 200, heard
    assert heard["readable"] == {"success": True}, "the allowed page can read the answer (CORS)"

    # the beacon has no answer to wait for: its 200 shows in the metrics (the fetch's is in already)
    await until(lambda: ingest_answers(f"http://127.0.0.1:{ops_port}", 200), 2)
    await heard_page.context.close()
    found = [e for _, e in await events_on_topic(stack["RETARGET_KAFKA_BOOTSTRAP"], module_prefix)]
    names = sorted((e.anonymous_id, e.event) for e in found)
    assert names == [("visitor", "By Beacon"), ("visitor", "By Fetch")], names
    assert all(e.workspace_id == workspace_id for e in found)
