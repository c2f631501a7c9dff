"""Where things live: the repo, the .devstack data folder, the jar cache, the ports.

Everything is computed at call time (never at import), so a test or a shell that sets
RETARGET_DEVSTACK_DIR / RETARGET_CACHE_DIR after import still gets its own folders.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from retarget.devstack.errors import DevstackError

HOST = "127.0.0.1"
KAFKA_PORT = 19092
KAFKA_CONTROLLER_PORT = 19093
POSTGRES_PORT = 15432
SMTP_PORT = 12525
PROMETHEUS_PORT = 19090


def kafka_node_ports(brokers: int) -> list[tuple[int, int]]:
    """(broker port, controller port) of each local Kafka node: 19092/19093, 19094/19095, …

    RETARGET_DEVSTACK_KAFKA_PORT moves them (a second stack's Kafka beside a running one:
    the tests of `up --brokers 3`).
    """
    base = int(os.environ.get("RETARGET_DEVSTACK_KAFKA_PORT") or KAFKA_PORT)
    offset = KAFKA_CONTROLLER_PORT - KAFKA_PORT
    return [(base + 2 * n, base + offset + 2 * n) for n in range(brokers)]


_POM = Path("deploy") / "kafka" / "pom.xml"


def repo_root() -> Path:
    """The checkout this code runs from (dev installs), else the nearest one above cwd.

    shared/retarget/devstack/paths.py sits three folders below the root; a wheel
    install has no deploy/ next to it, so fall back to searching from the cwd.
    """
    cwd = Path.cwd().resolve()
    for candidate in (Path(__file__).resolve().parents[3], cwd, *cwd.parents):
        if (candidate / _POM).is_file():
            return candidate
    raise DevstackError(
        "cannot find the retarget repository (no deploy/kafka/pom.xml here or above)",
        "run `retarget devstack` from inside the retarget checkout",
    )


def devstack_dir() -> Path:
    override = os.environ.get("RETARGET_DEVSTACK_DIR")
    return Path(override).expanduser().resolve() if override else repo_root() / ".devstack"


def cache_dir() -> Path:
    """Root of downloaded artefacts, shared by every checkout on the machine."""
    override = os.environ.get("RETARGET_CACHE_DIR")
    if override:
        return Path(override).expanduser().resolve()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "retarget"


@dataclass(frozen=True)
class Layout:
    """Every file the stack writes, derived from one root so nothing is hard-coded twice."""

    root: Path

    @classmethod
    def current(cls) -> Layout:
        return cls(devstack_dir())

    # shared
    @property
    def state_file(self) -> Path:
        return self.root / "state.json"

    @property
    def lock_file(self) -> Path:
        return self.root / "state.lock"

    @property
    def logs_dir(self) -> Path:
        return self.root / "logs"

    @property
    def run_dir(self) -> Path:
        return self.root / "run"

    # kafka
    @property
    def kafka_dir(self) -> Path:
        return self.root / "kafka"

    @property
    def kafka_data(self) -> Path:
        return self.kafka_dir / "data"

    @property
    def kafka_config(self) -> Path:
        return self.kafka_dir / "server.properties"

    @property
    def kafka_log(self) -> Path:
        return self.kafka_dir / "server.log"

    @property
    def kafka_console_log(self) -> Path:
        return self.kafka_dir / "console.log"

    @property
    def kafka_pid(self) -> Path:
        return self.run_dir / "kafka.pid"

    # postgres
    @property
    def pg_dir(self) -> Path:
        return self.root / "postgres"

    @property
    def pg_data(self) -> Path:
        return self.pg_dir / "data"

    @property
    def pg_log(self) -> Path:
        return self.pg_dir / "postgres.log"

    # smtp capture
    @property
    def mail_dir(self) -> Path:
        return self.root / "mail"

    @property
    def smtp_log(self) -> Path:
        return self.logs_dir / "smtp-capture.log"

    @property
    def smtp_pid(self) -> Path:
        return self.run_dir / "smtp-capture.pid"

    # prometheus
    @property
    def prometheus_data(self) -> Path:
        return self.root / "prometheus"

    @property
    def prometheus_log(self) -> Path:
        return self.logs_dir / "prometheus.log"

    @property
    def prometheus_pid(self) -> Path:
        return self.run_dir / "prometheus.pid"

    def service_log(self, name: str) -> Path:
        return self.logs_dir / f"{name}.log"

    def ensure(self) -> None:
        for folder in (self.root, self.logs_dir, self.run_dir, self.kafka_dir, self.pg_dir, self.mail_dir):
            folder.mkdir(parents=True, exist_ok=True)
