"""Replication for real: a private 3-node cluster loses a broker while ingest is under load.

The topics ingest creates get 3 replicas and min.insync.replicas 2 (RETARGET_TOPIC_REPLICATION,
RETARGET_TOPIC_MIN_INSYNC), so a 200 means two brokers had the event. A few clients post a
bounded number of events with unique messageIds; after the Nth 200 the broker leading the
events topic's first partition is SIGKILLed. Afterwards every event answered 200 is read back
by messageId, and ingest kept answering 200 with two brokers left. Driven by counts, with
generous deadlines only to fail instead of hanging: never by how fast the machine is.

Never the shared broker: the cluster is the test's own (PrivateCluster, tmp dirs, free ports).
"""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import msgspec
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from retarget.common.schemas import TrackedEvent
from retarget.common.topics import Topics
from retarget.devstack.private_kafka import PrivateCluster
from retarget.devstack.topic_reader import read_to_end
from retarget.ingest.settings import IngestSettings

from .ingest.conftest import Tenant, free_port, make_tenant, serving, tenant  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(420)]

CLIENTS = 4
REQUESTS = 400  # the load is bounded: this many requests in all (more only while waiting below)
KILL_AFTER_ACCEPTED = 100  # the broker dies once this many requests got their 200
ACCEPTED_AFTER_KILL = 30  # ...and the test goes on until this many more got theirs
DEADLINE_S = 240.0  # a bound to fail instead of hanging, never a speed expectation


def free_port_pairs(count: int) -> list[tuple[int, int]]:
    """Distinct free ports, all held open until every one is picked (no duplicate)."""
    sockets = []
    try:
        for _ in range(2 * count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        ports = [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()
    return list(zip(ports[::2], ports[1::2], strict=True))


@pytest.fixture
async def cluster(tmp_path: Path, stack: dict[str, str]) -> AsyncIterator[PrivateCluster]:
    kafka = PrivateCluster(tmp_path / "cluster", free_port_pairs(3))
    kafka.start()
    try:
        await kafka.wait_ready()
        yield kafka
    finally:
        kafka.stop(timeout_s=20)


@dataclass
class Load:
    """What every request got, by messageId; how many 200s came before and after the kill."""

    outcomes: dict[str, int | str] = field(default_factory=dict)
    accepted: int = 0
    accepted_after_kill: int = 0
    killed: bool = False
    enough_before_kill: asyncio.Event = field(default_factory=asyncio.Event)

    def done(self) -> bool:
        return len(self.outcomes) >= REQUESTS and self.accepted_after_kill >= ACCEPTED_AFTER_KILL

    async def post(self, client: httpx.AsyncClient, writer: int) -> None:
        while not self.done():
            message_id = f"r-{writer}-{uuid.uuid4().hex}"
            body = {"userId": f"u{writer}", "event": "Product Viewed", "messageId": message_id}
            try:
                status: int | str = (await client.post("/v1/track", json=body)).status_code
            except httpx.HTTPError as exc:  # no answer: not accepted
                status = type(exc).__name__
            self.outcomes[message_id] = status
            if status != 200:
                await asyncio.sleep(0.1)  # a client backing off, not a busy loop against 503s
                continue
            self.accepted += 1
            if self.killed:
                self.accepted_after_kill += 1
            elif self.accepted >= KILL_AFTER_ACCEPTED:
                self.enough_before_kill.set()


TOPIC_LEVEL = 1  # DescribeConfigs' source of a value set on the topic itself (not a broker default)


async def topic_durability(bootstrap: str, topic: str) -> tuple[int, tuple[str, int], int]:
    """(replicas of partition 0, (min.insync.replicas, where it is set), the leader of partition 0)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        [described] = await admin.describe_topics([topic])
        partition0 = next(p for p in described["partitions"] if p["partition"] == 0)
        [response] = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
        entries = {entry[0]: (entry[1], entry[3]) for entry in response.resources[0][4]}
        return len(partition0["replicas"]), entries["min.insync.replicas"], partition0["leader"]
    finally:
        await admin.close()


async def test_a_broker_killed_mid_flight_loses_no_accepted_event_and_ingest_keeps_accepting(
    cluster: PrivateCluster,
    tenant: Tenant,  # noqa: F811 (the fixture imported above)
    topic_prefix: str,
) -> None:
    settings = IngestSettings(
        kafka_bootstrap=cluster.bootstrap,
        topic_prefix=topic_prefix,
        topic_partitions=3,
        topic_replication=3,
        topic_min_insync=2,
        port=free_port(),
        publish_timeout_s=5,  # while the dead leader's partitions move: 503, the client retries
        kafka_connect_wait_s=60,
    )
    topic = Topics(topic_prefix).events
    load = Load()
    async with (
        serving(settings) as url,
        httpx.AsyncClient(base_url=url, auth=httpx.BasicAuth(tenant.write_key, ""), timeout=30) as client,
    ):
        clients = [asyncio.create_task(load.post(client, n)) for n in range(CLIENTS)]
        try:
            async with asyncio.timeout(DEADLINE_S):
                await load.enough_before_kill.wait()
                replicas, min_insync, leader = await topic_durability(cluster.bootstrap, topic)
                victim = next(node for node in cluster.nodes if node.node.node_id == leader)
                victim.kill()  # SIGKILL, while CLIENTS requests are in flight
                load.killed = True
                accepted_before_kill = load.accepted
                await asyncio.gather(*clients)
        finally:  # on a failure too: clients still posting would keep the server from stopping
            for task in clients:
                task.cancel()
            await asyncio.gather(*clients, return_exceptions=True)

    survivors = ",".join(node.bootstrap for node in cluster.nodes if node is not victim)
    decoder = msgspec.json.Decoder(TrackedEvent)
    in_kafka = {decoder.decode(r.value).message_id for r in await read_to_end(survivors, topic)}
    accepted = {mid for mid, status in load.outcomes.items() if status == 200}
    refused = Counter(status for status in load.outcomes.values() if status != 200)
    print(
        f"requests {len(load.outcomes)}, accepted {len(accepted)} ({accepted_before_kill} before "
        f"the kill of broker {leader}, {load.accepted_after_kill} after), refused {dict(refused)}, "
        f"in Kafka {len(in_kafka)}"
    )

    # set on the topic: the cluster's broker default is 2 as well, and must not hide a topic without it
    assert (replicas, min_insync) == (3, ("2", TOPIC_LEVEL)), "the events topic is not replicated as set"
    lost = accepted - in_kafka
    assert not lost, f"{len(lost)} events answered 200 are not in Kafka, e.g. {sorted(lost)[:3]}"
    assert load.accepted_after_kill >= ACCEPTED_AFTER_KILL
    assert set(refused) <= {503, "ReadTimeout", "RemoteProtocolError"}, refused
    assert in_kafka <= set(load.outcomes), "an event in Kafka that no request sent"
