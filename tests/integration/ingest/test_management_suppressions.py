"""The suppressions routes on the real PostgreSQL: by address (hashed as the sender does),
pages of hashes only, manual adds, and removals that a complaint or an erasure refuses."""

from __future__ import annotations

import secrets

import asyncpg
import httpx
import pytest

from retarget.common.identity import email_digest
from retarget.ingest.settings import IngestSettings

from .conftest import suppression_of

pytestmark = pytest.mark.integration


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def _suppress(workspace_id: str, address: str, reason: str) -> None:
    conn = await asyncpg.connect(IngestSettings().database_url)
    try:
        await conn.execute(
            "INSERT INTO suppressions (workspace_id, email_hash, reason, source) VALUES ($1, $2, $3, 'test')",
            workspace_id,
            email_digest(address),
            reason,
        )
    finally:
        await conn.close()


async def test_add_look_up_list_and_remove(ingest_url, tenant, secret_key) -> None:
    address = f"Ann-{secrets.token_hex(4)}@Example.com"
    path = f"/v1/workspaces/{tenant.workspace_id}/suppressions"
    headers = bearer(await secret_key(tenant.workspace_id, "admin"))
    async with httpx.AsyncClient(base_url=ingest_url, timeout=30, headers=headers) as client:
        added = await client.post(path, json={"email": address})
        assert (added.status_code, added.json()["added"]) == (201, True), added.text
        again = await client.post(path, json={"email": address.lower()})  # same address, normalised
        assert (again.status_code, again.json()["added"], again.json()["reason"]) == (200, False, "manual")
        row = await suppression_of(tenant.workspace_id, address)
        assert row is not None and row["reason"] == "manual"

        found = (await client.get(path, params={"email": address})).json()
        assert (found["suppressed"], found["reason"], found["email"]) == (True, "manual", address)
        listed = await client.get(path, params={"limit": 10})
        assert address.lower() not in listed.text and address not in listed.text  # hashes only
        assert [s["email_hash"] for s in listed.json()["suppressions"]] == [email_digest(address).hex()]

        removed = await client.delete(path, params={"email": address})
        assert removed.status_code == 200, removed.text
        assert await suppression_of(tenant.workspace_id, address) is None
        assert (await client.delete(path, params={"email": address})).status_code == 404
        assert (await client.post(path, json={"email": "not-an-address"})).json()["field"] == "email"


@pytest.mark.parametrize("reason", ["complaint", "erased"])
async def test_a_complaint_or_an_erasure_is_never_removed(ingest_url, tenant, secret_key, reason) -> None:
    address = f"kept-{secrets.token_hex(4)}@example.com"
    await _suppress(tenant.workspace_id, address, reason)
    headers = bearer(await secret_key(tenant.workspace_id, "admin"))
    async with httpx.AsyncClient(base_url=ingest_url, timeout=30, headers=headers) as client:
        response = await client.delete(
            f"/v1/workspaces/{tenant.workspace_id}/suppressions", params={"email": address}
        )
    assert response.status_code == 409, response.text
    assert (response.json()["code"], response.json()["reason"]) == ("suppression_protected", reason)
    row = await suppression_of(tenant.workspace_id, address)
    assert row is not None and row["reason"] == reason


async def test_pages_follow_each_other_without_gaps(ingest_url, tenant, secret_key) -> None:
    addresses = [f"p{i}-{secrets.token_hex(3)}@example.com" for i in range(5)]
    for address in addresses:
        await _suppress(tenant.workspace_id, address, "unsubscribed")
    headers = bearer(await secret_key(tenant.workspace_id, "admin"))
    seen: list[str] = []
    after = None
    async with httpx.AsyncClient(base_url=ingest_url, timeout=30, headers=headers) as client:
        for _ in range(10):
            params = {"limit": 2} | ({"after": after} if after else {})
            page = (
                await client.get(f"/v1/workspaces/{tenant.workspace_id}/suppressions", params=params)
            ).json()
            seen += [s["email_hash"] for s in page["suppressions"]]
            after = page["next"]
            if after is None:
                break
    assert sorted(seen) == sorted(email_digest(a).hex() for a in addresses)


@pytest.mark.parametrize("earlier", ["manual", "unsubscribed", "hard_bounce"])
async def test_a_complaint_about_an_address_already_suppressed_is_never_removed(
    ingest_url, tenant, secret_key, earlier
) -> None:
    """A complaint that arrives while the address is suppressed for another reason (an admin's
    manual add, an unsubscribe) used to leave that reason (ON CONFLICT DO NOTHING): the admin's
    DELETE then removed the suppression and the complainant was mailed again."""
    from retarget.ingest.pool import LazyPool
    from retarget.ingest.reports import PgReports

    address = f"complains-{secrets.token_hex(4)}@example.com"
    message_id = f"m-{secrets.token_hex(8)}"
    await _suppress(tenant.workspace_id, address, earlier)
    conn = await asyncpg.connect(IngestSettings().database_url)
    try:
        await conn.execute(
            "INSERT INTO send_log (message_id, workspace_id, campaign, profile_id, recipient_hash, state, "
            "sent_at) VALUES ($1, $2, 'winback', 'p1', $3, 'sent', now())",
            message_id,
            tenant.workspace_id,
            email_digest(address),
        )
    finally:
        await conn.close()
    pool = LazyPool(IngestSettings())
    try:
        recorded = await PgReports(pool).record(message_id, "complaint", "arf", "5.7.1")
    finally:
        await pool.close()
    assert recorded is not None and not recorded.new  # it was suppressed already

    headers = bearer(await secret_key(tenant.workspace_id, "admin"))
    async with httpx.AsyncClient(base_url=ingest_url, timeout=30, headers=headers) as client:
        response = await client.delete(
            f"/v1/workspaces/{tenant.workspace_id}/suppressions", params={"email": address}
        )
    assert response.status_code == 409, response.text
    row = await suppression_of(tenant.workspace_id, address)
    assert row is not None and row["reason"] == "complaint"
