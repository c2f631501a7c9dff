"""The local Kafka: format once, start detached, wait for metadata, stop cleanly.

One node by default (`.devstack/kafka`, ports 19092/19093); `devstack up --brokers 3` runs
a cluster of three combined nodes instead (`.devstack/kafka-cluster/node-{1,2,3}`, ports
19092/19093, 19094/19095, 19096/19097), so replication and a broker's loss can be tried
locally. Both shapes use 19092, so only one of them runs at a time.
"""

from __future__ import annotations

import contextlib
import logging
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NoReturn

from retarget.devstack import procs
from retarget.devstack.env import KAFKA_ENV
from retarget.devstack.errors import DevstackError
from retarget.devstack.java import find_java
from retarget.devstack.kafka_config import KafkaNode, cluster_nodes, new_cluster_id, write_node_properties
from retarget.devstack.kafka_jars import fetch_kafka
from retarget.devstack.paths import HOST, Layout, kafka_node_ports, repo_root
from retarget.devstack.progress import say, wait_until

READY_TIMEOUT = 60.0
STOP_TIMEOUT = 60.0


def _jvm(java: str, libs: Path, layout: Layout, *, heap: list[str]) -> list[str]:
    return [
        java,
        *heap,
        f"-Dlog4j2.configurationFile={repo_root() / 'deploy' / 'kafka' / 'log4j2.yaml'}",
        f"-Dkafka.logs.dir={layout.kafka_dir}",
        "-cp",
        f"{libs}/*",  # the JVM expands the wildcard, no shell involved
    ]


#: the shapes `devstack up --brokers N` knows
BROKER_COUNTS = (1, 3)


def devstack_nodes(layout: Layout, brokers: int = 1) -> list[KafkaNode]:
    """The stack's Kafka nodes: the lone node in .devstack/kafka, or a cluster of `brokers`."""
    if brokers not in BROKER_COUNTS:
        raise DevstackError(
            f"--brokers {brokers}: the local stack runs {' or '.join(map(str, BROKER_COUNTS))}"
        )
    if brokers == 1:
        [(port, controller_port)] = kafka_node_ports(1)
        return [KafkaNode(layout, 1, port, controller_port)]
    return cluster_nodes(layout.root / "kafka-cluster", kafka_node_ports(brokers))


def bootstrap_of(nodes: list[KafkaNode]) -> str:
    return ",".join(node.address for node in nodes)


def running_nodes(layout: Layout) -> tuple[list[KafkaNode], list[int | None]]:
    """The shape that runs now (any node of it alive) and each node's pid; the lone node if none."""
    for brokers in reversed(BROKER_COUNTS):
        nodes = devstack_nodes(layout, brokers)
        pids = [running_pid(node) for node in nodes]
        if any(pids):
            return nodes, pids
    return devstack_nodes(layout, 1), [None]


def running_pid(node: KafkaNode) -> int | None:
    """Pid of that node (the JVM using its server.properties), if it runs."""
    marker = str(node.layout.kafka_config)
    pid = procs.read_pid(node.layout.kafka_pid)
    if procs.alive(pid, marker):
        return pid
    # The pid file can be lost (a deleted .devstack/run); the listener tells the truth.
    proc = procs.listener(node.port)
    if proc is not None and procs.alive(proc.pid, marker):
        procs.write_pid(node.layout.kafka_pid, proc.pid)
        return proc.pid
    return None


def _storage_tool(java: str, libs: Path, layout: Layout, *args: str) -> str:
    argv = [*_jvm(java, libs, layout, heap=["-Xmx256m"]), "kafka.tools.StorageTool", *args]
    result = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        raise DevstackError(
            f"kafka StorageTool {args[0]} failed (exit {result.returncode})",
            f"if {layout.kafka_data} holds a broken install, run `retarget devstack down`, delete it "
            "(this loses the local topics) and run `retarget devstack up` again",
            details=(result.stdout + result.stderr)[-3000:],
        )
    return result.stdout.strip()


def format_storage(java: str, libs: Path, layout: Layout, cluster_id: str | None = None) -> None:
    """Format the log dir, only the first time: a one-voter KRaft cluster, or (cluster_id
    given) a node of that cluster, whose static quorum is in its server.properties."""
    if (layout.kafka_data / "meta.properties").exists():
        return
    layout.kafka_data.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    quorum = [] if cluster_id else ["--standalone"]
    cluster_id = cluster_id or new_cluster_id()
    _storage_tool(java, libs, layout, "format", *quorum, "-t", cluster_id, "-c", str(layout.kafka_config))
    took = time.monotonic() - started
    say(f"kafka: formatted {layout.kafka_data} as cluster {cluster_id} in {took:.1f}s")


def start(node: KafkaNode, cluster_id: str | None = None) -> tuple[int, bool]:
    """Start the node unless it runs; returns (pid, started_now). Does not wait for it.

    cluster_id: the id every node of a cluster is formatted with (only used the first time).
    """
    layout = node.layout
    pid = running_pid(node)
    if pid is not None:
        return pid, False
    for port in (node.port, node.controller_port):
        procs.ensure_port_free(HOST, port, "Kafka", KAFKA_ENV)
    java = find_java()
    libs = fetch_kafka()
    write_node_properties(node)
    format_storage(java, libs, layout, cluster_id)
    # a cluster's three JVMs share the machine with everything else: a smaller heap each
    heap_mb = 512 if node.cluster_size == 1 else 384
    heap = [f"-Xms{heap_mb}m", f"-Xmx{heap_mb}m", "-XX:+UseG1GC"]
    argv = [*_jvm(java, libs, layout, heap=heap), "kafka.Kafka", str(layout.kafka_config)]
    pid = procs.spawn(argv, log_file=layout.kafka_console_log, cwd=layout.kafka_dir)
    procs.write_pid(layout.kafka_pid, pid)
    return pid, True


def start_all(nodes: list[KafkaNode]) -> list[tuple[int, bool]]:
    """Start every node; a cluster's nodes share one id (read back from a node formatted earlier)."""
    cluster_id = (_existing_cluster_id(nodes) or new_cluster_id()) if len(nodes) > 1 else None
    return [start(node, cluster_id) for node in nodes]


def _existing_cluster_id(nodes: list[KafkaNode]) -> str | None:
    for node in nodes:
        meta = node.layout.kafka_data / "meta.properties"
        if meta.exists():
            for line in meta.read_text().splitlines():
                if line.startswith("cluster.id="):
                    return line.partition("=")[2].strip()
    return None


@contextlib.contextmanager
def _quiet_aiokafka() -> Iterator[None]:
    """aiokafka logs every refused connection; while we poll, those are expected."""
    logger = logging.getLogger("aiokafka")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


async def broker_answers(servers: str, timeout_ms: int = 3000, brokers: int = 1) -> bool:
    """The cluster answers a metadata request and lists at least `brokers` live brokers."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=servers, request_timeout_ms=timeout_ms)
    with _quiet_aiokafka():
        try:
            await admin.start()
            cluster = await admin.describe_cluster()
            return len(cluster.get("brokers") or []) >= brokers
        except Exception:
            return False
        finally:
            with contextlib.suppress(Exception):
                await admin.close()


async def wait_ready(nodes: list[KafkaNode], pids: list[int], timeout: float = READY_TIMEOUT) -> float:
    """Block until every node is a live broker in the metadata; on failure say why and what to do."""
    took = await wait_until(
        lambda: broker_answers(bootstrap_of(nodes), brokers=len(nodes)),
        what=f"kafka: waiting for {len(nodes)} broker(s) to answer metadata",
        timeout=timeout,
        interval=0.5,
        gave_up=lambda: not all(procs.alive(pid) for pid in pids),
    )
    if took is not None:
        return took
    pairs = list(zip(nodes, pids, strict=True))
    node, pid = next(((n, p) for n, p in pairs if not procs.alive(p)), pairs[0])  # a dead one first
    _explain_not_ready(node.layout, pid, bootstrap_of(nodes), timeout)


def _explain_not_ready(layout: Layout, pid: int, bootstrap: str, timeout: float) -> NoReturn:
    """Raise the reason a node isn't ready (it died, or it is slow and why)."""
    logs = procs.tail(layout.kafka_log)
    console = procs.tail(layout.kafka_console_log)
    details = f"last lines of {layout.kafka_log}:\n{logs or '(empty)'}"
    if console:
        details += f"\nlast lines of {layout.kafka_console_log}:\n{console}"
    if not procs.alive(pid):
        raise DevstackError(
            "kafka exited during start-up",
            "read the log above; a corrupt log dir can be reset with `retarget devstack down` and "
            f"deleting {layout.kafka_data} (loses local topics)",
            details=details,
        )
    hint = (
        "it may just be slow: check `retarget devstack status` in a minute, or stop it with "
        "`retarget devstack down` and read the log above"
    )
    partitions = _partition_dirs(layout.kafka_data)
    if partitions > MANY_PARTITIONS:
        hint = (
            f"the local broker holds {partitions:,} partitions (topics left by earlier test or benchmark "
            "runs; they now delete their own): `make clean` wipes the local stack's data and starts afresh"
        )
    raise DevstackError(
        f"kafka did not answer on {bootstrap} within {timeout:.0f}s (pid {pid} still runs)",
        hint,
        details=details,
    )


#: more partitions than this, and a single local broker with a small heap starts very slowly
MANY_PARTITIONS = 5_000


def _partition_dirs(data: Path) -> int:
    try:
        return sum(1 for entry in data.iterdir() if entry.is_dir() and "-" in entry.name)
    except OSError:
        return 0


def stop(layout: Layout) -> str:
    """Stop whichever shape runs (the lone node or every node of the cluster)."""
    nodes, _ = running_nodes(layout)
    # all at once: a cluster's last node, stopped alone, waits in vain for a controller quorum
    with ThreadPoolExecutor(len(nodes)) as pool:
        return "\n".join(pool.map(stop_node, nodes))


def stop_node(node: KafkaNode) -> str:
    """SIGTERM and wait for a controlled shutdown (flushes logs, writes the clean-shutdown mark)."""
    layout = node.layout
    name = "kafka" if node.cluster_size == 1 else f"kafka node {node.node_id}"
    pid = running_pid(node)
    if pid is None:
        layout.kafka_pid.unlink(missing_ok=True)
        return f"{name}: not running"
    started = time.monotonic()
    clean = procs.stop(pid, timeout=STOP_TIMEOUT)
    layout.kafka_pid.unlink(missing_ok=True)
    if not clean:
        return f"{name}: killed after {STOP_TIMEOUT:.0f}s without a clean shutdown (it will recover its logs on start)"
    return f"{name}: stopped (pid {pid}, {time.monotonic() - started:.1f}s)"
