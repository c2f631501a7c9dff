"""The unmodified Node SDK, `@segment/analytics-node` from npm, pointed at ingest by its `host`
option, delivers a batch: every call arrives on the events topic as it was made (same
messageIds, properties, traits, names), once. Node runs a tiny script (node/send_batch.mjs)
against ingest running as a process on the real stack."""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid
from typing import Any

import pytest

from ..conftest import new_workspace
from .conftest import Launch, common_env
from .node_sdk import SCRIPT, installed_node_sdk
from .observe import events_on_topic

pytestmark = pytest.mark.e2e


def calls(user_id: str, run: str) -> list[dict[str, Any]]:
    """A track, an identify and a page, each with its own messageId, the way a Node shop sends them."""
    return [
        {
            "type": "track",
            "params": {
                "userId": user_id,
                "event": "Order Completed",
                "messageId": f"t-{run}",
                "properties": {
                    "order_id": "o-1",
                    "revenue": 42.5,
                    "currency": "EUR",
                    "products": [{"product_id": "boot-1", "name": "Trail Boot", "quantity": 2}],
                    "note": "größe 42 — ok",
                },
            },
        },
        {
            "type": "identify",
            "params": {
                "userId": user_id,
                "messageId": f"i-{run}",
                "traits": {"email": f"{run}@example.com", "firstName": "Ann", "plan": "trial"},
            },
        },
        {
            "type": "page",
            "params": {
                "userId": user_id,
                "name": "Checkout",
                "messageId": f"p-{run}",
                "properties": {"url": "https://shop.example/checkout", "referrer": ""},
            },
        },
    ]


def send_with_node(folder: Any, host: str, write_key: str, sent: list[dict[str, Any]]) -> dict[str, Any]:
    done = subprocess.run(
        ["node", SCRIPT],
        cwd=folder,
        input=json.dumps({"host": host, "writeKey": write_key, "calls": sent}),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"node failed:\n{done.stderr}"
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


async def test_the_node_sdk_delivers_a_batch_unchanged(
    module_launch: Launch, module_prefix: str, stack: dict[str, str]
) -> None:
    folder = await asyncio.to_thread(installed_node_sdk)
    workspace_id = f"ws-{uuid.uuid4().hex[:8]}"
    write_key = await new_workspace(stack["RETARGET_DATABASE_URL"], workspace_id)
    ingest = module_launch("ingest", "RETARGET_PORT", common_env(module_prefix))
    await asyncio.to_thread(ingest.wait_healthy)

    run, user_id = uuid.uuid4().hex[:8], f"node-user-{uuid.uuid4().hex[:6]}"
    sent = calls(user_id, run)
    result = await asyncio.to_thread(send_with_node, folder, ingest.url, write_key, sent)
    assert result["errors"] == [], f"{result}\n{ingest.tail()}"
    assert result["responses"] == [{"status": 200, "events": 3}], "one batch of the three calls, accepted"

    found = await events_on_topic(stack["RETARGET_KAFKA_BOOTSTRAP"], module_prefix)
    by_id = {event.message_id: (key, event) for key, event in found}
    assert len(found) == 3 and set(by_id) == {f"t-{run}", f"i-{run}", f"p-{run}"}, "each call once"
    track, identify, page = (by_id[f"{kind}-{run}"][1] for kind in "tip")
    assert (track.type, track.event, track.properties) == (
        "track",
        "Order Completed",
        sent[0]["params"]["properties"],
    )
    assert (identify.type, identify.traits) == ("identify", sent[1]["params"]["traits"])
    assert (page.type, page.name, page.properties) == ("page", "Checkout", sent[2]["params"]["properties"])
    for key, event in by_id.values():
        assert key == f"{workspace_id}:{user_id}".encode()
        assert (event.workspace_id, event.user_id) == (workspace_id, user_id)
        assert event.context["library"]["name"] == "@segment/analytics-node"
        assert event.sent_at is not None and event.original_timestamp is not None
