"""server.properties of the single-node KRaft Kafka (broker and controller in one JVM).

Rewritten on every `up` from this code (it lives in .devstack, not in git), so a change
here reaches existing stacks; the data folder and its cluster id are kept.
"""

from __future__ import annotations

from pathlib import Path

from retarget.devstack.paths import HOST, KAFKA_CONTROLLER_PORT, KAFKA_PORT, Layout


def bootstrap() -> str:
    return f"{HOST}:{KAFKA_PORT}"


def server_properties(layout: Layout) -> dict[str, str]:
    return {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.bootstrap.servers": f"{HOST}:{KAFKA_CONTROLLER_PORT}",
        "listeners": f"PLAINTEXT://{HOST}:{KAFKA_PORT},CONTROLLER://{HOST}:{KAFKA_CONTROLLER_PORT}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(layout.kafka_data),
        # One node: every internal topic must live with a single replica. One partition
        # each (default 50) makes the first consumer group or transaction start fast.
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "share.coordinator.state.topic.num.partitions": "1",
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


def write_server_properties(layout: Layout) -> Path:
    lines = ["# Written by `retarget devstack up`; edit retarget/devstack/kafka_config.py instead."]
    lines += [f"{key}={value}" for key, value in server_properties(layout).items()]
    layout.kafka_config.write_text("\n".join(lines) + "\n")
    return layout.kafka_config
