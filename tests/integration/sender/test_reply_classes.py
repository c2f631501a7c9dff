"""Reply classes on the real stack: the sender (real Kafka, PostgreSQL) against the local SMTP
capture's scripted refusals and against a real Postfix refusing at RCPT — a hard bounce is
suppressed, a policy refusal is not (and is counted), throttling is deferred and slows the domain."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiosmtpd.controller import Controller
from prometheus_client import REGISTRY

from retarget.common.identity import email_digest
from retarget.devstack.smtp_capture import CaptureHandler
from retarget.sender.local_mta import PrivatePostfix, free_port
from retarget.sender.settings import SenderSettings

from .conftest import outbound_message, produce

pytestmark = pytest.mark.integration

DOMAIN = "capture.example"  # given its own rate, so the gauge names it


@pytest.fixture
def capture(tmp_path: Path) -> Iterator[int]:
    """The devstack's SMTP capture (its handler, this branch's code) on a free port."""
    port = free_port()
    controller = Controller(CaptureHandler(tmp_path), hostname="127.0.0.1", port=port)
    controller.start()
    yield port
    controller.stop()


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def _final(reader: Any, message_ids: set[str], timeout_s: float = 60) -> dict[str, tuple[str, str]]:
    """The first outcome published for each message id."""

    def outcomes() -> dict[str, tuple[str, str]]:
        found: dict[str, tuple[str, str]] = {}
        for d in reader.deliveries():
            if d.message_id in message_ids:
                found.setdefault(d.message_id, (d.outcome, d.reason))
        return found

    await reader.until(lambda _: len(outcomes()) == len(message_ids), timeout_s)
    return outcomes()


async def _suppressed(settings: SenderSettings, workspace_id: str) -> set[str]:
    conn = await asyncpg.connect(settings.database_url)
    try:
        rows = await conn.fetch("SELECT email_hash FROM suppressions WHERE workspace_id = $1", workspace_id)
    finally:
        await conn.close()
    return {r["email_hash"] for r in rows}


async def _each_class(
    smtp_port: int,
    start_sender: Any,
    sender_settings: SenderSettings,
    workspace_id: str,
    read_topic: Any,
    recipients: dict[str, str],
) -> tuple[dict[str, tuple[str, str]], dict[str, str]]:
    sender = await start_sender(
        smtp_url=f"smtp://127.0.0.1:{smtp_port}",
        rate_domains=f"{DOMAIN}=40/40",
        retry_initial_s=600,  # the throttled message waits in the retry queue, not retried here
    )
    deliveries = await read_topic(sender.topics.deliveries)
    messages = {kind: outbound_message(workspace_id, recipient) for kind, recipient in recipients.items()}
    await produce(sender_settings, *messages.values())
    outcomes = await _final(deliveries, {m.message_id for m in messages.values()})
    return {kind: outcomes[m.message_id] for kind, m in messages.items()}, {
        kind: email_digest(m.recipient) for kind, m in messages.items()
    }


async def test_the_capture_shows_each_reply_class(
    capture: int, start_sender: Any, sender_settings: SenderSettings, workspace_id: str, read_topic: Any
) -> None:
    refused_before = _sample("retarget_sender_policy_refusals_total", workspace=workspace_id, domain=DOMAIN)
    outcomes, hashes = await _each_class(
        capture,
        start_sender,
        sender_settings,
        workspace_id,
        read_topic,
        {
            "hard": f"bounce-1@{DOMAIN}",
            "policy": f"blocked-1@{DOMAIN}",
            "throttle": f"throttled-1@{DOMAIN}",
            "fine": f"fine-1@{DOMAIN}",
        },
    )
    assert outcomes == {
        "hard": ("bounced", "hard_bounce"),
        "policy": ("failed", "policy_refusal"),
        "throttle": ("deferred", "throttled"),
        "fine": ("sent", "accepted"),
    }
    suppressed = await _suppressed(sender_settings, workspace_id)
    assert hashes["hard"] in suppressed
    assert hashes["policy"] not in suppressed and hashes["throttle"] not in suppressed
    assert (
        _sample("retarget_sender_policy_refusals_total", workspace=workspace_id, domain=DOMAIN)
        == refused_before + 1
    )
    # halved (40 → 20 per second) once, or twice when the two replies came more than the cut gap apart
    assert _sample("retarget_sender_domain_rate_per_s", domain=DOMAIN) in (20, 10)


async def test_a_real_postfix_refusing_at_rcpt(
    start_sender: Any, sender_settings: SenderSettings, workspace_id: str, read_topic: Any
) -> None:
    try:
        postfix = PrivatePostfix(
            domains=(DOMAIN,),
            refusals={
                f"gone@{DOMAIN}": "550 5.1.1 User unknown",
                f"listed@{DOMAIN}": "554 5.7.1 Service unavailable; client host blocked using zen.spamhaus.org",
                f"busy@{DOMAIN}": "450 4.7.0 Too many connections, slow down",
            },
        )
    except (FileNotFoundError, PermissionError) as exc:
        pytest.skip(str(exc))
    await asyncio.to_thread(postfix.start)
    try:
        outcomes, hashes = await _each_class(
            postfix.port,
            start_sender,
            sender_settings,
            workspace_id,
            read_topic,
            {"hard": f"gone@{DOMAIN}", "policy": f"listed@{DOMAIN}", "throttle": f"busy@{DOMAIN}"},
        )
    finally:
        await asyncio.to_thread(postfix.stop)
    assert outcomes == {
        "hard": ("bounced", "hard_bounce"),
        "policy": ("failed", "policy_refusal"),
        "throttle": ("deferred", "throttled"),
    }
    suppressed = await _suppressed(sender_settings, workspace_id)
    assert hashes["hard"] in suppressed and hashes["policy"] not in suppressed
