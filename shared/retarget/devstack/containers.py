"""The stack on a Docker engine: testcontainers starts Apache Kafka (KRaft, configured the way
the apache/kafka image reads KAFKA_* variables) and PostgreSQL, and an in-process aiosmtpd
capture process stands in for the mail server. The tests' fixtures use it when RETARGET_TEST_STACK
is `containers`, or when no local stack can start and a Docker engine answers.

Exercised on podman's Docker-compatible API by `make test-containers` (tests/containers/run.sh),
with the images `make images` builds locally under the names below: no registry is needed when
they exist. Kept in step with the local stack: same Kafka version, same PostgreSQL role and database.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from retarget.devstack.errors import DevstackError
from retarget.devstack.seal_key import SEAL_KEY_ENV

# the names docker-compose.yml uses, so one `make images` serves both
KAFKA_IMAGE = "apache/kafka:4.1.1"
POSTGRES_IMAGE = "postgres:15"
KAFKA_READY_TIMEOUT = 180.0  # a JVM's first start on a loaded 2-core machine


def docker_available() -> bool:
    try:
        import docker

        docker.from_env().ping()
    except Exception:  # no client config, no socket, engine down: all mean "no"
        return False
    return True


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ensure_image(client: Any, name: str) -> None:
    """The image is here, or can be pulled; otherwise say how to build it (no registry on podman here)."""
    import docker.errors

    try:
        client.images.get(name)
        return
    except docker.errors.ImageNotFound:
        pass
    try:
        client.images.pull(name)
    except docker.errors.APIError as exc:
        raise DevstackError(
            f"image {name} is not on this engine and could not be pulled ({exc.explanation or exc})",
            "build the stand-in images locally with `make images` (or pull it where a registry is reachable)",
        ) from exc


def kafka_container(port: int) -> Any:
    from testcontainers.core.container import DockerContainer

    # the broker must advertise the host port the client reaches, so the port is fixed up front
    return (
        DockerContainer(KAFKA_IMAGE)
        .with_bind_ports(9092, port)
        .with_env("KAFKA_NODE_ID", "1")
        .with_env("KAFKA_PROCESS_ROLES", "broker,controller")
        .with_env("KAFKA_LISTENERS", "PLAINTEXT://:9092,CONTROLLER://:9093")
        .with_env("KAFKA_ADVERTISED_LISTENERS", f"PLAINTEXT://127.0.0.1:{port}")
        .with_env("KAFKA_CONTROLLER_LISTENER_NAMES", "CONTROLLER")
        .with_env("KAFKA_LISTENER_SECURITY_PROTOCOL_MAP", "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT")
        .with_env("KAFKA_CONTROLLER_QUORUM_VOTERS", "1@localhost:9093")
        .with_env("KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR", "1")
        .with_env("KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR", "1")
        .with_env("KAFKA_TRANSACTION_STATE_LOG_MIN_ISR", "1")
        .with_env("KAFKA_SHARE_COORDINATOR_STATE_TOPIC_REPLICATION_FACTOR", "1")
        .with_env("KAFKA_SHARE_COORDINATOR_STATE_TOPIC_MIN_ISR", "1")
        .with_env("KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS", "0")
        .with_env("KAFKA_AUTO_CREATE_TOPICS_ENABLE", "false")
    )


def wait_for_kafka(container: Any, bootstrap: str, timeout: float = KAFKA_READY_TIMEOUT) -> None:
    """Ready means a metadata request from this host answers through the mapped port — not a
    log line, which differs between images and says nothing about the port mapping."""
    from retarget.devstack.kafka import broker_answers
    from retarget.devstack.progress import wait_until

    def exited() -> bool:
        container.get_wrapped_container().reload()
        return bool(container.get_wrapped_container().status in ("exited", "dead"))

    took = asyncio.run(
        wait_until(
            lambda: broker_answers(bootstrap),
            what=f"kafka container: waiting for {bootstrap} to answer metadata",
            timeout=timeout,
            interval=0.5,
            gave_up=exited,
        )
    )
    if took is None:
        logs = b"".join(container.get_logs()).decode(errors="replace")[-3000:]
        why = "exited" if exited() else f"did not answer on {bootstrap} within {timeout:.0f}s"
        raise DevstackError(
            f"the Kafka container ({KAFKA_IMAGE}) {why}; the end of its log:",
            "fix what its log says; if it runs, check its port mapping (`podman ps` / `docker ps`)",
            details=logs,
        )


def seal_key_file(folder: Path) -> Path:
    """A configuration seal key for this run (ingest seals DKIM keys with it; without one it
    answers 503), like the local stack's but thrown away with the containers."""
    from retarget.config.seal import new_seal_key

    path = folder / "config_seal_key"
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as file:
        file.write(new_seal_key() + "\n")
    return path


def _wait_for_smtp(process: subprocess.Popen[bytes], port: int, timeout: float = 60.0) -> None:
    """The first test may send mail at once: wait until the capture listens."""
    from retarget.devstack.procs import port_open
    from retarget.devstack.progress import wait_until

    async def listening() -> bool:
        return port_open("127.0.0.1", port, timeout=0.2)

    took = asyncio.run(
        wait_until(
            listening,
            what="smtp capture: waiting",
            timeout=timeout,
            gave_up=lambda: process.poll() is not None,
        )
    )
    if took is None:
        raise DevstackError(f"the SMTP capture did not listen on 127.0.0.1:{port}", "its output is above")


def start_containers(capture_dir: Path) -> tuple[dict[str, str], Callable[[], None]]:
    """Start Kafka, PostgreSQL and an SMTP capture; return (RETARGET_* env, stop)."""
    from testcontainers.core.docker_client import DockerClient
    from testcontainers.postgres import PostgresContainer

    engine = DockerClient().client
    for image in (KAFKA_IMAGE, POSTGRES_IMAGE):
        ensure_image(engine, image)
    kafka_port, smtp_port = _free_port(), _free_port()
    kafka = kafka_container(kafka_port)
    postgres = PostgresContainer(POSTGRES_IMAGE, username="retarget", password="retarget", dbname="retarget")
    secrets = Path(tempfile.mkdtemp(prefix="retarget-secrets-"))  # mode 0700
    with contextlib.ExitStack() as undo:  # a failed start stops what already runs
        undo.callback(shutil.rmtree, secrets, ignore_errors=True)
        kafka.start()
        undo.callback(kafka.stop)
        wait_for_kafka(kafka, f"127.0.0.1:{kafka_port}")
        postgres.start()  # returns once psql inside answers over TCP
        undo.callback(postgres.stop)
        capture_dir.mkdir(parents=True, exist_ok=True)
        argv = ["-m", "retarget.devstack.smtp_capture", "--dir", str(capture_dir), "--port", str(smtp_port)]
        smtp = subprocess.Popen([sys.executable, *argv])
        undo.callback(_terminate, smtp)
        _wait_for_smtp(smtp, smtp_port)
        env = {
            "RETARGET_KAFKA_BOOTSTRAP": f"127.0.0.1:{kafka_port}",
            # IPv4 explicitly: "localhost" may resolve to ::1 first, where podman maps no port
            "RETARGET_DATABASE_URL": postgres.get_connection_url(host="127.0.0.1", driver=None),
            "RETARGET_SMTP_URL": f"smtp://127.0.0.1:{smtp_port}",
            SEAL_KEY_ENV: os.environ.get(SEAL_KEY_ENV) or str(seal_key_file(secrets)),
        }
        return env, undo.pop_all().close


def _terminate(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    process.wait(10)
