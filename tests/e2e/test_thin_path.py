"""The thin path through all four services, each a separate process, on the real stack:
HTTP event → ingest → Kafka → segmenter (trigger) → composer (Jinja2) → sender (SMTP) → inbox,
and the email's coupon code redeemed once by the shop's backend.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import uuid
from pathlib import Path

import asyncpg
import httpx
import pytest

from retarget.common.secret_keys import SecretKeyStore

from .conftest import new_workspace, wait_for_mail

pytestmark = pytest.mark.e2e


async def test_an_http_event_becomes_an_email_in_the_inbox(
    launch, stack: dict[str, str], capture_dir: Path, topic_prefix: str, workspace_id: str, tmp_path: Path
):
    write_key = await new_workspace(stack["RETARGET_DATABASE_URL"], workspace_id)
    common = {
        "RETARGET_TOPIC_PREFIX": topic_prefix,
        "RETARGET_TOPIC_PARTITIONS": "2",
        "RETARGET_LINK_SECRET": secrets.token_hex(16),
        "RETARGET_LOG_LEVEL": "INFO",
    }
    services = [
        launch("ingest", "RETARGET_PORT", common),
        launch(
            "segmenter",
            "RETARGET_WEB_PORT",
            {**common, "RETARGET_CART_WAIT_S": "1", "RETARGET_DATA_DIR": str(tmp_path / "segmenter")},
        ),
        launch("composer", "RETARGET_OPS_PORT", common),
        launch("sender", "RETARGET_OPS_PORT", common),
    ]
    for service in services:
        await asyncio.to_thread(service.wait_healthy)
    ingest = services[0]

    recipient = f"e2e-{uuid.uuid4().hex[:8]}@example.com"
    visitor = f"anon-{uuid.uuid4().hex[:8]}"
    async with httpx.AsyncClient(base_url=ingest.url, auth=(write_key, ""), timeout=10) as client:
        identify = await client.post(
            "/v1/identify", json={"anonymousId": visitor, "traits": {"email": recipient, "firstName": "Ann"}}
        )
        assert identify.status_code == 200, identify.text
        added = await client.post(
            "/v1/track",
            json={
                "anonymousId": visitor,
                "event": "Product Added",
                "properties": {
                    "product_id": "boot-1",
                    "name": "Trail Boot",
                    "price": 89.5,
                    "currency": "EUR",
                },
            },
        )
        assert added.status_code == 200, added.text

    mails = await asyncio.to_thread(wait_for_mail, capture_dir, recipient, 90)
    if not mails:
        logs = "\n\n".join(f"--- {s.name}\n{s.tail()}" for s in services)
        pytest.fail(f"no email for the visitor reached the capture within 90 s\n{logs}")
    assert len(mails) == 1, "one trigger must produce exactly one email"
    msg = mails[0]
    assert msg["Subject"] == "Ann, you left something in your cart"
    assert msg["From"] == "Boot Shop <news@boots.example>"
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    body = msg.get_body(("plain",)).get_content()
    assert "Trail Boot" in body and "€89.50" in body and "1 Main St, Springfield" in body

    # the email's coupon was stored before it was sent: the shop's backend redeems it once
    code = re.search(r"with code (RT-[0-9A-F]{10})", body)
    assert code is not None, body
    conn = await asyncpg.connect(stack["RETARGET_DATABASE_URL"])
    try:
        coupons_key = await SecretKeyStore(conn).create(workspace_id, ["coupons"], label="e2e shop backend")
    finally:
        await conn.close()
    redeem = f"/v1/workspaces/{workspace_id}/coupons/{code.group(1)}/redeem"
    async with httpx.AsyncClient(base_url=ingest.url, timeout=10) as shop:
        headers = {"Authorization": f"Bearer {coupons_key}"}
        first = await shop.post(redeem, json={"order_id": "e2e-1"}, headers=headers)
        assert (first.status_code, first.json()["coupon"]["campaign"]) == (200, "abandoned_cart"), first.text
        second = await shop.post(redeem, json={"order_id": "e2e-2"}, headers=headers)
        assert (second.status_code, second.json()["reason"]) == (409, "already_redeemed")

    # graceful shutdown: every service finishes its work and exits cleanly on SIGTERM
    for service in reversed(services):
        code = await asyncio.to_thread(service.stop)
        assert code == 0, f"{service.name} exited with {code} on SIGTERM:\n{service.tail()}"
