"""A throwaway Kafka broker (or 3-node cluster) of one's own, for tests that stop or kill it.

The shared stack's broker must stay up (everyone's tests use it), so a test that needs
to take Kafka away starts one of these: same jars, same Java, same server.properties as
the devstack's broker, but its own ports and its own data folder (a tmp dir), which it
keeps across a kill and a restart — exactly what a crash and a recovery look like.

    kafka = PrivateKafka(tmp_path / "kafka", port=free_port(), controller_port=free_port())
    kafka.start(); await kafka.wait_ready()
    ... kafka.kill(); kafka.start(); await kafka.wait_ready() ...
    kafka.stop()

PrivateCluster is three such nodes in one KRaft cluster (replication 3, min.insync 2), for
tests that kill one broker and expect nothing acknowledged to be lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import psutil

from retarget.devstack import procs
from retarget.devstack.errors import DevstackError
from retarget.devstack.java import find_java
from retarget.devstack.kafka import broker_answers, format_storage
from retarget.devstack.kafka_config import KafkaNode, cluster_nodes, new_cluster_id, node_properties
from retarget.devstack.kafka_jars import fetch_kafka
from retarget.devstack.paths import HOST, Layout, repo_root


class PrivateKafka:
    def __init__(
        self,
        root: Path,
        *,
        port: int,
        controller_port: int,
        heap_mb: int = 256,
        node: KafkaNode | None = None,
        cluster_id: str | None = None,
    ) -> None:
        """A lone node in `root`; or `node` of a cluster, formatted with its `cluster_id`."""
        self.node = node or KafkaNode(Layout(root), 1, port, controller_port)
        self.layout = self.node.layout
        self.port = self.node.port
        self.controller_port = self.node.controller_port
        self.heap_mb = heap_mb
        self.cluster_id = cluster_id
        self.pid: int | None = None

    @property
    def bootstrap(self) -> str:
        return f"{HOST}:{self.port}"

    def properties(self) -> dict[str, str]:
        """The devstack broker's settings with this broker's ports and folders."""
        return node_properties(self.node)

    def start(self) -> int:
        """Format the data folder the first time, then start the JVM (does not wait for it)."""
        if procs.alive(self.pid):
            return self.pid  # type: ignore[return-value]
        for port in (self.port, self.controller_port):
            procs.ensure_port_free(HOST, port, "the private Kafka broker")
        self.layout.kafka_dir.mkdir(parents=True, exist_ok=True)
        lines = [f"{key}={value}" for key, value in self.properties().items()]
        self.layout.kafka_config.write_text("\n".join(lines) + "\n")
        java, libs = find_java(), fetch_kafka()
        format_storage(java, libs, self.layout, self.cluster_id)
        argv = [
            java,
            f"-Xms{self.heap_mb}m",
            f"-Xmx{self.heap_mb}m",
            f"-Dlog4j2.configurationFile={repo_root() / 'deploy' / 'kafka' / 'log4j2.yaml'}",
            f"-Dkafka.logs.dir={self.layout.kafka_dir}",
            "-cp",
            f"{libs}/*",
            "kafka.Kafka",
            str(self.layout.kafka_config),
        ]
        self.pid = procs.spawn(argv, log_file=self.layout.kafka_console_log, cwd=self.layout.kafka_dir)
        return self.pid

    async def wait_ready(self, timeout_s: float = 60.0) -> float:
        """Seconds until the broker answered metadata; DevstackError if it died or took too long."""
        started = time.monotonic()
        while time.monotonic() - started < timeout_s:
            if not procs.alive(self.pid):
                raise DevstackError(
                    "the private Kafka broker exited during start-up",
                    f"read {self.layout.kafka_log}",
                    details=procs.tail(self.layout.kafka_log),
                )
            if await broker_answers(self.bootstrap, timeout_ms=1000):
                return time.monotonic() - started
            await asyncio.sleep(0.2)
        raise DevstackError(
            f"the private Kafka broker did not answer on {self.bootstrap} within {timeout_s:.0f}s",
            f"read {self.layout.kafka_log}",
            details=procs.tail(self.layout.kafka_log),
        )

    def kill(self) -> None:
        """SIGKILL: a crash. Acknowledged records survive (they are in the OS page cache)."""
        if self.pid is not None:
            with contextlib.suppress(psutil.NoSuchProcess):
                process = psutil.Process(self.pid)
                process.kill()
                process.wait(timeout=10)  # reaps it: it is this process's child
        self.pid = None

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM and a controlled shutdown (SIGKILL after timeout_s)."""
        if self.pid is not None:
            procs.stop(self.pid, timeout=timeout_s)
        self.pid = None


class PrivateCluster:
    """Three (or `size`) PrivateKafka nodes of one KRaft cluster, on ports the caller picked."""

    def __init__(self, root: Path, ports: list[tuple[int, int]], *, heap_mb: int = 256) -> None:
        cluster_id = new_cluster_id()
        self.nodes = [
            PrivateKafka(
                node.layout.root,
                port=node.port,
                controller_port=node.controller_port,
                heap_mb=heap_mb,
                node=node,
                cluster_id=cluster_id,
            )
            for node in cluster_nodes(root, ports)
        ]

    @property
    def bootstrap(self) -> str:
        return ",".join(node.bootstrap for node in self.nodes)

    def start(self) -> None:
        for node in self.nodes:
            node.start()

    async def wait_ready(self, timeout_s: float = 120.0, *, brokers: int | None = None) -> float:
        """Seconds until `brokers` (default: all) nodes are live brokers in the cluster's metadata."""
        wanted = len(self.nodes) if brokers is None else brokers
        alive = [node for node in self.nodes if node.pid is not None]
        started = time.monotonic()
        while time.monotonic() - started < timeout_s:
            dead = [node for node in alive if not procs.alive(node.pid)]
            if dead:
                raise DevstackError(
                    "a node of the private Kafka cluster exited",
                    f"read {dead[0].layout.kafka_log}",
                    details=procs.tail(dead[0].layout.kafka_log),
                )
            servers = ",".join(node.bootstrap for node in alive)
            if await broker_answers(servers, timeout_ms=2000, brokers=wanted):
                return time.monotonic() - started
            await asyncio.sleep(0.3)
        raise DevstackError(
            f"the private Kafka cluster had not {wanted} live brokers within {timeout_s:.0f}s",
            f"read {self.nodes[0].layout.kafka_log}",
            details=procs.tail(self.nodes[0].layout.kafka_log),
        )

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM every node at once (a last node alone would wait for a quorum), SIGKILL after."""
        for node in self.nodes:
            if node.pid is not None:
                with contextlib.suppress(psutil.NoSuchProcess):
                    psutil.Process(node.pid).terminate()
        for node in self.nodes:
            node.stop(timeout_s)
