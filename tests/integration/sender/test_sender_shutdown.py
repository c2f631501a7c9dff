"""SIGTERM is bounded by RETARGET_SHUTDOWN_GRACE_S, and what was not finished is replayed."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import asyncpg
import pytest

from retarget.sender.bootstrap import bootstrap
from retarget.sender.settings import SenderSettings

from .conftest import ScriptedSmtp, outbound_message, produce

pytestmark = pytest.mark.integration


async def _stop_within(sender: Any, task: asyncio.Task[None], stop: asyncio.Event) -> float:
    started = time.monotonic()
    stop.set()
    await asyncio.wait_for(task, 15)
    await sender.close()
    return time.monotonic() - started


async def test_a_relay_that_hangs_does_not_hold_shutdown_past_the_grace(
    smtp_sink: Any, sender_settings: SenderSettings, workspace_id: str
) -> None:
    port = smtp_sink("-w", "30")  # answers DATA only after 30 s
    settings = SenderSettings.model_validate(
        {**sender_settings.model_dump(), "smtp_url": f"smtp://127.0.0.1:{port}", "shutdown_grace_s": 1.0}
    )
    sender = bootstrap(settings)
    await sender.start()
    stop = asyncio.Event()
    task = asyncio.create_task(sender.run(stop))
    message = outbound_message(workspace_id)
    await produce(settings, message)
    await _until_state(settings, message.message_id, "claimed")
    assert await _stop_within(sender, task, stop) < 3


async def test_messages_waiting_for_tokens_stop_at_once_and_are_sent_after_restart(
    smtp: ScriptedSmtp, sender_settings: SenderSettings, workspace_id: str
) -> None:
    settings = SenderSettings.model_validate({**sender_settings.model_dump(), "rate_domain": "0.1/1"})
    sender = bootstrap(settings)
    await sender.start()
    stop = asyncio.Event()
    task = asyncio.create_task(sender.run(stop))
    domain = f"{workspace_id}.example"
    first, waiting = (
        outbound_message(workspace_id, f"a@{domain}"),
        outbound_message(workspace_id, f"b@{domain}"),
    )
    await produce(settings, first, waiting)
    await _until_state(settings, first.message_id, "sent")
    assert await _stop_within(sender, task, stop) < 2  # not the 10 s the token would take
    assert await _state(settings, waiting.message_id) is None  # never claimed: free to be sent later

    again = bootstrap(SenderSettings.model_validate({**sender_settings.model_dump()}))  # no rate limit now
    await again.start()
    stop = asyncio.Event()
    task = asyncio.create_task(again.run(stop))
    await _until_state(settings, waiting.message_id, "sent")
    await _stop_within(again, task, stop)
    assert smtp.count(f"<{first.message_id}@shop.example>") == 1  # the replayed batch sent it only once
    assert smtp.count(f"<{waiting.message_id}@shop.example>") == 1


async def _state(settings: SenderSettings, message_id: str) -> str | None:
    conn = await asyncpg.connect(settings.database_url)
    try:
        return await conn.fetchval("SELECT state FROM send_log WHERE message_id = $1", message_id)  # type: ignore[no-any-return]
    finally:
        await conn.close()


async def _until_state(settings: SenderSettings, message_id: str, state: str, timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while await _state(settings, message_id) != state:
        assert time.monotonic() < deadline, f"{message_id} never reached {state}"
        await asyncio.sleep(0.05)
