"""`retarget coupons check|redeem|upload` on the real PostgreSQL: exit 0 on success, and a
distinct exit code per reason (3 unknown, 4 expired, 5 already redeemed) with the reason printed."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from retarget.cli.main import build_parser
from retarget.common.settings import CommonSettings
from retarget.common.workspaces import Workspace, WorkspaceStore
from retarget.coupons.store import CouponStore, Issue

pytestmark = pytest.mark.integration


async def run_cli(*argv: str) -> int:
    args = build_parser().parse_args(list(argv))
    return int(await args.func(args))


async def issue(workspace_id: str, code: str, expires_in: timedelta) -> None:
    conn = await asyncpg.connect(CommonSettings().database_url)
    try:
        now = datetime.now(UTC)
        await CouponStore(conn).issue_unique(
            Issue(workspace_id, "abandoned_cart", uuid.uuid4().hex, "p1", now, expires_in), code
        )
    finally:
        await conn.close()


def last_json(capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])  # type: ignore[no-any-return]


async def test_check_and_redeem_exit_codes(stack, workspace_id, capsys) -> None:
    await issue(workspace_id, "RT-CLI00001", timedelta(days=7))
    await issue(workspace_id, "RT-CLIOLD01", timedelta(seconds=1) - timedelta(days=1))
    ws = ("--workspace", workspace_id)
    assert await run_cli("coupons", "check", *ws, "RT-CLI00001") == 0
    assert last_json(capsys)["ok"] is True
    assert await run_cli("coupons", "redeem", *ws, "RT-CLI00001", "--order-id", "A-1") == 0
    assert await run_cli("coupons", "redeem", *ws, "RT-CLI00001", "--order-id", "A-1") == 0  # the same order
    capsys.readouterr()
    assert await run_cli("coupons", "redeem", *ws, "RT-CLI00001", "--order-id", "A-2") == 5
    assert last_json(capsys)["reason"] == "already_redeemed"
    assert await run_cli("coupons", "check", *ws, "RT-CLI00001") == 5
    assert await run_cli("coupons", "check", *ws, "RT-CLIOLD01") == 4
    assert last_json(capsys)["reason"] == "expired"
    assert await run_cli("coupons", "redeem", *ws, "RT-CLIOLD01") == 4
    assert await run_cli("coupons", "redeem", *ws, "RT-NOSUCH01") == 3
    assert last_json(capsys) == {"ok": False, "reason": "unknown", "coupon": None}
    assert await run_cli("coupons", "check", "--workspace", "ws-other", "RT-CLIOLD01") == 3  # not theirs


async def test_upload_a_pool_file(stack, workspace_id, tmp_path: Path, capsys) -> None:
    conn = await asyncpg.connect(CommonSettings().database_url)
    try:
        await WorkspaceStore(conn).upsert(
            Workspace(workspace_id, "Shop", "Shop", "shop@example.com", "1 Test Street, Testville")
        )
    finally:
        await conn.close()
    codes = tmp_path / "codes.txt"
    codes.write_text("SUMMER-1\nSUMMER-2\n\nSUMMER-1\n")
    argv = ("coupons", "upload", "--workspace", workspace_id, "--pool", "summer", str(codes))
    assert await run_cli(*argv) == 0
    assert "added 2, already there 1" in capsys.readouterr().out
    codes.write_text("SUMMER-3\nnot a code\n")
    assert await run_cli(*argv) == 2  # nothing stored from a file with a bad line
    codes.write_bytes(b"SUMMER-5\n\xff\xfe\n")  # not UTF-8: exit 2 as documented, not a traceback
    assert await run_cli(*argv) == 2
    codes.write_text("SUMMER-4\n")
    assert await run_cli("coupons", "upload", "--workspace", "ws-nobody", "--pool", "summer", str(codes)) == 2
    assert "no workspace" in capsys.readouterr().out
    conn = await asyncpg.connect(CommonSettings().database_url)
    try:
        assert await CouponStore(conn).pool_free(workspace_id, "summer") == 2
    finally:
        await conn.close()


async def test_an_order_id_is_taken_as_the_api_takes_it(stack, workspace_id, capsys) -> None:
    """Stripped and 1 to 128 characters: 'A-9 ' redeemed here is the shop's 'A-9' retried (200 there,
    0 here), not another order (atk17: the CLI stored it raw)."""
    await issue(workspace_id, "RT-CLIORD01", timedelta(days=7))
    ws = ("--workspace", workspace_id)
    assert await run_cli("coupons", "redeem", *ws, "RT-CLIORD01", "--order-id", "  ") == 2
    assert await run_cli("coupons", "redeem", *ws, "RT-CLIORD01", "--order-id", "x" * 129) == 2
    assert await run_cli("coupons", "check", *ws, "RT-CLIORD01") == 0  # nothing redeemed above
    assert await run_cli("coupons", "redeem", *ws, "RT-CLIORD01", "--order-id", " A-9 ") == 0
    assert await run_cli("coupons", "redeem", *ws, "RT-CLIORD01", "--order-id", "A-9") == 0
    assert last_json(capsys)["coupon"]["order_id"] == "A-9"  # type: ignore[index]
