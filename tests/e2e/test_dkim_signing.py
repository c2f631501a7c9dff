"""The demo's DKIM set-up end to end: keys made by the demo's code (retarget.demo.dkim), the four
services as processes on the real stack, and the email the SMTP capture received verified by
dkimpy — an independent verifier — against the DNS records the demo prints."""

from __future__ import annotations

import asyncio
import re
import secrets
import subprocess
import uuid
from pathlib import Path

import asyncpg
import dkim
import httpx
import pytest

from retarget.common.settings import CommonSettings
from retarget.config.seal import new_seal_key
from retarget.demo.dkim import ensure_dkim_keys
from retarget.sender.testing import dns_answers

from .conftest import new_workspace

pytestmark = pytest.mark.e2e


def captured_raw(folder: Path, recipient: str) -> list[bytes]:
    return [p.read_bytes() for p in sorted(folder.glob("*.eml")) if recipient.encode() in p.read_bytes()]


async def wait_for_raw(folder: Path, recipient: str, timeout_s: float) -> list[bytes]:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not (found := await asyncio.to_thread(captured_raw, folder, recipient)):
        if asyncio.get_running_loop().time() > deadline:
            return []
        await asyncio.sleep(0.3)
    return found


def opendkim_verify(raw: bytes, records: list[str], folder: Path) -> str:
    """`opendkim -t` on the message, its keys looked up in the given DNS records."""
    lines = []
    for record in records:  # zone style -> OpenDKIM's "name value" (the strings joined, as a resolver does)
        name, _, strings = record.partition(" TXT ")
        value = "".join(re.findall(r'"([^"]*)"', strings))
        lines.append(f"{name} {value}\n")
    keys = "".join(lines)
    (folder / "dns").write_text(keys)
    (folder / "opendkim.conf").write_text(f"TestPublicKeys {folder / 'dns'}\nSyslog no\nMode v\n")
    (folder / "received.eml").write_bytes(raw)
    argv = ["opendkim", "-x", str(folder / "opendkim.conf"), "-vv", "-t", str(folder / "received.eml")]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    return done.stdout + done.stderr


async def test_the_demo_keys_sign_the_captured_email_and_dkimpy_verifies_both(
    launch,
    stack: dict[str, str],
    capture_dir: Path,
    topic_prefix: str,
    workspace_id: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
):
    seal_file = tmp_path / "config_seal_key"
    seal_file.write_text(new_seal_key())
    monkeypatch.setenv("RETARGET_CONFIG_SEAL_KEY_FILE", str(seal_file))
    write_key = await new_workspace(stack["RETARGET_DATABASE_URL"], workspace_id)
    settings = CommonSettings(
        kafka_bootstrap=stack["RETARGET_KAFKA_BOOTSTRAP"],
        database_url=stack["RETARGET_DATABASE_URL"],
        topic_prefix=topic_prefix,
    )
    try:
        keys = await ensure_dkim_keys(workspace_id, settings)
        assert sorted(k.algorithm for k in keys) == ["ed25519", "rsa"]
        assert {k.domain for k in keys} == {"boots.example"}  # the From domain of the workspace
        again = await ensure_dkim_keys(workspace_id, settings)  # a second demo run reuses them
        assert [k.selector for k in again] == [k.selector for k in keys]

        common = {
            "RETARGET_TOPIC_PREFIX": topic_prefix,
            "RETARGET_TOPIC_PARTITIONS": "2",
            "RETARGET_LINK_SECRET": secrets.token_hex(16),
            "RETARGET_CONFIG_SEAL_KEY_FILE": str(seal_file),
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
        recipient = f"dkim-{uuid.uuid4().hex[:8]}@example.com"
        visitor = f"anon-{uuid.uuid4().hex[:8]}"
        async with httpx.AsyncClient(base_url=services[0].url, auth=(write_key, ""), timeout=10) as client:
            for path, body in (
                (
                    "/v1/identify",
                    {"anonymousId": visitor, "traits": {"email": recipient, "firstName": "Ann"}},
                ),
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

        mails = await wait_for_raw(capture_dir, recipient, 120)
        if not mails:
            logs = "\n\n".join(f"--- {s.name}\n{s.tail()}" for s in services)
            pytest.fail(f"no email reached the capture within 120 s\n{logs}")
        raw = mails[0]
        lookup = dns_answers([k.dns for k in keys])  # the records the demo prints
        assert raw.count(b"DKIM-Signature:") == 2
        assert all(dkim.DKIM(raw).verify(idx=i, dnsfunc=lookup) for i in range(2))
        assert set(re.findall(rb";\s+d=([^;]+);", raw)) == {b"boots.example"}
        assert not dkim.verify(
            raw.replace(b"Trail Boot", b"Trail Boat", 1), dnsfunc=lookup
        )  # it really checks
    finally:
        conn = await asyncpg.connect(stack["RETARGET_DATABASE_URL"])
        try:
            await conn.execute("DELETE FROM config_versions WHERE workspace_id = $1", workspace_id)
        finally:
            await conn.close()
