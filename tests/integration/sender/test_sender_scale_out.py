"""Two real senders in one consumer group on a 6-partition outbound topic.

- their limit shares follow the assignment and sum to 1 after every rebalance (a member joins,
  a member leaves), and /readyz shows each one's partitions and share;
- the upgrade from domain keys: a message still on the topic under its old key (the recipient's
  domain) and again under the new one (the address digest) — two partitions, two senders at
  once — reaches the SMTP server once (the send log dedupes by message id, whatever the key).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from aiokafka.partitioner import DefaultPartitioner

from retarget.common.ops import start_ops_server
from retarget.common.schemas import encode
from retarget.common.topics import Topics, domain_key, recipient_key
from retarget.devstack.child import free_port
from retarget.sender.bootstrap import Sender, bootstrap
from retarget.sender.settings import SenderSettings

from .conftest import ScriptedSmtp, outbound_message

PARTITIONS = 6
pytestmark = pytest.mark.timeout(240)


async def _eventually(check: Callable[[], bool], what: str, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"not after {timeout_s}s: {what}")
        await asyncio.sleep(0.2)


def _owned(sender: Sender) -> list[int]:
    assert sender.shares is not None
    return sender.shares.partitions


def _split_settled(*senders: Sender) -> bool:
    owned = [p for s in senders for p in _owned(s)]
    return sorted(owned) == list(range(PARTITIONS))


def _share_sum(*senders: Sender) -> float:
    return sum(s.shares.share.fraction for s in senders if s.shares is not None)


async def test_shares_follow_the_assignment_and_sum_to_one_after_each_rebalance(
    start_sender: Any, sender_settings: SenderSettings
) -> None:
    first = await start_sender(topic_partitions=PARTITIONS)
    await _eventually(lambda: _split_settled(first), "the first sender owns every partition")
    assert _share_sum(first) == 1.0

    second = bootstrap(
        SenderSettings.model_validate({**sender_settings.model_dump(), "topic_partitions": PARTITIONS})
    )
    await second.start()
    leave = asyncio.Event()
    running = asyncio.create_task(second.run(leave))
    await _eventually(
        lambda: _split_settled(first, second) and bool(_owned(first)) and bool(_owned(second)),
        "two senders split the partitions",
    )
    assert _share_sum(first, second) == pytest.approx(1.0)
    assert first.shares is not None and first.shares.share.fraction == len(_owned(first)) / PARTITIONS

    port = free_port()
    ops = await start_ops_server("127.0.0.1", port, second.ready, details=second.assignment)
    try:
        async with httpx.AsyncClient() as client:
            shown = (await client.get(f"http://127.0.0.1:{port}/readyz", timeout=10)).json()
    finally:
        await ops.cleanup()
    assert shown["outbound_partitions"] == _owned(second)
    assert shown["outbound_partitions_total"] == PARTITIONS
    assert shown["limit_share"] == pytest.approx(len(_owned(second)) / PARTITIONS, abs=1e-4)

    leave.set()  # the second leaves the group (SIGTERM's path)
    await asyncio.wait_for(running, 60)
    await second.close()
    await _eventually(lambda: _split_settled(first), "the first sender owns every partition again")
    assert _share_sum(first) == 1.0


def _partition(key: bytes) -> int:
    every = list(range(PARTITIONS))
    return int(DefaultPartitioner()(key, every, every))


async def test_a_message_under_its_old_domain_key_and_its_new_key_is_delivered_once(
    start_sender: Any, sender_settings: SenderSettings, smtp: ScriptedSmtp, workspace_id: str
) -> None:
    first = await start_sender(topic_partitions=PARTITIONS)
    second = await start_sender(topic_partitions=PARTITIONS)
    await _eventually(
        lambda: _split_settled(first, second) and bool(_owned(first)) and bool(_owned(second)),
        "two senders split the partitions",
    )
    # recipients whose two keys land on partitions of different senders: two processes race
    old_owner = {p: s for s in (first, second) for p in _owned(s)}
    messages = []
    n = 0
    while len(messages) < 12:
        n += 1
        recipient = f"r{n}-{workspace_id}@upgrade.example"
        old, new = _partition(domain_key(recipient)), _partition(recipient_key(recipient))
        if old_owner[old] is not old_owner[new]:
            messages.append(outbound_message(workspace_id, recipient))
    topic = Topics(sender_settings.topic_prefix).outbound
    producer = first.producer  # started, acks=all
    for message in messages:  # before the upgrade, then the composer replays them after it
        await producer.send_and_wait(topic, encode(message), key=domain_key(message.recipient))
    for message in messages:
        await producer.send_and_wait(topic, encode(message), key=recipient_key(message.recipient))

    wanted = {f"<{m.message_id}@shop.example>" for m in messages}
    await _eventually(lambda: wanted <= {mid for _, mid in smtp.received}, "every message delivered")
    await asyncio.sleep(3)  # a late second copy would arrive now
    twice = {mid: smtp.count(mid) for mid in wanted if smtp.count(mid) != 1}
    assert not twice, f"delivered more than once: {twice}"
