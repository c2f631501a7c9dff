"""server.properties of the local KRaft Kafka: one node, or a cluster of combined nodes.

Every node is broker and controller in one JVM. One node (the default stack, and most
private test brokers) is a dynamic one-voter quorum; a cluster (`devstack up --brokers 3`,
PrivateCluster) is a static quorum of all its nodes, and its internal topics (consumer
offsets, transaction state) get 3 replicas and min.insync.replicas 2, like production.

Rewritten on every `up` from this code (it lives in .devstack, not in git), so a change
here reaches existing stacks; the data folder and its cluster id are kept.
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass
from pathlib import Path

from retarget.devstack.paths import HOST, KAFKA_CONTROLLER_PORT, KAFKA_PORT, Layout


@dataclass(frozen=True)
class KafkaNode:
    """One KRaft node: its folders, its id and ports, and the controller quorum it joins."""

    layout: Layout
    node_id: int = 1
    port: int = KAFKA_PORT
    controller_port: int = KAFKA_CONTROLLER_PORT
    #: (node id, controller port) of every voter of a cluster; empty for a lone node
    voters: tuple[tuple[int, int], ...] = ()

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def cluster_size(self) -> int:
        return max(1, len(self.voters))


def cluster_nodes(root: Path, ports: list[tuple[int, int]]) -> list[KafkaNode]:
    """Nodes 1..n of one cluster, each in root/node-<id>, on the given (port, controller port)s."""
    voters = tuple((number, controller) for number, (_, controller) in enumerate(ports, start=1))
    return [
        KafkaNode(Layout(root / f"node-{number}"), number, port, controller, voters)
        for number, (port, controller) in enumerate(ports, start=1)
    ]


def new_cluster_id() -> str:
    """What `kafka-storage random-uuid` prints (a base64url UUID), without starting a JVM; never
    starting with "-", which the storage tool's argument parser takes for an option (1 in 64)."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cluster_id.startswith("-"):
            return cluster_id


def replication_of(cluster_size: int) -> tuple[int, int]:
    """(replicas, min in-sync) for a cluster: 3 and 2 from three brokers, else all of them.

    min.insync = replicas - 1 keeps an acknowledged record on two brokers while one is lost.
    """
    replicas = min(3, cluster_size)
    return replicas, max(1, replicas - 1)


def node_properties(node: KafkaNode) -> dict[str, str]:
    replicas, min_insync = (str(n) for n in replication_of(node.cluster_size))
    props = {
        "process.roles": "broker,controller",
        "node.id": str(node.node_id),
        "listeners": f"PLAINTEXT://{HOST}:{node.port},CONTROLLER://{HOST}:{node.controller_port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(node.layout.kafka_data),
        # Internal topics get every replica there is (up to 3). One partition each
        # (default 50) makes the first consumer group or transaction start fast.
        "offsets.topic.replication.factor": replicas,
        "offsets.topic.num.partitions": "1",
        "transaction.state.log.replication.factor": replicas,
        "transaction.state.log.min.isr": min_insync,
        "transaction.state.log.num.partitions": "1",
        "share.coordinator.state.topic.replication.factor": replicas,
        "share.coordinator.state.topic.min.isr": min_insync,
        "share.coordinator.state.topic.num.partitions": "1",
        # Topics created without explicit settings (faust's own) get the same durability.
        "default.replication.factor": replicas,
        "min.insync.replicas": min_insync,
        # Tests and the demo start consumers constantly; don't make each wait 3 s to join.
        "group.initial.rebalance.delay.ms": "0",
        "num.partitions": "1",
        # Topics are created on purpose (`retarget kafka`), so typos fail instead of appearing.
        "auto.create.topics.enable": "false",
        "num.network.threads": "2",
        "num.io.threads": "4",
        # A laptop stack: keep a week or 1 GiB per partition, whichever comes first.
        "log.retention.hours": "168",
        "log.retention.bytes": str(1 << 30),
        "log.segment.bytes": str(64 << 20),
    }
    if node.voters:
        # a static quorum: every node knows every voter, so the storage is formatted without
        # --standalone and any two of three controllers elect a leader
        props["controller.quorum.voters"] = ",".join(f"{n}@{HOST}:{port}" for n, port in node.voters)
    else:
        props["controller.quorum.bootstrap.servers"] = f"{HOST}:{node.controller_port}"
    return props


def write_node_properties(node: KafkaNode) -> Path:
    lines = ["# Written by `retarget devstack up`; edit retarget/devstack/kafka_config.py instead."]
    lines += [f"{key}={value}" for key, value in node_properties(node).items()]
    node.layout.kafka_dir.mkdir(parents=True, exist_ok=True)
    node.layout.kafka_config.write_text("\n".join(lines) + "\n")
    return node.layout.kafka_config
