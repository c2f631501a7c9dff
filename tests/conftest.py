"""Fixtures every tier shares.

Integration and e2e tests talk to a real Kafka broker, PostgreSQL server and SMTP server.
Where they come from, in order:
1. RETARGET_KAFKA_BOOTSTRAP + RETARGET_DATABASE_URL + RETARGET_SMTP_URL all set: those.
2. RETARGET_TEST_STACK=containers (or no JDK here but a Docker engine answers):
   testcontainers starts Kafka and PostgreSQL (see retarget.devstack.containers).
3. Otherwise the local stack: `retarget devstack up` (idempotent; left running afterwards).
Unit tests use none of this.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

_OVERRIDES = ("RETARGET_KAFKA_BOOTSTRAP", "RETARGET_DATABASE_URL", "RETARGET_SMTP_URL")
# Tests run the development configuration (plain SMTP to the capture, http links); the checks of
# production's are tested by passing environment="production" explicitly.
os.environ.setdefault("RETARGET_ENVIRONMENT", "development")


# Files of the tests that run no sender, never touch the send log or the capture folder, and use
# the stack under their own topic prefixes and workspaces only.
_APART = (
    "tests/integration/segmenter/",
    "tests/integration/composer/",
    "tests/integration/stage/",
    "tests/integration/test_kafka_replication.py",
    "tests/integration/test_kafka_topic_cleanup.py",
    "tests/integration/test_workspace_link_domains_cli.py",
    # ingest's own processes and private brokers, under their own prefixes (moved here to
    # even the two groups' lengths: "stack" ran ~50% longer, and its length is the suite's)
    "tests/integration/ingest/test_ingest_fuzz.py",
    "tests/integration/ingest/test_browser_attack.py",
    "tests/integration/ingest/test_ingest_crash_points.py",
    "tests/integration/ingest/test_ingest_durability.py",
    "tests/integration/ingest/test_ingest_port_lock.py",
    "tests/integration/ingest/test_ingest_workers.py",
    "tests/integration/ingest/test_door.py",
    "tests/integration/config/",  # campaigns, templates, policies of their own workspaces
)


def stack_group(nodeid: str) -> str | None:
    """Which in-order group a test on the servers runs in under `--dist loadgroup`; None: a unit test.

    Two groups, each run in order on one worker, side by side: "apart" (above; the segmenter's
    tests are most of it, and mostly wait on worker start-up and due waits) and "stack", every
    other test on the servers — they share the send log and retry queue that any running sender
    sweeps, the capture folder, the devstack's state. The split keeps the two about even.
    """
    if nodeid.startswith("tests/unit/"):
        return None
    return "apart" if nodeid.startswith(_APART) else "stack"


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """`pytest -n 2 --dist loadgroup` (make test): the two groups above, unit tests by module
    wherever there is room. A scheduler, not xdist_group marks: xdist 3.8 marks a group by
    rewriting item._nodeid, which pytest 9 no longer reads, so the marks were silently ignored."""
    if config.getvalue("dist") != "loadgroup":
        return None  # xdist's own
    from xdist.scheduler import LoadScopeScheduling

    class ByWhatTheyShare(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return stack_group(nodeid) or super()._split_scope(nodeid)

    return ByWhatTheyShare(config, log)


def _local_stack() -> tuple[dict[str, str], Path]:
    from retarget.devstack.env import stack_env
    from retarget.devstack.paths import devstack_dir

    up = subprocess.run([sys.executable, "-m", "retarget.cli.main", "devstack", "up"], check=False)
    if up.returncode != 0:
        pytest.fail(
            "`retarget devstack up` failed (its output is above); the integration tests need the stack"
        )
    return stack_env(), devstack_dir() / "mail"


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """RETARGET_* variables of the real servers; also exported to os.environ for settings classes."""
    from retarget.devstack.containers import docker_available, start_containers

    stop = None
    capture_dir: Path | None = None
    if all(os.environ.get(name) for name in _OVERRIDES):
        env = {name: os.environ[name] for name in _OVERRIDES}
        capture_dir = (
            Path(os.environ["RETARGET_CAPTURE_DIR"]) if os.environ.get("RETARGET_CAPTURE_DIR") else None
        )
    elif os.environ.get("RETARGET_TEST_STACK") == "containers" or (
        shutil.which("java") is None and docker_available()
    ):
        capture_dir = tmp_path_factory.mktemp("mail")
        env, stop = start_containers(capture_dir)
    else:
        env, capture_dir = _local_stack()
    env = {**env, "RETARGET_ENVIRONMENT": os.environ["RETARGET_ENVIRONMENT"]}  # services the tests start
    os.environ.update(env)
    if capture_dir is not None:
        os.environ["RETARGET_CAPTURE_DIR"] = str(capture_dir)
    migrate = subprocess.run([sys.executable, "-m", "retarget.cli.main", "db", "migrate"], check=False)
    assert migrate.returncode == 0, "migrations failed (output above)"
    yield env
    if stop is not None:
        stop()  # the containers go, and their topics with them
    else:
        _delete_this_sessions_topics(env["RETARGET_KAFKA_BOOTSTRAP"])


_SESSION_PREFIXES: set[str] = set()


def _delete_this_sessions_topics(bootstrap: str) -> None:
    """The topics this session's tests made (a long-lived local broker slows down under
    thousands of leftover partitions). Best effort: a failure here fails no test."""
    import asyncio

    from retarget.common.kafka import delete_topics_with_prefixes

    try:
        asyncio.run(delete_topics_with_prefixes(bootstrap, _SESSION_PREFIXES))
    except Exception as exc:  # the broker is gone or slow: leave them, say so
        print(f"\nnote: this session's test topics were not deleted ({exc!r})", file=sys.stderr)


@pytest.fixture(scope="session")
def capture_dir(stack: dict[str, str]) -> Path:
    """Folder where the SMTP capture writes every message it receives (.eml + .json)."""
    folder = os.environ.get("RETARGET_CAPTURE_DIR")
    if not folder:
        pytest.skip("the SMTP server in RETARGET_SMTP_URL is external; its mailbox can't be read here")
    return Path(folder)


@pytest.fixture
def topic_prefix() -> str:
    """A fresh topic prefix per test, so tests never see each other's records on a shared broker."""
    prefix = f"t{uuid.uuid4().hex[:10]}"
    _SESSION_PREFIXES.add(prefix)
    return prefix


@pytest.fixture
def workspace_id() -> str:
    return f"ws-{uuid.uuid4().hex[:8]}"
