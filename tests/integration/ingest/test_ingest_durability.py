"""Ingest never loses an accepted event: the broker is killed while requests are in flight.

A private broker (the shared one must stay up) is SIGKILLed while clients keep posting
events with unique messageIds, then restarted on the same data folder. The invariant, for
every request: it got a 200 and its event is in Kafka after the restart, or it got
something else (503, or no answer at all). Non-200 events may or may not be in Kafka (a
timed-out send can still land); that is what the messageId is for.

Driven by counts, never by the machine's speed: the broker dies after the Nth 200, comes
back after the Nth refusal, and the clients stop after the Nth 200 since; the deadlines only
turn a hang into a failure.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import msgspec
import pytest

from retarget.common.schemas import TrackedEvent
from retarget.common.topics import Topics
from retarget.devstack.private_kafka import PrivateKafka
from retarget.devstack.topic_reader import read_to_end
from retarget.ingest.settings import IngestSettings

from .conftest import Tenant, free_port, serving

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

CLIENTS = 16
ACCEPTED_BEFORE_KILL = 100  # the broker dies once this many requests got their 200
REFUSED_WHILE_DOWN = CLIENTS  # ...comes back once this many were refused meanwhile
ACCEPTED_AFTER_RESTART = 50  # ...and the clients stop once this many more got their 200
DEADLINE_S = 60.0  # per phase: a bound to fail instead of hanging, not a speed expectation


@pytest.fixture
async def broker(tmp_path: Path, stack: dict[str, str]) -> AsyncIterator[PrivateKafka]:
    port = free_port()
    controller_port = free_port()
    while controller_port == port:  # two asks of the OS for a free port may get the same one
        controller_port = free_port()
    kafka = PrivateKafka(tmp_path / "kafka", port=port, controller_port=controller_port)
    kafka.start()
    try:
        await kafka.wait_ready()
        yield kafka
    finally:
        kafka.stop(timeout_s=10)


@dataclass
class Traffic:
    """What every request got, by messageId: its status, or the error when there was no answer."""

    outcomes: dict[str, int | str] = field(default_factory=dict)
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    phase: str = "before kill"  # then "broker down", then "restarted" (its metadata answered)
    counts: Counter[tuple[str, bool]] = field(default_factory=Counter)  # (phase, accepted)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def post_until_stopped(self, client: httpx.AsyncClient, writer: int) -> None:
        while not self.stop.is_set():
            message_id = f"d-{writer}-{uuid.uuid4().hex}"
            body = {"userId": f"u{writer}", "event": "Product Viewed", "messageId": message_id}
            phase = self.phase  # when the request was sent
            try:
                response = await client.post("/v1/track", json=body)
                self.outcomes[message_id] = response.status_code
            except httpx.HTTPError as exc:  # no answer: not accepted
                self.outcomes[message_id] = type(exc).__name__
            accepted = self.outcomes[message_id] == 200
            self.counts[(phase, accepted)] += 1
            self.changed.set()
            if not accepted:
                await asyncio.sleep(0.05)  # a client backing off, not a busy loop against a 503

    async def wait_for(self, phase: str, *, accepted: bool, count: int) -> None:
        """Until `count` requests sent in `phase` were accepted (or refused), within DEADLINE_S."""
        async with asyncio.timeout(DEADLINE_S):
            while self.counts[(phase, accepted)] < count:
                self.changed.clear()
                await self.changed.wait()


async def test_every_200_is_in_kafka_after_the_broker_was_killed_mid_flight(
    broker: PrivateKafka, tenant: Tenant, topic_prefix: str
) -> None:
    settings = IngestSettings(
        kafka_bootstrap=broker.bootstrap,
        topic_prefix=topic_prefix,
        topic_partitions=3,
        port=free_port(),
        ingest_ops_port=free_port(),
        publish_timeout_s=2,  # a request waits at most this long for the ack, then 503
        kafka_connect_wait_s=20,
    )
    traffic = Traffic()
    async with (
        serving(settings) as url,
        httpx.AsyncClient(base_url=url, auth=httpx.BasicAuth(tenant.write_key, ""), timeout=10) as client,
    ):
        writers = [asyncio.create_task(traffic.post_until_stopped(client, n)) for n in range(CLIENTS)]
        try:
            await traffic.wait_for("before kill", accepted=True, count=ACCEPTED_BEFORE_KILL)
            traffic.phase = "broker down"
            broker.kill()  # while CLIENTS requests are in flight
            await traffic.wait_for("broker down", accepted=False, count=REFUSED_WHILE_DOWN)
            broker.start()
            await broker.wait_ready()
            traffic.phase = "restarted"
            # keep posting until ingest publishes again (its producer reconnects by itself)
            await traffic.wait_for("restarted", accepted=True, count=ACCEPTED_AFTER_RESTART)
        finally:  # a failed wait too: clients still posting would keep the server from stopping
            traffic.stop.set()
            await asyncio.gather(*writers)
    outcomes = traffic.outcomes

    decoder = msgspec.json.Decoder(TrackedEvent)
    events = await read_to_end(broker.bootstrap, Topics(topic_prefix).events)
    in_kafka = {decoder.decode(record.value).message_id for record in events}
    accepted = {mid for mid, status in outcomes.items() if status == 200}
    refused = Counter(status for status in outcomes.values() if status != 200)
    print(
        f"accepted {len(accepted)}, refused {dict(refused)}, in Kafka {len(in_kafka)}, {dict(traffic.counts)}"
    )

    lost = accepted - in_kafka
    assert not lost, f"{len(lost)} events answered 200 are not in Kafka, e.g. {sorted(lost)[:3]}"
    assert set(refused) <= {503, "ReadTimeout", "RemoteProtocolError"}, refused
    assert in_kafka <= set(outcomes), "an event in Kafka that no request sent"
