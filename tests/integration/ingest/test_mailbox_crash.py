"""The mailbox killed (SIGKILL) after it wrote an unsubscribe or a report's suppression but
before its answer: the sending server got no 250, so it sends the mail again, and the second
delivery is answered 250 with everything recorded exactly once (one suppression, one
Unsubscribed event, the entry bounced)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiosmtplib
import httpx
import pytest

from retarget.common.bounces import bounce_address
from retarget.common.faults import CRASH_ENV
from retarget.common.testing import delivery_status_report
from retarget.ingest.settings import IngestSettings

from .conftest import EventReader, Tenant, free_port, suppression_of
from .test_ingest_mailbox_smtp import (
    ADDRESS,
    SECRET,
    mail,
    send_log_state,
    send_raw,
    sent_entry,
    unsubscribe_token,
)

pytestmark = pytest.mark.integration


def start(env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "retarget.ingest.mailbox_server"], env=env, stderr=subprocess.DEVNULL
    )


@pytest.fixture
def mailbox_process(ingest_settings: IngestSettings) -> Callable[..., Any]:
    """mailbox_process(crash_at): the mailbox as a process of its own (python -m …)."""
    port = free_port()

    @asynccontextmanager
    async def run(
        crash_at: str | None = None,
    ) -> AsyncIterator[tuple[subprocess.Popen[bytes], dict[str, Any]]]:
        ops = free_port()
        env = {k: v for k, v in os.environ.items() if k != CRASH_ENV} | {
            "RETARGET_TOPIC_PREFIX": ingest_settings.topic_prefix,
            "RETARGET_KAFKA_BOOTSTRAP": ingest_settings.kafka_bootstrap,
            "RETARGET_DATABASE_URL": ingest_settings.database_url,
            "RETARGET_LINK_SECRET": SECRET,
            "RETARGET_MAILBOX_PORT": str(port),
            "RETARGET_MAILBOX_OPS_PORT": str(ops),
        }
        if crash_at:
            env[CRASH_ENV] = crash_at
        proc = start(env)
        try:
            async with httpx.AsyncClient() as client:
                for _ in range(300):
                    assert proc.poll() is None, "the mailbox exited at startup"
                    try:
                        if (await client.get(f"http://127.0.0.1:{ops}/readyz")).status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    await asyncio.sleep(0.1)
            yield proc, {"hostname": "127.0.0.1", "port": port, "timeout": 20}
        finally:
            if proc.poll() is None:
                proc.terminate()
            await asyncio.to_thread(proc.wait, 30)

    return run


async def died(proc: subprocess.Popen[bytes]) -> int:
    return await asyncio.to_thread(proc.wait, 30)


async def test_an_unsubscribe_by_mail_killed_before_its_250_is_recorded_once_on_the_retry(
    mailbox_process: Callable[..., Any], tenant: Tenant, read_events: EventReader
) -> None:
    token = unsubscribe_token(tenant)
    async with mailbox_process("ingest.after_unsubscribe_write") as (proc, smtp):
        with pytest.raises(aiosmtplib.SMTPException):  # the connection dies: no answer
            await aiosmtplib.send(mail(f"unsubscribe {token}"), **smtp)
        assert await died(proc) == -9
    row = await suppression_of(tenant.workspace_id, ADDRESS)
    assert row is not None  # written before the kill

    async with mailbox_process() as (_, smtp):  # the sending server tries again
        _, answer = await aiosmtplib.send(mail(f"unsubscribe {token}"), **smtp)
    assert answer.startswith("2.0.0 Unsubscribed")
    events = await read_events(1)
    assert [e.event for _, e in events] == ["Unsubscribed"]
    with pytest.raises(TimeoutError):  # and only one
        await read_events(2, timeout_s=5)


async def test_a_bounce_killed_before_its_250_is_recorded_once_on_the_retry(
    mailbox_process: Callable[..., Any], tenant: Tenant
) -> None:
    message_id = await sent_entry(tenant.workspace_id, ADDRESS)
    verp = bounce_address(message_id, "shop.example", SECRET.encode())
    assert verp is not None
    report = delivery_status_report(message_id, to=verp)
    async with mailbox_process("ingest.mailbox.after_report_write") as (proc, smtp):
        with pytest.raises(aiosmtplib.SMTPException):
            await send_raw(smtp, report, verp)
        assert await died(proc) == -9
    assert await send_log_state(message_id) == "bounced"  # committed with the suppression

    async with mailbox_process() as (_, smtp):
        assert (await send_raw(smtp, report, verp)).startswith("2.0.0")
    row = await suppression_of(tenant.workspace_id, ADDRESS)
    assert row is not None and (row["reason"], row["source"]) == ("hard_bounce", "dsn")
    assert await send_log_state(message_id) == "bounced"
