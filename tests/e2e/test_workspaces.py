"""Two shops on one platform, end to end: each workspace's own campaign and template, applied with
the CLI (`retarget campaigns|templates apply`), reach the running services through the change
feed — the four services run as processes on the real stack and none is restarted."""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import yaml

from retarget.config.defaults import bundled_campaigns, bundled_templates

from .conftest import new_workspace, wait_for_mail

pytestmark = pytest.mark.e2e

BUNDLED_SUBJECT_END = "you left something in your cart"


def retarget(env: dict[str, str], *argv: str) -> subprocess.CompletedProcess[str]:
    """The CLI as an operator runs it."""
    return subprocess.run(
        [sys.executable, "-m", "retarget.cli.main", *argv],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def campaign_file(folder: Path, *, wait: str, percent_off: int) -> Path:
    body = {**bundled_campaigns()["abandoned_cart"], "wait": wait}
    body["incentive"] = {"kind": "percent_off", "value": percent_off}
    path = folder / "abandoned_cart.yaml"
    path.write_text(yaml.safe_dump(body))
    return path


def template_folder(folder: Path, subject: str) -> Path:
    folder.mkdir()
    bundled = bundled_templates()["abandoned_cart"]
    (folder / "abandoned_cart.html").write_text(bundled["html"] or "")
    (folder / "abandoned_cart.subject.txt").write_text(subject)
    return folder


async def add_to_cart(url: str, write_key: str, recipient: str) -> None:
    visitor = f"anon-{uuid.uuid4().hex[:8]}"
    async with httpx.AsyncClient(base_url=url, auth=(write_key, ""), timeout=10) as client:
        for path, body in (
            ("/v1/identify", {"anonymousId": visitor, "traits": {"email": recipient, "firstName": "Ann"}}),
            (
                "/v1/track",
                {
                    "anonymousId": visitor,
                    "event": "Product Added",
                    "properties": {"product_id": "boot-1", "name": "Trail Boot", "price": 89.5},
                },
            ),
        ):
            answer = await client.post(path, json=body)
            assert answer.status_code == 200, answer.text


def mail_for(capture_dir: Path, recipient: str, services: list[Any], timeout_s: float = 120) -> Any:
    found = wait_for_mail(capture_dir, recipient, timeout_s)
    if not found:
        logs = "\n\n".join(f"--- {s.name}\n{s.tail()}" for s in services)
        pytest.fail(f"no email to {recipient} within {timeout_s} s\n{logs}")
    return found[0]


async def test_two_workspaces_get_their_own_campaigns_and_a_cli_change_applies_live(
    launch: Any, stack: dict[str, str], capture_dir: Path, topic_prefix: str, tmp_path: Path
) -> None:
    shop_a, shop_b = f"a-{uuid.uuid4().hex[:8]}", f"b-{uuid.uuid4().hex[:8]}"
    key_a = await new_workspace(stack["RETARGET_DATABASE_URL"], shop_a)
    key_b = await new_workspace(stack["RETARGET_DATABASE_URL"], shop_b)
    cli_env = {**stack, "RETARGET_TOPIC_PREFIX": topic_prefix}
    try:
        # shop A: its own cart reminder (1 s, 20% off) and subject; shop B: the reminder disabled
        (tmp_path / "a").mkdir()
        done = retarget(
            cli_env,
            "campaigns",
            "apply",
            "--workspace",
            shop_a,
            str(campaign_file(tmp_path / "a", wait="1s", percent_off=20)),
        )
        assert done.returncode == 0, done.stderr
        subject_a = "{{ recipient.first_name }}, shop A kept your cart"
        done = retarget(
            cli_env,
            "templates",
            "apply",
            "--workspace",
            shop_a,
            str(template_folder(tmp_path / "ta", subject_a)),
        )
        assert done.returncode == 0, done.stderr
        done = retarget(cli_env, "campaigns", "disable", "--workspace", shop_b, "abandoned_cart")
        assert done.returncode == 0, done.stderr

        common = {
            "RETARGET_TOPIC_PREFIX": topic_prefix,
            "RETARGET_TOPIC_PARTITIONS": "2",
            "RETARGET_LINK_SECRET": secrets.token_hex(16),
        }
        services = [
            launch("ingest", "RETARGET_PORT", common),
            launch(
                "segmenter", "RETARGET_WEB_PORT", {**common, "RETARGET_DATA_DIR": str(tmp_path / "segmenter")}
            ),
            launch("composer", "RETARGET_OPS_PORT", common),
            launch("sender", "RETARGET_OPS_PORT", common),
        ]
        for service in services:
            await asyncio.to_thread(service.wait_healthy)
        ingest = services[0]

        recipient_a = f"a-{uuid.uuid4().hex[:8]}@example.com"
        await add_to_cart(ingest.url, key_a, recipient_a)
        mail_a = await asyncio.to_thread(mail_for, capture_dir, recipient_a, services)
        assert str(mail_a["Subject"]) == "Ann, shop A kept your cart"
        assert "20%" in mail_a.get_body(("html",)).get_content()  # its own incentive (bundled: 10%)

        # shop B: the operator applies B's own campaign (2 s wait, bundled template) while
        # everything runs; B's next cart add gets it
        (tmp_path / "b").mkdir()
        done = retarget(
            cli_env,
            "campaigns",
            "apply",
            "--workspace",
            shop_b,
            str(campaign_file(tmp_path / "b", wait="2s", percent_off=5)),
        )
        assert done.returncode == 0, done.stderr
        listing = retarget(cli_env, "campaigns", "list", "--workspace", shop_b)
        assert "abandoned_cart" in listing.stdout and "workspace" in listing.stdout, listing.stdout
        recipient_b = f"b-{uuid.uuid4().hex[:8]}@example.com"
        await add_to_cart(ingest.url, key_b, recipient_b)
        mail_b = await asyncio.to_thread(mail_for, capture_dir, recipient_b, services)
        assert str(mail_b["Subject"]).endswith(BUNDLED_SUBJECT_END)  # B kept the bundled template
        assert "5%" in mail_b.get_body(("html",)).get_content()
        assert all(s.process.poll() is None for s in services), "a service restarted or died"
    finally:
        conn = await asyncpg.connect(stack["RETARGET_DATABASE_URL"])
        try:
            for shop in (shop_a, shop_b):
                await conn.execute("DELETE FROM config_versions WHERE workspace_id = $1", shop)
        finally:
            await conn.close()
