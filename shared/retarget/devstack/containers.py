"""The stack on a Docker engine, for machines that have one: testcontainers starts Apache
Kafka (KRaft, the official apache/kafka image) and PostgreSQL, and an in-process aiosmtpd
capture process stands in for the mail server. The tests' fixtures use it when RETARGET_TEST_STACK
is `containers`, or when no local stack can start and a Docker engine answers.

Not exercised on the development machines (no Docker engine runs there); kept in step with
the local stack's settings: same Kafka major version, same PostgreSQL role and database.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

KAFKA_IMAGE = "apache/kafka:4.1.1"
POSTGRES_IMAGE = "postgres:17"


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


def start_containers(capture_dir: Path) -> tuple[dict[str, str], Callable[[], None]]:
    """Start Kafka, PostgreSQL and an SMTP capture; return (RETARGET_* env, stop)."""
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.waiting_utils import wait_for_logs
    from testcontainers.postgres import PostgresContainer

    kafka_port = _free_port()
    # the broker must advertise the host port the client reaches, so the port is fixed up front
    kafka = (
        DockerContainer(KAFKA_IMAGE)
        .with_bind_ports(9092, kafka_port)
        .with_env("KAFKA_NODE_ID", "1")
        .with_env("KAFKA_PROCESS_ROLES", "broker,controller")
        .with_env("KAFKA_LISTENERS", "PLAINTEXT://:9092,CONTROLLER://:9093")
        .with_env("KAFKA_ADVERTISED_LISTENERS", f"PLAINTEXT://127.0.0.1:{kafka_port}")
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
    postgres = PostgresContainer(POSTGRES_IMAGE, username="retarget", password="retarget", dbname="retarget")
    kafka.start()
    try:
        wait_for_logs(kafka, "Kafka Server started", timeout=120)
        postgres.start()
    except Exception:
        kafka.stop()
        raise
    smtp_port = _free_port()
    capture_dir.mkdir(parents=True, exist_ok=True)
    smtp = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "retarget.devstack.smtp_capture",
            "--dir",
            str(capture_dir),
            "--port",
            str(smtp_port),
        ]
    )

    def stop() -> None:
        smtp.terminate()
        smtp.wait(10)
        postgres.stop()
        kafka.stop()

    env = {
        "RETARGET_KAFKA_BOOTSTRAP": f"127.0.0.1:{kafka_port}",
        "RETARGET_DATABASE_URL": postgres.get_connection_url(driver=None),
        "RETARGET_SMTP_URL": f"smtp://127.0.0.1:{smtp_port}",
    }
    return env, stop
