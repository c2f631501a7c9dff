"""`retarget campaigns …` and `retarget templates …` against the real PostgreSQL and Kafka:
exit codes, messages, the feed, and nothing stored when any input is invalid."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import yaml

from retarget.config.defaults import bundled_campaigns

pytestmark = pytest.mark.integration

Cli = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def cli(stack: dict[str, str], topic_prefix: str, config_feed: str) -> Cli:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "retarget.cli.main", *args],
            capture_output=True,
            text=True,
            env=os.environ | {"RETARGET_TOPIC_PREFIX": topic_prefix},
            timeout=120,
            check=False,
        )

    return run


def campaign_file(folder: Path, name: str, **changes: Any) -> Path:
    body = bundled_campaigns()["abandoned_cart"] | {"name": name} | changes
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(body))
    return path


async def versions(pool: asyncpg.Pool, workspace: str) -> int:
    return await pool.fetchval("SELECT count(*) FROM config_versions WHERE workspace_id = $1", workspace)


def listed(cli: Cli, what: str, workspace: str) -> dict[str, dict[str, Any]]:
    result = cli(what, "list", "--workspace", workspace, "--json")
    assert result.returncode == 0, result.stderr
    return {row["name"]: row for row in map(json.loads, result.stdout.splitlines())}


async def test_campaigns_apply_list_disable_delete(
    cli: Cli, workspace: str, tmp_path: Path, pool: asyncpg.Pool, read_feed: Callable[[], Any]
):
    applied = cli(
        "campaigns",
        "apply",
        "--workspace",
        workspace,
        str(campaign_file(tmp_path, "vip_cart")),
        str(campaign_file(tmp_path, "abandoned_cart", wait="2h")),
    )
    assert applied.returncode == 0, applied.stderr
    assert "applied campaign vip_cart: version" in applied.stdout

    campaigns = listed(cli, "campaigns", workspace)
    assert campaigns["vip_cart"]["source"] == "workspace" and campaigns["vip_cart"]["enabled"]
    assert campaigns["abandoned_cart"]["source"] == "workspace"  # its own over the bundled one
    assert campaigns["post_purchase"] == {
        "name": "post_purchase",
        "source": "default",
        "version": None,
        "enabled": True,
    }
    text = cli("campaigns", "list", "--workspace", workspace)
    assert text.returncode == 0 and "post_purchase\tdefault\tversion -\tenabled" in text.stdout

    disabled = cli("campaigns", "disable", "--workspace", workspace, "post_purchase")  # a bundled one
    assert disabled.returncode == 0, disabled.stderr
    row = listed(cli, "campaigns", workspace)["post_purchase"]
    assert row["source"] == "workspace" and row["enabled"] is False and row["version"] is not None

    deleted = cli("campaigns", "delete", "--workspace", workspace, "vip_cart")
    assert deleted.returncode == 0, deleted.stderr
    assert "vip_cart" not in listed(cli, "campaigns", workspace)
    missing = cli("campaigns", "delete", "--workspace", workspace, "never_was")
    assert missing.returncode == 1 and "no campaign 'never_was'" in missing.stderr

    assert await versions(pool, workspace) == 4
    feed = [change for _, change in await read_feed()]
    assert [(c.name, c.deleted) for c in feed] == [
        ("vip_cart", False),
        ("abandoned_cart", False),
        ("post_purchase", False),
        ("vip_cart", True),
    ]
    assert feed[2].body is not None and feed[2].body["enabled"] is False


async def test_one_invalid_campaign_file_stores_none(
    cli: Cli, workspace: str, tmp_path: Path, pool: asyncpg.Pool, read_feed: Callable[[], Any]
):
    good = campaign_file(tmp_path, "vip_cart")
    bad = campaign_file(tmp_path, "slow_cart", wait="whenever")
    result = cli("campaigns", "apply", "--workspace", workspace, str(good), str(bad))

    assert result.returncode == 1
    assert f"{bad}: campaign slow_cart: field wait: 'whenever' is not a duration" in result.stderr
    assert "nothing was stored" in result.stderr
    assert await versions(pool, workspace) == 0
    assert await read_feed() == []

    not_yaml = tmp_path / "broken.yaml"
    not_yaml.write_text("name: [unclosed")
    result = cli("campaigns", "apply", "--workspace", workspace, str(good), str(not_yaml))
    assert result.returncode == 1 and f"{not_yaml}: not readable YAML" in result.stderr
    assert await versions(pool, workspace) == 0


async def test_an_unknown_workspace_is_refused(cli: Cli, workspace_id: str, tmp_path: Path):
    result = cli("campaigns", "apply", "--workspace", workspace_id, str(campaign_file(tmp_path, "vip_cart")))
    assert result.returncode == 1 and f"no workspace {workspace_id!r}" in result.stderr


async def test_templates_apply_and_list(
    cli: Cli, workspace: str, tmp_path: Path, pool: asyncpg.Pool, read_feed: Callable[[], Any]
):
    (tmp_path / "welcome.subject.txt").write_text("Welcome {{ first_name }}")
    (tmp_path / "welcome.html").write_text('{% extends "base.html" %}{% block body %}Hi{% endblock %}')
    (tmp_path / "welcome.txt").write_text("Hi")
    (tmp_path / "base.html").write_text("layout, not a template")

    result = cli("templates", "apply", "--workspace", workspace, str(tmp_path))
    assert result.returncode == 0, result.stderr
    templates = listed(cli, "templates", workspace)
    assert templates["welcome"]["source"] == "workspace" and templates["welcome"]["parts"] == [
        "subject",
        "html",
        "text",
    ]
    assert templates["abandoned_cart"]["source"] == "default" and "base" not in templates
    [(_, change)] = await read_feed()
    assert change.body == {
        "subject": "Welcome {{ first_name }}",
        "html": (tmp_path / "welcome.html").read_text(),
        "text": "Hi",
    }


async def test_an_invalid_template_names_the_part_and_the_line_and_stores_nothing(
    cli: Cli, workspace: str, tmp_path: Path, pool: asyncpg.Pool
):
    (tmp_path / "welcome.subject.txt").write_text("Welcome")
    (tmp_path / "welcome.html").write_text("<p>\n{{ first_name }\n</p>")
    (tmp_path / "promo.subject.txt").write_text("Promo")
    (tmp_path / "promo.txt").write_text("fine")
    (tmp_path / "nosubject.html").write_text("<p>x</p>")

    result = cli("templates", "apply", "--workspace", workspace, str(tmp_path))
    assert result.returncode == 1
    assert "template welcome: field html: line 2: unexpected '}'" in result.stderr
    assert "nosubject.*: template nosubject: field subject: required" in result.stderr
    assert await versions(pool, workspace) == 0

    empty = tmp_path / "empty"
    empty.mkdir()
    result = cli("templates", "apply", "--workspace", workspace, str(empty))
    assert result.returncode == 1 and "no templates" in result.stderr


async def test_secret_keys_with_the_admin_scope_exist(cli: Cli, workspace: str):
    result = cli("secret-key", "create", "--workspace", workspace, "--scope", "admin")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("rt_sk_")
