"""Hostile input against the coupon and reputation routes (atk17): names, sizes, unicode,
traversal, other workspaces' ids, wrong keys. Every answer is a clear 4xx, never a 5xx, and
nothing is stored where no campaign can reach it."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import pytest

from retarget.coupons.store import CouponStore, Issue
from retarget.ingest.settings import IngestSettings

from .test_management_coupons import redeemed_count

pytestmark = pytest.mark.integration


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def issued(workspace_id: str, code: str) -> None:
    conn = await asyncpg.connect(IngestSettings().database_url)
    try:
        now = datetime.now(UTC)
        await CouponStore(conn).issue_unique(
            Issue(workspace_id, "abandoned_cart", uuid.uuid4().hex, "p1", now, timedelta(days=7)), code
        )
    finally:
        await conn.close()


async def test_hostile_codes_in_the_path_are_4xx(ingest_url, ingest_settings, tenant, secret_key) -> None:
    await issued(tenant.workspace_id, "RT-HOSTILE1")
    path = f"/v1/workspaces/{tenant.workspace_id}/coupons"
    headers = bearer(await secret_key(tenant.workspace_id, "coupons"))
    odd = [
        "RT-HOSTILE1%0A",
        "RT-HOSTILE1%00",
        "..%2F..%2Fetc%2Fpasswd",
        "%2E%2E",
        "A" * 65,
        "A" * 10_000,
        "%C3%A9t%C3%A9",
        "%F0%9F%92%A5",
        "%FF%FE",
        "rt-hostile1",
        "RT-HOSTILE1%20",
        "'%20OR%201=1--",
    ]
    async with httpx.AsyncClient(base_url=ingest_url, timeout=30, headers=headers) as client:
        for code in odd:
            await asyncio.sleep(0.5)  # the key's limit is 5 requests/s
            got = await client.get(f"{path}/{code}")
            assert got.status_code in (400, 404, 414, 431), (code, got.status_code, got.text[:200])
            red = await client.post(f"{path}/{code}/redeem", json={"order_id": "A-1"})
            assert red.status_code in (400, 404, 414, 431), (code, red.status_code, red.text[:200])
        for body in (
            b'{"order_id": "\\u0000"}',
            b'{"order_id": "' + b"x" * 129 + b'"}',
            b'{"order_id": true}',
            b'{"order_id": 1e400}',
            b'{"order_id": 123456789012345678901234567890}',
            b'{"order_id": "   "}',
            b"x" * 5000,
            b'{"order_id": "\xff"}',
        ):
            await asyncio.sleep(0.3)
            bad = await client.post(f"{path}/RT-HOSTILE1/redeem", content=body)
            assert bad.status_code in (400, 413, 200), (body[:40], bad.status_code, bad.text[:200])
            if bad.status_code == 200:
                break
        # concurrent redemptions for different orders: exactly one wins, every other is a 409
        await issued(tenant.workspace_id, "RT-RACE0001")
        keys = [bearer(await secret_key(tenant.workspace_id, "coupons")) for _ in range(8)]
        answers = await asyncio.gather(
            *(
                client.post(f"{path}/RT-RACE0001/redeem", json={"order_id": f"O-{i}"}, headers=keys[i])
                for i in range(8)
            )
        )
        assert sorted(a.status_code for a in answers) == [200] + [409] * 7
        # and the same order id concurrently: all 200, the same order stored
        await issued(tenant.workspace_id, "RT-RACE0002")
        same = await asyncio.gather(
            *(client.post(f"{path}/RT-RACE0002/redeem", json={"order_id": "SAME"}, headers=k) for k in keys)
        )
        assert {a.status_code for a in same} == {200}
        assert {a.json()["coupon"]["order_id"] for a in same} == {"SAME"}
    # each race counted once for the funnel's `redeemed`, whatever the retries and losers
    assert await redeemed_count(ingest_settings, tenant.workspace_id) == 2


async def test_a_pool_name_with_a_trailing_newline_is_refused(ingest_url, tenant, secret_key) -> None:
    """`$` matches before a trailing newline: 'spring\\n' passed POOL_NAME, its codes went to a pool
    no campaign can name, and uploading them again to 'spring' found them 'already there'."""
    headers = bearer(await secret_key(tenant.workspace_id, "admin"))
    base = f"/v1/workspaces/{tenant.workspace_id}/coupon-pools"
    async with httpx.AsyncClient(base_url=ingest_url, timeout=30, headers=headers) as client:
        odd = await client.post(f"{base}/spring%0A/codes", json={"codes": ["NL-1"]})
        assert (odd.status_code, odd.json().get("field")) == (400, "pool"), odd.text
        ok = await client.post(f"{base}/spring/codes", json={"codes": ["NL-1"]})
        assert (ok.status_code, ok.json()["added"]) == (200, 1), ok.text


async def test_hostile_uploads_and_reputation_bodies_are_4xx(
    ingest_url, tenant, make_tenant, secret_key
) -> None:
    headers = bearer(await secret_key(tenant.workspace_id, "admin"))
    base = f"/v1/workspaces/{tenant.workspace_id}"
    async with httpx.AsyncClient(base_url=ingest_url, timeout=30, headers=headers) as client:
        for body in (
            {"codes": "ABC"},
            {"codes": [1, 2]},
            {"codes": [None]},
            {"codes": ["A" * 65]},
            {"codes": ["ÉTÉ"]},
            {"codes": ["A\x00B"]},
            {"codes": [["nested"]]},
            {"nope": []},
        ):
            bad = await client.post(f"{base}/coupon-pools/spring/codes", json=body)
            assert bad.status_code == 400, (body, bad.status_code, bad.text[:200])
        many = await client.post(f"{base}/coupon-pools/spring/codes", json={"codes": ["X"] * 100_001})
        assert many.status_code in (400, 413), many.text[:200]
        for body in ({"reason": ""}, {"reason": 5}, {"reason": "x" * 501}, {}, {"reason": ["a"]}):
            bad = await client.post(f"{base}/pause", json=body)
            assert bad.status_code == 400, (body, bad.status_code, bad.text[:200])
        nul = await client.post(f"{base}/pause", json={"reason": "a\u0000b"})
        assert nul.status_code == 400, nul.text[:200]
        bad = await client.post(f"{base}/resume", json={"note": "a\u0000b"})
        assert bad.status_code == 400, bad.text[:200]
        bad = await client.post(f"{base}/resume", json={"note": {"a": 1}})
        assert bad.status_code == 400, bad.text[:200]
        bad = await client.post(
            f"{base}/resume", content=b"[1]", headers={"content-type": "application/json"}
        )
        assert bad.status_code == 400, bad.text[:200]
        # another workspace's id with this key: refused, nothing paused there
        stranger = await make_tenant()
        other = await client.post(f"/v1/workspaces/{stranger.workspace_id}/pause", json={"reason": "x"})
        assert other.status_code == 403, other.text
        other = await client.post(f"/v1/workspaces/{stranger.workspace_id}/resume")
        assert other.status_code == 403, other.text
    async with httpx.AsyncClient(base_url=ingest_url, timeout=30) as client:
        for key in (tenant.write_key, await secret_key(tenant.workspace_id, "coupons")):
            for verb, route in (("POST", "pause"), ("POST", "resume"), ("GET", "reputation")):
                got = await client.request(verb, f"{base}/{route}", json={"reason": "x"}, headers=bearer(key))
                assert got.status_code == 403, (route, got.status_code, got.text[:200])
