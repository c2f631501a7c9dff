"""The local Kafka broker: format once, start detached, wait for metadata, stop cleanly."""

from __future__ import annotations

import contextlib
import logging
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from retarget.devstack import procs
from retarget.devstack.env import KAFKA_ENV
from retarget.devstack.errors import DevstackError
from retarget.devstack.java import find_java
from retarget.devstack.kafka_config import bootstrap, write_server_properties
from retarget.devstack.kafka_jars import fetch_kafka
from retarget.devstack.paths import HOST, KAFKA_CONTROLLER_PORT, KAFKA_PORT, Layout, repo_root
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


def running_pid(layout: Layout) -> int | None:
    """Pid of our broker (the one using this stack's server.properties), if it runs."""
    marker = str(layout.kafka_config)
    pid = procs.read_pid(layout.kafka_pid)
    if procs.alive(pid, marker):
        return pid
    # The pid file can be lost (a deleted .devstack/run); the listener tells the truth.
    proc = procs.listener(KAFKA_PORT)
    if proc is not None and procs.alive(proc.pid, marker):
        procs.write_pid(layout.kafka_pid, proc.pid)
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


def format_storage(java: str, libs: Path, layout: Layout) -> None:
    """Format the log dir as a one-voter KRaft cluster, only the first time."""
    if (layout.kafka_data / "meta.properties").exists():
        return
    layout.kafka_data.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    cluster_id = _storage_tool(java, libs, layout, "random-uuid").splitlines()[-1].strip()
    _storage_tool(
        java, libs, layout, "format", "--standalone", "-t", cluster_id, "-c", str(layout.kafka_config)
    )
    took = time.monotonic() - started
    say(f"kafka: formatted {layout.kafka_data} as cluster {cluster_id} in {took:.1f}s")


def start(layout: Layout) -> tuple[int, bool]:
    """Start the broker unless it runs; returns (pid, started_now). Does not wait for it."""
    pid = running_pid(layout)
    if pid is not None:
        return pid, False
    for port in (KAFKA_PORT, KAFKA_CONTROLLER_PORT):
        procs.ensure_port_free(HOST, port, "Kafka", KAFKA_ENV)
    java = find_java()
    libs = fetch_kafka()
    write_server_properties(layout)
    format_storage(java, libs, layout)
    heap = ["-Xms512m", "-Xmx512m", "-XX:+UseG1GC"]
    argv = [*_jvm(java, libs, layout, heap=heap), "kafka.Kafka", str(layout.kafka_config)]
    pid = procs.spawn(argv, log_file=layout.kafka_console_log, cwd=layout.kafka_dir)
    procs.write_pid(layout.kafka_pid, pid)
    return pid, True


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


async def broker_answers(servers: str, timeout_ms: int = 3000) -> bool:
    """The cluster answers a metadata request and lists at least one live broker."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=servers, request_timeout_ms=timeout_ms)
    with _quiet_aiokafka():
        try:
            await admin.start()
            cluster = await admin.describe_cluster()
            return bool(cluster.get("brokers"))
        except Exception:
            return False
        finally:
            with contextlib.suppress(Exception):
                await admin.close()


async def wait_ready(layout: Layout, pid: int, timeout: float = READY_TIMEOUT) -> float:
    """Block until the broker answers metadata; on failure say why and what to do."""
    took = await wait_until(
        lambda: broker_answers(bootstrap()),
        what="kafka: waiting for the broker to answer metadata",
        timeout=timeout,
        interval=0.5,
        gave_up=lambda: not procs.alive(pid),
    )
    if took is not None:
        return took
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
        f"kafka did not answer on {bootstrap()} within {timeout:.0f}s (pid {pid} still runs)",
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
    """SIGTERM and wait for a controlled shutdown (flushes logs, writes the clean-shutdown mark)."""
    pid = running_pid(layout)
    if pid is None:
        layout.kafka_pid.unlink(missing_ok=True)
        return "kafka: not running"
    started = time.monotonic()
    clean = procs.stop(pid, timeout=STOP_TIMEOUT)
    layout.kafka_pid.unlink(missing_ok=True)
    if not clean:
        return f"kafka: killed after {STOP_TIMEOUT:.0f}s without a clean shutdown (it will recover its logs on start)"
    return f"kafka: stopped (pid {pid}, {time.monotonic() - started:.1f}s)"
