"""A claim met in a rebalance, its claimant killed right after recording the 250 (48b78ba, atkhandoff).

The first sender (static member "zz-claimant", one SMTP connection) owns both partitions and is
mid-SMTP on the first message of partition 0: the relay holds that one message's DATA. A second
sender ("aa-owner") joins; the range assignor gives partition 0 to the member id that sorts
first, so partition 0 moves to it. It meets the first sender's claim, hands it off (the row's
`handed_off` mark, seen here in the send log), sends the rest and commits past them all. Then the
relay answers the held message: the first sender records 'sent' and is SIGKILLed there
(sender.after_outcome), before producing it. The claim lease is production's 600 s, so no sweep
rescues it: only the hand-off gets its outcome to the deliveries topic, within seconds.

It runs on a database of its own on the stack's server: every sender on a shared database
sweeps every claim older than its own lease (2 s in other e2e tests) and publishes every
handed-off row to its own deliveries topic, either of which would take the held message away.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiosmtpd.controller import Controller

from retarget.common.kafka import make_producer
from retarget.common.schemas import encode
from retarget.common.settings import CommonSettings
from retarget.common.testing import create_private_database, drop_private_database
from retarget.common.topics import Topics, recipient_key

from .conftest import Service, free_port, kill_all, start_service
from .mail import SENT, CountingSmtp, final_outcomes, outbound_message

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

MESSAGES = 8


class HoldingSmtp(CountingSmtp):
    """Holds the first DATA until `release` is set; answers every other one at once."""

    def __init__(self) -> None:
        super().__init__()
        self.holding = threading.Event()
        self.release = threading.Event()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if not self.holding.is_set():
            self.holding.set()
            await asyncio.to_thread(self.release.wait)
        return await super().handle_DATA(server, session, envelope)


async def _until(check: Any, timeout_s: float, what: str, service: Service) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not (found := await check()):
        assert loop.time() < deadline, f"{what}:\n{service.tail()}"
        await asyncio.sleep(0.1)
    return found


@pytest.mark.parametrize("owner_crash", [None, "stage.after_handle"])
async def test_a_claimant_killed_after_recording_a_claim_met_in_a_rebalance_loses_no_outcome(
    stack: dict[str, str], topic_prefix: str, workspace_id: str, tmp_path: Path, owner_crash: str | None
) -> None:
    """With `owner_crash`, the new owner is killed too, after its hand-off and before it
    produces or commits anything; a replacement (same static member) replays the partition."""
    started: list[Service] = []

    def launch(env: dict[str, str]) -> Service:
        folder = tmp_path / f"sender{len(started)}"
        folder.mkdir()
        started.append(start_service(stack, folder, "sender", "RETARGET_OPS_PORT", env))
        return started[-1]

    settings = CommonSettings.model_validate({"kafka_bootstrap": stack["RETARGET_KAFKA_BOOTSTRAP"]})
    topics = Topics(topic_prefix)
    messages = [outbound_message(workspace_id, n) for n in range(MESSAGES)]
    smtp, port = HoldingSmtp(), free_port()
    controller = Controller(smtp, hostname="127.0.0.1", port=port)
    controller.start()
    database = await create_private_database(stack["RETARGET_DATABASE_URL"], "handoff")
    conn = await asyncpg.connect(database)
    try:
        env = {
            "RETARGET_DATABASE_URL": database,
            "RETARGET_TOPIC_PREFIX": topic_prefix,
            "RETARGET_TOPIC_PARTITIONS": "2",
            "RETARGET_SMTP_URL": f"smtp://127.0.0.1:{port}",
            "RETARGET_SMTP_CONNECTIONS": "1",  # one claim in flight: the held one
            "RETARGET_SMTP_TIMEOUT_S": "120",
            "RETARGET_RATE_DOMAIN": "0/0",
            "RETARGET_FREQUENCY_CAPS": "",
            "RETARGET_SENDER_GROUP": f"sender-{topic_prefix}",
            "RETARGET_CLAIM_LEASE_S": "600",  # no sweep: only the hand-off can publish it
            "RETARGET_RETRY_POLL_S": "0.5",
        }
        claimant = launch(
            {**env, "RETARGET_SENDER_INSTANCE_ID": "zz-claimant", "RETARGET_CRASH_AT": "sender.after_outcome"}
        )
        await asyncio.to_thread(claimant.wait_healthy)
        producer = make_producer(settings)
        await producer.start()
        try:
            for m in messages:  # all on partition 0, the one that moves
                await producer.send(topics.outbound, encode(m), key=recipient_key(m.recipient), partition=0)
            await producer.flush()
        finally:
            await producer.stop()
        await asyncio.to_thread(smtp.holding.wait, 60)
        assert smtp.holding.is_set(), claimant.tail()
        [held] = await conn.fetch(
            "SELECT message_id FROM send_log WHERE workspace_id = $1 AND state = 'claimed'", workspace_id
        )
        crash = {"RETARGET_CRASH_AT": owner_crash} if owner_crash else {}
        owner = launch({**env, "RETARGET_SENDER_INSTANCE_ID": "aa-owner", **crash})
        if not owner_crash:  # one that crashes may die at its first batch, before /healthz answers
            await asyncio.to_thread(owner.wait_healthy)

        async def handed_off() -> bool:
            return bool(
                await conn.fetchval(
                    "SELECT handed_off FROM send_log WHERE message_id = $1", held["message_id"]
                )
            )

        await _until(handed_off, 60, "the new owner never handed the claim off", owner)
        if owner_crash:

            async def owner_died() -> bool:
                return owner.process.poll() is not None

            await _until(owner_died, 30, f"the new owner never reached {owner_crash}", owner)
            assert owner.process.returncode == -9, owner.tail()
            owner = launch({**env, "RETARGET_SENDER_INSTANCE_ID": "aa-owner"})
            await asyncio.to_thread(owner.wait_healthy)
        smtp.release.set()

        async def died() -> bool:
            return claimant.process.poll() is not None

        await _until(died, 30, "the claimant never reached sender.after_outcome", claimant)
        assert claimant.process.returncode == -9, claimant.tail()
        outcomes = await final_outcomes(
            settings, topics.deliveries, {m.message_id for m in messages}, timeout_s=60
        )
        assert owner.process.poll() is None, owner.tail()
    finally:
        smtp.release.set()
        kill_all(started)
        controller.stop()
        await conn.close()
        await drop_private_database(stack["RETARGET_DATABASE_URL"], database)

    smtp.assert_none_twice()
    assert outcomes.get(held["message_id"]) == {SENT}, "the held message's outcome was lost"
    assert outcomes == {m.message_id: {SENT} for m in messages}
