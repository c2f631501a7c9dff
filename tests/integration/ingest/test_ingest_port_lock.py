"""One ingest per port, as processes (`python -m retarget.ingest`; port_lock.py, reuse_port.py).

A first ingest is held in its starting window: its supervisor has claimed the ports, its two
workers wait for a Kafka that never answers (a port nobody listens on), so nothing listens.
That is when the old probe let a second ingest share the port. Here the second one, started
against the real stack, must exit at once with a message naming the port; and once the first
is killed with SIGKILL (every process of it, as a container kill or the OOM killer does), a
new one starts on the same ports: the kernel dropped the lock, nothing stale is left.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from retarget.ingest.port_lock import lock_path
from retarget.ingest.settings import IngestSettings
from tests.integration.ingest.conftest import free_port, ops_url

pytestmark = pytest.mark.integration

DEADLINE_S = 120  # generous: the machine is shared and loaded


@pytest.fixture(autouse=True)
def lock_files_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Port locks go to XDG_RUNTIME_DIR: the test's folder (the ingests inherit it)."""
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))


def launch(settings: IngestSettings, log: Path, *, workers: int, **env: str) -> subprocess.Popen[bytes]:
    """An ingest in its own session, so a test can SIGKILL all of its processes at once."""
    environment = {
        **os.environ,
        "RETARGET_TOPIC_PREFIX": settings.topic_prefix,
        "RETARGET_TOPIC_PARTITIONS": str(settings.topic_partitions),
        "RETARGET_PORT": str(settings.port),
        "RETARGET_INGEST_OPS_PORT": str(settings.ingest_ops_port),
        "RETARGET_WORKERS": str(workers),
        "RETARGET_LOG_LEVEL": "WARNING",
        **env,
    }
    return subprocess.Popen(
        [sys.executable, "-m", "retarget.ingest"],
        env=environment,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def launch_still_starting(settings: IngestSettings, tmp_path: Path) -> subprocess.Popen[bytes]:
    """A 2-worker ingest whose workers wait for Kafka (10 minutes): its ports claimed, none listened on."""
    first = launch(
        settings,
        tmp_path / "first.log",
        workers=2,
        RETARGET_KAFKA_BOOTSTRAP=f"127.0.0.1:{free_port()}",
        RETARGET_KAFKA_CONNECT_WAIT_S="600",
    )
    deadline = time.monotonic() + DEADLINE_S
    try:
        while len(workers_of(first)) < 2:  # the supervisor claims its ports before it spawns them
            assert first.poll() is None, (tmp_path / "first.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "the first ingest never started its workers"
            time.sleep(0.2)
    except BaseException:
        kill_all_of(first)
        raise
    return first


def workers_of(process: subprocess.Popen[bytes]) -> list[psutil.Process]:
    children = psutil.Process(process.pid).children()
    return [p for p in children if "resource_tracker" not in " ".join(p.cmdline())]


def lock_names(port: int, pid: int) -> bool:
    """The port's lock file names pid: that process took the lock (written only once locked)."""
    path = lock_path(port)
    return path.exists() and path.read_text().strip() == str(pid)


def listeners_on(port: int) -> list[int]:
    return [
        c.pid for c in psutil.net_connections(kind="tcp") if c.laddr.port == port and c.status == "LISTEN"
    ]


def kill_all_of(process: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)  # the supervisor and its workers, no goodbyes
    except ProcessLookupError:
        pass
    process.wait(DEADLINE_S)


def test_a_second_ingest_on_the_ports_of_one_still_starting_exits_at_once_saying_why(
    ingest_settings: IngestSettings, tmp_path: Path
) -> None:
    first = launch_still_starting(ingest_settings, tmp_path)
    try:
        assert listeners_on(ingest_settings.port) == [], "the first ingest must still be starting"
        for workers in (2, 1):  # a supervisor's claim, and a one-process ingest's lock
            log = tmp_path / f"second-{workers}.log"
            second = launch(ingest_settings, log, workers=workers)
            try:
                exit_code = second.wait(DEADLINE_S)  # a lock that waited would never exit
            finally:
                kill_all_of(second)
            said = log.read_text()
            assert exit_code == 2, said
            assert f"port {ingest_settings.port} is taken by another ingest (pid {first.pid}," in said
            assert "stop it, or choose a free port (RETARGET_PORT, RETARGET_INGEST_OPS_PORT)" in said
            assert "Traceback" not in said
        assert first.poll() is None and listeners_on(ingest_settings.port) == []
    finally:
        kill_all_of(first)


def test_after_an_ingest_is_killed_a_new_one_starts_on_its_ports(
    ingest_settings: IngestSettings, tmp_path: Path
) -> None:
    first = launch_still_starting(ingest_settings, tmp_path)
    try:
        assert lock_names(ingest_settings.port, first.pid), "the first ingest must hold the port's lock"
    finally:
        kill_all_of(first)
    again = launch(ingest_settings, tmp_path / "again.log", workers=2)
    try:
        deadline = time.monotonic() + DEADLINE_S
        while not _ready(ingest_settings):
            assert again.poll() is None, (tmp_path / "again.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "the new ingest was not ready in time"
            time.sleep(0.3)
        assert lock_names(ingest_settings.port, again.pid)
        assert httpx.get(f"http://127.0.0.1:{ingest_settings.port}/healthz", timeout=10).status_code == 200
    finally:
        again.terminate()
        try:
            exit_code = again.wait(DEADLINE_S)
        finally:
            kill_all_of(again)  # whatever is left of it, if it did not stop
    assert exit_code == 0, (tmp_path / "again.log").read_text()[-2000:]


def _ready(settings: IngestSettings) -> bool:
    try:
        return httpx.get(f"{ops_url(settings)}/readyz", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def test_an_ingest_that_cannot_open_its_lock_file_says_where_and_what_to_do(
    ingest_settings: IngestSettings, tmp_path: Path
) -> None:
    log = tmp_path / "ingest.log"
    process = launch(ingest_settings, log, workers=2, XDG_RUNTIME_DIR=str(tmp_path / "gone"))
    try:
        exit_code = process.wait(DEADLINE_S)
    finally:
        kill_all_of(process)
    said = log.read_text()
    assert exit_code == 2, said
    assert f"can't open the port lock {tmp_path / 'gone'}/retarget-ingest-{ingest_settings.port}.lock" in said
    assert "set XDG_RUNTIME_DIR to a folder this user can write" in said and "Traceback" not in said


@pytest.mark.parametrize("workers", [1, 2])
def test_a_second_ingest_on_the_ports_of_a_running_one_process_ingest_exits_2_saying_why(
    ingest_settings: IngestSettings, tmp_path: Path, workers: int
) -> None:
    """The plainest case: `python -m retarget.ingest` twice. The one-process ingest bound its
    sockets before it took its locks, so the second one died in uvicorn's bind with exit 3 and
    "[Errno 98] Address already in use", naming no port and no way out."""
    first = launch(ingest_settings, tmp_path / "first.log", workers=1)
    try:
        deadline = time.monotonic() + DEADLINE_S
        while not _ready(ingest_settings):
            assert first.poll() is None, (tmp_path / "first.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "the first ingest was not ready in time"
            time.sleep(0.3)
        log = tmp_path / "second.log"
        second = launch(ingest_settings, log, workers=workers)
        try:
            exit_code = second.wait(DEADLINE_S)
        finally:
            kill_all_of(second)
        said = log.read_text()
        assert exit_code == 2, said
        # a one-process ingest finds the first one's lock; a supervisor's probe its listener first
        owner = f"another ingest (pid {first.pid}," if workers == 1 else "a process listening on it"
        assert f"port {ingest_settings.port} is taken by {owner}" in said
        assert "Traceback" not in said and first.poll() is None
    finally:
        kill_all_of(first)
