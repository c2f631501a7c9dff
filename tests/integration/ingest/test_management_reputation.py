"""The reputation routes on the real PostgreSQL: an admin key pauses and resumes its workspace
and reads its rates; a resume records who resumed; bad bodies are a 400 naming the field."""

from __future__ import annotations

import asyncpg
import httpx
import pytest

from retarget.ingest.settings import IngestSettings

pytestmark = pytest.mark.integration


async def _pause_row(workspace_id: str) -> asyncpg.Record | None:
    conn = await asyncpg.connect(IngestSettings().database_url)
    try:
        return await conn.fetchrow("SELECT * FROM workspace_pauses WHERE workspace_id = $1", workspace_id)
    finally:
        await conn.close()


async def _forget(workspace_id: str) -> None:
    conn = await asyncpg.connect(IngestSettings().database_url)
    try:
        await conn.execute("DELETE FROM workspace_pauses WHERE workspace_id = $1", workspace_id)
    finally:
        await conn.close()


async def test_an_admin_key_pauses_reads_and_resumes_its_workspace(ingest_url, tenant, secret_key) -> None:
    base = f"/v1/workspaces/{tenant.workspace_id}"
    admin = await secret_key(tenant.workspace_id, "admin")
    headers = {"Authorization": f"Bearer {admin}"}
    try:
        async with httpx.AsyncClient(base_url=ingest_url, timeout=30, headers=headers) as client:
            assert (await client.post(f"{base}/pause", json={"reason": " "})).json()["field"] == "reason"
            assert (await client.post(f"{base}/pause", json={"reason": 5})).status_code == 400
            assert (await client.post(f"{base}/pause", content=b"{nope")).status_code == 400

            paused = await client.post(f"{base}/pause", json={"reason": "bought list"})
            assert (paused.status_code, paused.json()) == (200, {"paused": True, "changed": True}), (
                paused.text
            )
            row = await _pause_row(tenant.workspace_id)
            assert row is not None and row["paused"] and row["reason"] == "operator"
            assert row["detail"].startswith("bought list (by sk:") and admin not in row["detail"]
            # pausing a paused workspace changes nothing: the first pause's reason and time stay
            twice = await client.post(f"{base}/pause", json={"reason": "again"})
            assert twice.json() == {"paused": True, "changed": False}, twice.text
            kept = await _pause_row(tenant.workspace_id)
            assert kept is not None and (kept["detail"], kept["changed_at"]) == (
                row["detail"],
                row["changed_at"],
            )

            shown = (await client.get(f"{base}/reputation")).json()
            assert (shown["paused"], shown["reason"], shown["held"], shown["level"]) == (
                True,
                "operator",
                0,
                "ok",
            )
            assert {(r["domain"], r["kind"]) for r in shown["rates"]} == {
                ("*", "complaint_rate"),
                ("*", "hard_bounce_rate"),
            }

            resumed = await client.post(f"{base}/resume")  # no body: no note
            assert resumed.json() == {"paused": False, "changed": True}, resumed.text
            row = await _pause_row(tenant.workspace_id)
            assert row is not None and not row["paused"] and row["counts_from"] is not None
            assert row["detail"].startswith("resumed by sk:")
            again = await client.post(f"{base}/resume", json={"note": "x"})
            assert again.json() == {"paused": False, "changed": False}
    finally:
        await _forget(tenant.workspace_id)
