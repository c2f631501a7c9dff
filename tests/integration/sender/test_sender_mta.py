"""The sender against real mail servers: Postfix's smtp-sink injecting faults, a real Postfix
storing what it accepted, and OpenDKIM verifying the signatures on what Postfix stored."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from retarget.common.identity import email_digest
from retarget.common.workspaces import Workspace, WorkspaceStore
from retarget.sender.dkim_keys import load_key
from retarget.sender.dkim_sign import public_key_record
from retarget.sender.local_mta import PrivatePostfix
from retarget.sender.rules import classify_reply
from retarget.sender.settings import SenderSettings, SmtpTarget
from retarget.sender.smtp_pool import SmtpPool
from retarget.sender.transport import Envelope

from .conftest import ScriptedSmtp, outbound_message, produce

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("flags", "outcome", "reason"),
    [
        (("-r", "RCPT"), "deferred", "soft_bounce"),
        (("-f", "RCPT"), "bounced", "hard_bounce"),
        (("-f", "."), "bounced", "hard_bounce"),  # 5xx to the end of DATA
        (("-q", "DATA"), "deferred", "connection_lost"),  # hangs up without an answer
        (("-Q", "MAIL"), "deferred", "throttled"),  # 421 and closes: the receiver wants us slower
        ((), "sent", "accepted"),
    ],
)
async def test_smtp_sink_faults_become_the_right_outcome(
    smtp_sink: Any, flags: tuple[str, ...], outcome: str, reason: str
) -> None:
    pool = SmtpPool(SmtpTarget("127.0.0.1", smtp_sink(*flags), "none"), size=1, timeout_s=5)
    try:
        reply = await pool.deliver(Envelope("b@shop.example", "r@example.com", b"Subject: x\r\n\r\nhi\r\n"))
    finally:
        await pool.close()
    verdict = classify_reply(reply)
    assert (verdict.outcome, verdict.reason) == (outcome, reason), reply


async def _db(settings: SenderSettings, query: str, *args: Any) -> Any:
    conn = await asyncpg.connect(settings.database_url)
    try:
        return await conn.fetch(query, *args)
    finally:
        await conn.close()


async def test_a_5xx_from_smtp_sink_bounces_and_suppresses_the_recipient(
    start_sender: Any, smtp_sink: Any, sender_settings: SenderSettings, workspace_id: str, read_topic: Any
) -> None:
    bouncing = await start_sender(smtp_url=f"smtp://127.0.0.1:{smtp_sink('-f', 'RCPT')}")
    deliveries = await read_topic(bouncing.topics.deliveries)
    gone = outbound_message(workspace_id)
    await produce(sender_settings, gone)
    await deliveries.until(lambda _: any(d.message_id == gone.message_id for d in deliveries.deliveries()))
    [bounce] = [d for d in deliveries.deliveries() if d.message_id == gone.message_id]
    assert (bounce.outcome, bounce.smtp_code) == ("bounced", 500)
    rows = await _db(
        sender_settings,
        "SELECT reason FROM suppressions WHERE workspace_id = $1 AND email_hash = $2",
        workspace_id,
        email_digest(gone.recipient),
    )
    assert [r["reason"] for r in rows] == ["hard_bounce"]


async def test_a_hang_up_during_data_is_deferred_with_a_durable_retry(
    start_sender: Any, smtp_sink: Any, sender_settings: SenderSettings, workspace_id: str, read_topic: Any
) -> None:
    sender = await start_sender(smtp_url=f"smtp://127.0.0.1:{smtp_sink('-q', 'DATA')}", retry_initial_s=3600)
    deliveries = await read_topic(sender.topics.deliveries)
    message = outbound_message(workspace_id)
    await produce(sender_settings, message)
    await deliveries.until(lambda _: any(d.message_id == message.message_id for d in deliveries.deliveries()))
    [deferred] = [d for d in deliveries.deliveries() if d.message_id == message.message_id]
    assert (deferred.outcome, deferred.reason, deferred.smtp_code) == ("deferred", "connection_lost", None)
    [retry] = await _db(
        sender_settings,
        "SELECT not_before, payload FROM send_retries WHERE message_id = $1",
        message.message_id,
    )
    assert retry["not_before"] > datetime.now(UTC) + timedelta(minutes=50)
    assert message.message_id.encode() in bytes(retry["payload"])  # the record itself, for the retry


def _write_key(folder: Path, name: str, key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey) -> None:
    (folder / name).write_bytes(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))


async def test_dkim_signatures_survive_a_real_postfix_and_opendkim_verifies_both(
    start_sender: Any,
    postfix: PrivatePostfix,
    sender_settings: SenderSettings,
    workspace_id: str,
    read_topic: Any,
    tmp_path: Path,
) -> None:
    if shutil.which("opendkim", path="/usr/sbin:/usr/bin") is None:
        pytest.skip("opendkim is not installed (Debian package opendkim; `make system-deps`)")
    keys_dir = tmp_path / "keys"
    keys_dir.mkdir()
    _write_key(
        keys_dir, "shop.example.r1.rsa.pem", rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )
    _write_key(keys_dir, "shop.example.e1.ed25519.pem", ed25519.Ed25519PrivateKey.generate())
    records = [load_key(p) for p in sorted(keys_dir.iterdir())]
    (tmp_path / "dns").write_text(
        "".join(f"{k.selector}._domainkey.{k.domain} {public_key_record(k)}\n" for k in records)
    )
    (tmp_path / "opendkim.conf").write_text(f"TestPublicKeys {tmp_path / 'dns'}\nSyslog no\nMode v\n")
    conn = await asyncpg.connect(sender_settings.database_url)
    try:
        await WorkspaceStore(conn).upsert(
            Workspace(workspace_id, "Shop", "Shop", "news@shop.example", "1 Main St", dkim_selector="r1,e1")
        )
    finally:
        await conn.close()

    sender = await start_sender(smtp_url=f"smtp://127.0.0.1:{postfix.port}", dkim_keys_dir=keys_dir)
    deliveries = await read_topic(sender.topics.deliveries)
    message = outbound_message(workspace_id)
    await produce(sender_settings, message)
    await deliveries.until(lambda _: any(d.outcome == "sent" for d in deliveries.deliveries()))
    stored = await _stored_by_postfix(postfix, f"<{message.message_id}@shop.example>")
    (tmp_path / "received.eml").write_bytes(stored)
    result = await asyncio.to_thread(
        subprocess.run,
        ["opendkim", "-x", str(tmp_path / "opendkim.conf"), "-vv", "-t", str(tmp_path / "received.eml")],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    output = result.stdout + result.stderr
    assert "(s=r1, d=shop.example, 2048-bit key) succeeded" in output, output
    assert "header.a=ed25519-sha256 header.s=e1" in output and output.count("dkim=pass") == 2, output


async def _stored_by_postfix(postfix: PrivatePostfix, message_id: str, timeout_s: float = 10) -> bytes:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while asyncio.get_running_loop().time() < deadline:
        for raw in postfix.delivered():
            if message_id.encode() in raw:
                return raw
        await asyncio.sleep(0.1)
    raise TimeoutError(f"Postfix did not store {message_id} within {timeout_s}s; see {postfix.log}")


async def test_an_unsubscribe_while_the_message_waits_for_tokens_stops_it(
    start_sender: Any, smtp: ScriptedSmtp, sender_settings: SenderSettings, workspace_id: str, read_topic: Any
) -> None:
    sender = await start_sender(rate_domain="0.5/1", suppression_recheck_s=0.2)
    deliveries = await read_topic(sender.topics.deliveries)
    domain = f"{workspace_id}.example"
    first = outbound_message(workspace_id, f"a@{domain}")
    rendered = outbound_message(workspace_id, f"b@{domain}")
    await produce(sender_settings, first, rendered)
    for _ in range(100):  # the first one takes the domain's only token; the second now waits ~2 s
        if smtp.count(f"<{first.message_id}@shop.example>"):
            break
        await asyncio.sleep(0.05)
    await _db(
        sender_settings,
        "INSERT INTO suppressions (workspace_id, email_hash, reason, source) VALUES ($1, $2, 'unsubscribed', 'link')",
        workspace_id,
        email_digest(rendered.recipient),
    )
    await deliveries.until(lambda _: len([d for d in deliveries.deliveries()]) >= 2)
    outcomes = {d.message_id: (d.outcome, d.reason) for d in deliveries.deliveries()}
    assert outcomes == {
        first.message_id: ("sent", "accepted"),
        rendered.message_id: ("suppressed", "unsubscribed"),
    }
    assert smtp.count(f"<{rendered.message_id}@shop.example>") == 0


async def test_caps_and_quiet_hours_from_the_workspace_policy(
    start_sender: Any, smtp: ScriptedSmtp, sender_settings: SenderSettings, workspace_id: str, read_topic: Any
) -> None:
    sender = await start_sender(policy_cache_s=0)  # the policy written below applies at once
    deliveries = await read_topic(sender.topics.deliveries)
    first = outbound_message(workspace_id, campaign="cart")
    again = outbound_message(workspace_id, first.recipient, campaign="browse")
    await produce(sender_settings, first)
    await deliveries.until(lambda _: len(deliveries.deliveries()) >= 1)
    await produce(sender_settings, again)  # the default caps: 1 per 16 h across campaigns
    await deliveries.until(lambda _: len(deliveries.deliveries()) >= 2)

    now = datetime.now(UTC)
    start, end = (now - timedelta(hours=1)).time(), (now + timedelta(hours=1)).time()
    await _db(
        sender_settings,
        "INSERT INTO sending_policies (workspace_id, quiet_start, quiet_end) VALUES ($1, $2, $3)",
        workspace_id,
        start.replace(second=0, microsecond=0),
        end.replace(second=0, microsecond=0),
    )
    night = outbound_message(workspace_id, recipient_timezone="UTC")
    await produce(sender_settings, night)
    await deliveries.until(lambda _: len(deliveries.deliveries()) >= 3)
    outcomes = [(d.message_id, d.outcome, d.reason) for d in deliveries.deliveries()]
    assert outcomes == [
        (first.message_id, "sent", "accepted"),
        (again.message_id, "capped", "recipient_cap"),
        (night.message_id, "deferred", "quiet_hours"),
    ]
    [retry] = await _db(
        sender_settings, "SELECT not_before FROM send_retries WHERE message_id = $1", night.message_id
    )
    assert timedelta(minutes=55) < retry["not_before"] - now < timedelta(minutes=61)
