"""`retarget suppressions add|import|export` against the real database, as an operator runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

from retarget.common.identity import email_digest

pytestmark = pytest.mark.integration


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "retarget.cli.main", "suppressions", *args],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=60,
        check=False,
    )


async def test_import_add_and_export_round_trip(
    stack: dict[str, str], workspace_id: str, tmp_path: Path
) -> None:
    csv_file = tmp_path / "unsubscribes.csv"
    csv_file.write_text(
        "name,email\nAnn,ann@example.com\nBob, BOB@Example.com \nbad,not-an-address\nAnn,ann@example.com\n"
    )
    imported = _cli("import", str(csv_file), "--workspace", workspace_id, "--reason", "unsubscribed")
    assert imported.returncode == 1, imported.stdout + imported.stderr  # one invalid line is reported
    assert "added 2, already suppressed 0" in imported.stdout and "4" in imported.stdout
    again = _cli("import", str(csv_file), "--workspace", workspace_id, "--reason", "unsubscribed")
    assert "added 0, already suppressed 2" in again.stdout
    added = _cli("add", "carl@example.com", "--workspace", workspace_id)
    assert added.returncode == 0 and added.stdout.strip() == "added"

    exported = tmp_path / "export.csv"
    assert _cli("export", "--workspace", workspace_id, "--output", str(exported)).returncode == 0
    lines = exported.read_text().splitlines()
    assert lines[0] == "email_hash,reason,source,created_at" and len(lines) == 4
    assert "example.com" not in exported.read_text()  # hashes only, never addresses
    assert {line.split(",")[1] for line in lines[1:]} == {"unsubscribed", "manual"}

    other = f"{workspace_id}-copy"
    reimported = _cli("import", str(exported), "--workspace", other, "--reason", "manual")
    assert "added 3" in reimported.stdout, reimported.stdout + reimported.stderr
    conn = await asyncpg.connect(stack["RETARGET_DATABASE_URL"])
    try:
        rows = await conn.fetch(
            "SELECT email_hash, reason FROM suppressions WHERE workspace_id = $1", workspace_id
        )
        await conn.execute("DELETE FROM suppressions WHERE workspace_id = $1", other)
    finally:
        await conn.close()
    assert {bytes(r["email_hash"]) for r in rows} == {
        email_digest("ann@example.com"),
        email_digest("bob@example.com"),
        email_digest("carl@example.com"),
    }


def test_scope_is_required_and_reasons_are_a_fixed_set() -> None:
    assert _cli("add", "a@example.com").returncode == 2
    assert _cli("add", "a@example.com", "--global", "--reason", "bored").returncode == 2
