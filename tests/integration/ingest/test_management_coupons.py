"""Check, redeem and pool upload on a served ingest with the real PostgreSQL: only a secret key
with scope `coupons` of the workspace checks and redeems (write keys, other scopes and other
workspaces are refused before any lookup), redeeming is idempotent for the same order and
refused with the reason otherwise, and each redemption is counted once for the funnel."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import pytest

from retarget.coupons.store import CouponStore, Issue
from retarget.ingest.settings import IngestSettings

from .conftest import ops_url

pytestmark = pytest.mark.integration


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def issued(workspace_id: str, code: str, *, expires_in: timedelta = timedelta(days=7)) -> None:
    """A code the composer stored, issued so that it expires `expires_in` from now."""
    conn = await asyncpg.connect(IngestSettings().database_url)
    try:
        now = datetime.now(UTC)
        await CouponStore(conn).issue_unique(
            Issue(
                workspace_id,
                "abandoned_cart",
                uuid.uuid4().hex,
                "p1",
                now - timedelta(days=1),
                expires_in + timedelta(days=1),
            ),
            code,
        )
    finally:
        await conn.close()


async def redeemed_count(settings: IngestSettings, workspace_id: str) -> float:
    async with httpx.AsyncClient(timeout=30) as client:
        text = (await client.get(f"{ops_url(settings)}/metrics")).text
    pattern = rf'^retarget_ingest_coupons_redeemed_total\{{[^}}]*workspace="{workspace_id}"[^}}]*\}} (\S+)$'
    return sum(float(m) for m in re.findall(pattern, text, re.M))


async def test_check_then_redeem_once_idempotent_for_the_same_order(
    ingest_url, ingest_settings, tenant, secret_key
) -> None:
    await issued(tenant.workspace_id, "RT-API00001")
    base = f"/v1/workspaces/{tenant.workspace_id}/coupons/RT-API00001"
    headers = bearer(await secret_key(tenant.workspace_id, "coupons"))
    async with httpx.AsyncClient(base_url=ingest_url, timeout=30, headers=headers) as client:
        checked = await client.get(base)
        assert (checked.status_code, checked.json()["valid"]) == (200, True), checked.text
        assert checked.json()["coupon"]["campaign"] == "abandoned_cart"
        first = await client.post(f"{base}/redeem", json={"order_id": "A-1001"})
        assert first.status_code == 200, first.text
        again = await client.post(f"{base}/redeem", json={"order_id": "A-1001"})
        assert (again.status_code, again.json()) == (200, first.json())
        other = await client.post(f"{base}/redeem", json={"order_id": "A-2002"})
        assert other.status_code == 409, other.text
        assert (other.json()["reason"], other.json()["coupon"]["order_id"]) == ("already_redeemed", "A-1001")
        unnamed = await client.post(f"{base}/redeem")
        assert (unnamed.status_code, unnamed.json()["reason"]) == (409, "already_redeemed")
        assert (await client.get(base)).json()["reason"] == "already_redeemed"
    assert await redeemed_count(ingest_settings, tenant.workspace_id) == 1


async def test_unknown_expired_and_bad_bodies_are_clear_4xx(ingest_url, tenant, secret_key) -> None:
    await issued(tenant.workspace_id, "RT-EXPIRED1", expires_in=-timedelta(minutes=1))
    path = f"/v1/workspaces/{tenant.workspace_id}/coupons"
    headers = bearer(await secret_key(tenant.workspace_id, "coupons"))
    async with httpx.AsyncClient(base_url=ingest_url, timeout=30, headers=headers) as client:
        expired = await client.post(f"{path}/RT-EXPIRED1/redeem", json={"order_id": "A-1"})
        assert (expired.status_code, expired.json()["reason"]) == (410, "expired"), expired.text
        assert (await client.get(f"{path}/RT-EXPIRED1")).status_code == 410
        unknown = await client.post(f"{path}/RT-NOSUCHONE/redeem")
        assert (unknown.status_code, unknown.json()["reason"]) == (404, "unknown")
        assert (await client.get(f"{path}/not..a%20code")).status_code == 404
        await issued(tenant.workspace_id, "RT-BODIES01")
        for body, field in (
            (b"[1]", None),
            (b"{", None),
            (b'{"order_id": ""}', "order_id"),
            (b'{"order_id": {}}', "order_id"),
        ):
            bad = await client.post(f"{path}/RT-BODIES01/redeem", content=body)
            assert bad.status_code == 400 and bad.json().get("field") == field, bad.text
        assert (await client.get(f"{path}/RT-BODIES01")).json()["valid"] is True  # nothing redeemed


async def test_only_a_coupons_key_of_the_workspace_checks_or_redeems(
    ingest_url, tenant, make_tenant, secret_key
) -> None:
    await issued(tenant.workspace_id, "RT-SCOPED01")
    stranger = await make_tenant()
    await issued(stranger.workspace_id, "RT-THEIRS01")
    path = f"/v1/workspaces/{tenant.workspace_id}/coupons"
    async with httpx.AsyncClient(base_url=ingest_url, timeout=30) as client:
        assert (await client.get(f"{path}/RT-SCOPED01")).status_code == 401
        write = await client.post(f"{path}/RT-SCOPED01/redeem", headers=bearer(tenant.write_key))
        assert (write.status_code, write.json()["code"]) == (403, "secret_key_required")
        admin = await client.get(
            f"{path}/RT-SCOPED01", headers=bearer(await secret_key(tenant.workspace_id, "admin"))
        )
        assert (admin.status_code, admin.json()["code"]) == (403, "insufficient_scope")
        theirs = bearer(await secret_key(stranger.workspace_id, "coupons"))
        other = await client.post(f"{path}/RT-SCOPED01/redeem", headers=theirs)
        assert (other.status_code, other.json()["code"]) == (403, "wrong_workspace")
        # with its own key, the stranger's path never finds this workspace's code
        own = await client.get(f"/v1/workspaces/{stranger.workspace_id}/coupons/RT-SCOPED01", headers=theirs)
        assert (own.status_code, own.json()["reason"]) == (404, "unknown")
        # and a coupons key can't manage the workspace
        upload = await client.post(
            f"/v1/workspaces/{tenant.workspace_id}/coupon-pools/spring/codes",
            json={"codes": ["X1"]},
            headers=bearer(await secret_key(tenant.workspace_id, "coupons")),
        )
        assert (upload.status_code, upload.json()["code"]) == (403, "insufficient_scope")
        mine = await client.get(
            f"{path}/RT-SCOPED01", headers=bearer(await secret_key(tenant.workspace_id, "coupons"))
        )
        assert mine.status_code == 200  # nothing above redeemed it


async def test_an_admin_uploads_a_pool(ingest_url, tenant, secret_key) -> None:
    path = f"/v1/workspaces/{tenant.workspace_id}/coupon-pools/spring/codes"
    headers = bearer(await secret_key(tenant.workspace_id, "admin"))
    async with httpx.AsyncClient(base_url=ingest_url, timeout=30, headers=headers) as client:
        added = await client.post(path, json={"codes": ["SPRING-1", "SPRING-2", "SPRING-1"]})
        assert (added.status_code, added.json()["added"], added.json()["duplicates"]) == (200, 2, 1), (
            added.text
        )
        bad = await client.post(path, json={"codes": ["SPRING-3", "no spaces"]})
        assert (bad.status_code, bad.json()["field"]) == (400, "codes")
        assert (await client.post(path.replace("spring", "Spring!"), json={"codes": []})).status_code == 400
    conn = await asyncpg.connect(IngestSettings().database_url)
    try:
        assert await CouponStore(conn).pool_free(tenant.workspace_id, "spring") == 2  # SPRING-3 not stored
    finally:
        await conn.close()
