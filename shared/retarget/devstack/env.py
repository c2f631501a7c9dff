"""Addresses of the stack, and the environment variables that point elsewhere.

Setting RETARGET_KAFKA_BOOTSTRAP, RETARGET_DATABASE_URL or RETARGET_SMTP_URL means "use
this one": `up` then starts nothing for that component, and everything that asks
stack_env() gets the external address. The same names are what the services' settings
read, so `env | grep RETARGET_` is the whole contract between the stack and the code.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit

from retarget.devstack.paths import HOST, KAFKA_PORT, POSTGRES_PORT, SMTP_PORT, kafka_node_ports
from retarget.devstack.seal_key import SEAL_KEY_ENV, seal_key_file

KAFKA_ENV = "RETARGET_KAFKA_BOOTSTRAP"
DATABASE_ENV = "RETARGET_DATABASE_URL"
SMTP_ENV = "RETARGET_SMTP_URL"

LOCAL_KAFKA = f"{HOST}:{KAFKA_PORT}"
LOCAL_DATABASE = f"postgresql://retarget@{HOST}:{POSTGRES_PORT}/retarget"
LOCAL_SMTP = f"smtp://{HOST}:{SMTP_PORT}"
_LOCAL = {KAFKA_ENV: LOCAL_KAFKA, DATABASE_ENV: LOCAL_DATABASE, SMTP_ENV: LOCAL_SMTP}
ENVIRONMENT_ENV = "RETARGET_ENVIRONMENT"
REPLICATION_ENV = "RETARGET_TOPIC_REPLICATION"
MIN_INSYNC_ENV = "RETARGET_TOPIC_MIN_INSYNC"


def local_brokers() -> int:
    """How many Kafka nodes the local stack was brought up with (`up --brokers`), 1 by default."""
    from retarget.devstack.state import load_state

    return int(load_state().get("kafka", {}).get("brokers") or 1)


def local_kafka(brokers: int | None = None) -> str:
    """Bootstrap list of the local Kafka: every node, so a client still starts with one down."""
    ports = kafka_node_ports(brokers or local_brokers())
    return ",".join(f"{HOST}:{port}" for port, _ in ports)


def override(name: str) -> str | None:
    """The external address the user set for a component, if any.

    Blank counts as unset, and so does the local stack's own address: test fixtures and
    shells export stack_env() into os.environ, and that must not turn the local stack
    into an "external" one that `up` then refuses to start.
    """
    value = os.environ.get(name, "").strip()
    local = {_LOCAL[name]} | ({local_kafka(1), local_kafka(3)} if name == KAFKA_ENV else set())
    return value if value and value not in local else None


def kafka_bootstrap() -> str:
    return override(KAFKA_ENV) or local_kafka()


def database_url() -> str:
    return override(DATABASE_ENV) or LOCAL_DATABASE


def smtp_url() -> str:
    return override(SMTP_ENV) or LOCAL_SMTP


def host_port(address: str, default_port: int) -> tuple[str, int]:
    """('host', port) of a URL or host:port; the first one of a comma separated list."""
    first = address.split(",")[0].strip()
    parts = urlsplit(first if "//" in first else f"//{first}")
    return parts.hostname or HOST, parts.port or default_port


def stack_env() -> dict[str, str]:
    """RETARGET_KAFKA_BOOTSTRAP, RETARGET_DATABASE_URL and RETARGET_SMTP_URL of the stack, its
    configuration seal key file (RETARGET_CONFIG_SEAL_KEY_FILE), RETARGET_ENVIRONMENT=development
    (the capture speaks plain SMTP, links are http; unless the environment says otherwise);
    on a local cluster (`up --brokers 3`) also the topics' replication (3) and min.insync (2),
    unless the environment already says otherwise.

    Merge it into a child process's environment (services, e2e tests, benchmarks):
        subprocess.Popen(argv, env={**os.environ, **stack_env()})
    """
    env = {KAFKA_ENV: kafka_bootstrap(), DATABASE_ENV: database_url(), SMTP_ENV: smtp_url()}
    env[SEAL_KEY_ENV] = os.environ.get(SEAL_KEY_ENV) or str(seal_key_file())  # seals DKIM keys in config
    env[ENVIRONMENT_ENV] = os.environ.get(ENVIRONMENT_ENV) or "development"
    if not override(KAFKA_ENV) and local_brokers() > 1:
        from retarget.devstack.kafka_config import replication_of

        replicas, min_insync = replication_of(local_brokers())
        for name, value in ((REPLICATION_ENV, replicas), (MIN_INSYNC_ENV, min_insync)):
            env[name] = os.environ.get(name) or str(value)
    return env
