"""The reputation guard on the real stack: the sender (real Kafka, PostgreSQL) delivers to the
devstack's SMTP capture, complaints (ARF) and bounces (DSN) come back through ingest's real
mailbox over SMTP, the workspace pauses, its mail is held while another workspace's goes on,
and the CLI's resume sends the held mail exactly once."""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from email import message_from_bytes
from pathlib import Path
from typing import Any

import aiosmtplib
import asyncpg
import httpx
import pytest
from aiosmtpd.controller import Controller
from prometheus_client import REGISTRY
from pydantic import SecretStr

from retarget.common.bounces import bounce_address
from retarget.common.reputation_settings import ReputationSettings
from retarget.common.schemas import OutboundMessage
from retarget.common.testing import delivery_status_report, feedback_report
from retarget.devstack.smtp_capture import CaptureHandler
from retarget.ingest.mailbox_server import serve
from retarget.ingest.settings import IngestSettings
from retarget.sender.bootstrap import Sender, bootstrap
from retarget.sender.local_mta import free_port
from retarget.sender.settings import SenderSettings

from .conftest import outbound_message, produce

pytestmark = pytest.mark.integration

SECRET = secrets.token_hex(32)
FBL = "fbl@shop.example"
# Tiny volumes for a test: judged from 4 sent; 1 complaint in 4 (25%) or 6 (17%) pauses, 1 hard bounce in
# 4 does not, 2 in 4 do. Held mail is not due again within the test (resume makes it due).
GUARD = ReputationSettings(
    min_sent=4,
    complaint_warn=0.1,
    complaint_pause=0.15,
    hard_bounce_warn=0.3,
    hard_bounce_pause=0.5,
    check_s=0.3,
    hold_s=3600,
)


@pytest.fixture
def capture(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """The devstack's SMTP capture (its handler: `bounce*` → 550 5.1.1) on a free port."""
    port = free_port()
    controller = Controller(CaptureHandler(tmp_path), hostname="127.0.0.1", port=port)
    controller.start()
    yield port, tmp_path
    controller.stop()


@pytest.fixture
def other_workspace() -> str:
    return f"ws-{secrets.token_hex(4)}"


@pytest.fixture
async def guarded_sender(
    sender_settings: SenderSettings, capture: tuple[int, Path], workspace_id: str, other_workspace: str
) -> AsyncIterator[Sender]:
    settings = sender_settings.model_copy(update={"smtp_url": SecretStr(f"smtp://127.0.0.1:{capture[0]}")})
    sender = bootstrap(settings, reputation=GUARD)
    await sender.start()
    stop = asyncio.Event()
    task = asyncio.create_task(sender.run(stop))
    yield sender
    stop.set()
    await asyncio.wait_for(task, 30)
    await sender.close()
    conn = await asyncpg.connect(settings.database_url)
    try:
        for ws in (workspace_id, other_workspace):
            await conn.execute("DELETE FROM reputation_counts WHERE workspace_id = $1", ws)
            await conn.execute("DELETE FROM workspace_pauses WHERE workspace_id = $1", ws)
            await conn.execute("DELETE FROM send_log WHERE workspace_id = $1", ws)
            await conn.execute("DELETE FROM suppressions WHERE workspace_id = $1", ws)
    finally:
        await conn.close()


@pytest.fixture
async def mailbox(stack: dict[str, str], topic_prefix: str) -> AsyncIterator[dict[str, Any]]:
    """Ingest's mailbox server (real PostgreSQL and Kafka) with the link secret the VERP addresses use."""
    settings = IngestSettings(
        topic_prefix=topic_prefix,
        link_secret=SecretStr(SECRET),
        mailbox_port=free_port(),
        mailbox_ops_port=free_port(),
        feedback_loop_address=FBL,
    )
    stop = asyncio.Event()
    server = asyncio.create_task(serve(stop, settings))
    try:
        async with httpx.AsyncClient() as client:
            await until(lambda: _ready(client, settings.mailbox_ops_port, server), "the mailbox is ready")
        yield {"hostname": "127.0.0.1", "port": settings.mailbox_port, "timeout": 20}
    finally:
        stop.set()
        await asyncio.wait_for(server, 30)


async def _ready(client: httpx.AsyncClient, port: int, server: asyncio.Task[None]) -> bool:
    if server.done():
        server.result()
    try:
        return (await client.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200
    except httpx.TransportError:
        return False


async def until(check: Callable[[], Awaitable[bool]], what: str, timeout_s: float = 90) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not await check():
        if loop.time() > deadline:
            raise TimeoutError(f"not within {timeout_s}s: {what}")
        await asyncio.sleep(0.2)


def message(workspace_id: str, local: str | None = None) -> OutboundMessage:
    """An email whose envelope sender is its VERP address (as the composer writes it)."""
    mid = f"m-{secrets.token_hex(12)}"
    recipient = f"{local or 'r-' + secrets.token_hex(5)}@example.com"  # one domain: one partition
    verp = bounce_address(mid, "shop.example", SECRET.encode())
    assert verp is not None
    return outbound_message(workspace_id, recipient, message_id=mid, mail_from=verp)


def captured(folder: Path, message_id: str) -> int:
    """How many times the capture received the message."""
    wanted = f"<{message_id}@shop.example>"
    return sum(1 for p in folder.glob("*.eml") if message_from_bytes(p.read_bytes())["Message-ID"] == wanted)


async def states(db: str, *messages: OutboundMessage) -> dict[str, tuple[str, str | None]]:
    conn = await asyncpg.connect(db)
    try:
        rows = await conn.fetch(
            "SELECT message_id, state, last_reason FROM send_log WHERE message_id = ANY($1)",
            [m.message_id for m in messages],
        )
    finally:
        await conn.close()
    return {r["message_id"]: (r["state"], r["last_reason"]) for r in rows}


async def pause_row(db: str, workspace_id: str) -> asyncpg.Record | None:
    conn = await asyncpg.connect(db)
    try:
        return await conn.fetchrow("SELECT * FROM workspace_pauses WHERE workspace_id = $1", workspace_id)
    finally:
        await conn.close()


async def counted(db: str, workspace_id: str) -> tuple[int, int, int]:
    """The workspace's reputation counts: sent, hard bounces, complaints (every domain and hour)."""
    conn = await asyncpg.connect(db)
    try:
        row = await conn.fetchrow(
            "SELECT coalesce(sum(sent), 0), coalesce(sum(hard_bounces), 0), coalesce(sum(complaints), 0) "
            "FROM reputation_counts WHERE workspace_id = $1 AND domain = 'shop.example'",
            workspace_id,
        )
    finally:
        await conn.close()
    assert row is not None
    return int(row[0]), int(row[1]), int(row[2])


async def report(smtp: dict[str, Any], raw: bytes, recipient: str) -> str:
    """As a provider's feedback loop or a relay sends it: from the null sender."""
    async with aiosmtplib.SMTP(**smtp) as client:
        _, answer = await client.sendmail("", [recipient], raw)
    return answer


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "retarget.cli.main", *args],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=120,
    )


async def sent_once(db: str, folder: Path, messages: list[OutboundMessage]) -> None:
    """Wait until each message is sent, then check it was accepted once, in one SMTP attempt.

    A sender older than migration 018 (another checkout's) on the shared test database takes
    every deployment's retries: it may lease a released message before ours does and deliver it
    to its own relay. Either way the send log shows one attempt, and our capture has it at most once.
    """

    async def all_sent() -> bool:
        return set((await states(db, *messages)).values()) == {("sent", "accepted")}

    await until(all_sent, "the held mail is sent after the resume", timeout_s=120)
    conn = await asyncpg.connect(db)
    try:
        attempts = await conn.fetch(
            "SELECT attempts FROM send_log WHERE message_id = ANY($1)", [m.message_id for m in messages]
        )
    finally:
        await conn.close()
    assert [r["attempts"] for r in attempts] == [1] * len(messages)
    assert all(captured(folder, m.message_id) <= 1 for m in messages)


def paused_gauge(workspace_id: str) -> float | None:
    return REGISTRY.get_sample_value("retarget_workspace_paused", {"workspace": workspace_id})


async def send_all_and_wait(
    settings: SenderSettings, *messages: OutboundMessage, state: str = "sent"
) -> None:
    await produce(settings, *messages)

    async def done() -> bool:
        found = await states(settings.database_url, *messages)
        return len(found) == len(messages) and all(s != "claimed" for s, _ in found.values())

    await until(done, f"{len(messages)} outcomes recorded")


async def test_a_complaint_through_the_mailbox_pauses_the_workspace_and_a_resume_sends_its_held_mail_once(
    guarded_sender: Sender,
    sender_settings: SenderSettings,
    mailbox: dict[str, Any],
    capture: tuple[int, Path],
    workspace_id: str,
    other_workspace: str,
):
    db, folder = sender_settings.database_url, capture[1]
    first = [message(workspace_id) for _ in range(4)]
    await send_all_and_wait(sender_settings, *first)
    assert all(captured(folder, m.message_id) == 1 for m in first)
    assert (await pause_row(db, workspace_id)) is None  # 4 sent, nothing reported: fine

    complaint = feedback_report(first[0].message_id, return_path=first[0].mail_from)
    assert (await report(mailbox, complaint, FBL)).startswith("2.0.0")
    assert (await report(mailbox, complaint, FBL)).startswith("2.0.0")  # reported twice: counted once
    assert await counted(db, workspace_id) == (4, 0, 1)

    async def paused() -> bool:
        row = await pause_row(db, workspace_id)
        return row is not None and row["paused"]

    await until(paused, "the workspace is paused")
    row = await pause_row(db, workspace_id)
    assert row is not None and row["reason"] == "complaint_rate"
    assert row["detail"] == "complaint rate 25.00% (1 of 4 sent, all domains)"
    await until(lambda: _true(paused_gauge(workspace_id) == 1), "the gauge shows the pause")

    held = [message(workspace_id) for _ in range(2)]
    others = [message(other_workspace) for _ in range(2)]
    await send_all_and_wait(sender_settings, *held, *others)  # one partition: the others come after
    assert await states(db, *held) == {m.message_id: ("deferred", "paused") for m in held}
    assert all(captured(folder, m.message_id) == 1 for m in others)  # not stalled behind the pause
    assert all(captured(folder, m.message_id) == 0 for m in held)

    show = cli("workspace", "reputation", workspace_id)
    assert show.returncode == 0, show.stdout + show.stderr
    assert "PAUSED" in show.stdout and "2 messages held" in show.stdout

    resumed = cli("workspace", "resume", workspace_id, "--note", "list cleaned")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr

    await sent_once(db, folder, held)
    assert all(captured(folder, m.message_id) == 1 for m in first)  # nothing sent twice

    await guarded_sender.guard.check()  # type: ignore[union-attr]  # judged again: the old complaint is not
    row = await pause_row(db, workspace_id)
    assert row is not None and not row["paused"] and row["counts_from"] is not None
    assert paused_gauge(workspace_id) is None
    again = cli("workspace", "resume", workspace_id)
    assert again.returncode == 1 and "not paused" in again.stdout


async def test_hard_bounces_at_smtp_and_by_dsn_through_the_mailbox_add_up_to_a_pause(
    guarded_sender: Sender,
    sender_settings: SenderSettings,
    mailbox: dict[str, Any],
    capture: tuple[int, Path],
    workspace_id: str,
):
    db = sender_settings.database_url
    sent = [message(workspace_id) for _ in range(3)]
    refused = message(workspace_id, local=f"bounce-{secrets.token_hex(4)}")  # the capture: 550 5.1.1
    await send_all_and_wait(sender_settings, *sent, refused)
    assert (await states(db, refused))[refused.message_id] == ("bounced", "hard_bounce")
    await guarded_sender.guard.check()  # type: ignore[union-attr]
    assert (await pause_row(db, workspace_id)) is None  # 1 hard bounce in 4: under 50%

    dsn = delivery_status_report(sent[0].message_id, to=sent[0].mail_from)
    assert (await report(mailbox, dsn, sent[0].mail_from)).startswith("2.0.0")
    assert (await report(mailbox, dsn, sent[0].mail_from)).startswith("2.0.0")  # a relay's retry: once
    assert await counted(db, workspace_id) == (
        4,
        2,
        0,
    )  # sent (the refused one too), hard bounces, complaints

    async def paused() -> bool:
        row = await pause_row(db, workspace_id)
        return row is not None and row["paused"]

    await until(paused, "the workspace is paused")
    row = await pause_row(db, workspace_id)
    assert row is not None and row["reason"] == "hard_bounce_rate"
    assert row["detail"] == "hard-bounce rate 50.00% (2 of 4 sent, all domains)"


async def _true(value: bool) -> bool:
    return value


async def start_sender_process(settings: SenderSettings, smtp_port: int) -> asyncio.subprocess.Process:
    """`python -m retarget.sender` on the test's topics, delivering to the capture."""
    env = os.environ | {
        "RETARGET_TOPIC_PREFIX": settings.topic_prefix,
        "RETARGET_TOPIC_PARTITIONS": str(settings.topic_partitions),
        "RETARGET_SENDER_GROUP": settings.sender_group,
        "RETARGET_SMTP_URL": f"smtp://127.0.0.1:{smtp_port}",
        "RETARGET_OPS_PORT": str(free_port()),
        "RETARGET_RETRY_POLL_S": "0.2",
        "RETARGET_REPUTATION_CHECK_S": "0.3",
        "RETARGET_REPUTATION_HOLD_S": "3600",
    }
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "retarget.sender", env=env, stderr=asyncio.subprocess.DEVNULL
    )


async def test_a_sender_killed_while_its_workspace_is_paused_loses_nothing(
    sender_settings: SenderSettings, capture: tuple[int, Path], workspace_id: str
):
    db, folder = sender_settings.database_url, capture[1]
    created = cli(
        "workspace", "create", "--id", workspace_id, "--name", "Shop", "--from-email", "news@shop.example",
        "--from-name", "Shop", "--postal-address", "1 Main St",
    )  # fmt: skip
    assert created.returncode == 0, created.stdout + created.stderr
    paused = cli("workspace", "pause", workspace_id, "--reason", "bought list imported")
    assert paused.returncode == 0 and "paused" in paused.stdout, paused.stdout + paused.stderr

    first = await start_sender_process(sender_settings, capture[0])
    try:
        held = [message(workspace_id) for _ in range(3)]
        await send_all_and_wait(sender_settings, *held)
        assert await states(db, *held) == {m.message_id: ("deferred", "paused") for m in held}
    finally:
        first.kill()  # SIGKILL: no graceful stop
        await first.wait()
    assert all(captured(folder, m.message_id) == 0 for m in held)

    second = await start_sender_process(sender_settings, capture[0])
    try:
        resumed = cli("workspace", "resume", workspace_id)
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        await sent_once(db, folder, held)
    finally:
        second.terminate()
        await second.wait()
        conn = await asyncpg.connect(db)
        try:
            await conn.execute("DELETE FROM workspace_pauses WHERE workspace_id = $1", workspace_id)
            await conn.execute("DELETE FROM reputation_counts WHERE workspace_id = $1", workspace_id)
        finally:
            await conn.close()
