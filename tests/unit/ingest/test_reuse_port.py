"""Per-worker SO_REUSEPORT sockets (reuse_port.py): a worker gets its own socket on the same
address, and a port someone holds is refused, as without SO_REUSEPORT — a listener, or an
ingest still starting (its port lock, port_lock.py). The processes' side (a real second
ingest, kill -9) is tests/integration/ingest/test_ingest_port_lock.py."""

from __future__ import annotations

import os
import pickle
import socket
from pathlib import Path

import pytest

from retarget.ingest.port_lock import LockFileUnusable, PortTaken
from retarget.ingest.reuse_port import ReusePortSockets, claim_port


@pytest.fixture(autouse=True)
def lock_files_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Port locks go to XDG_RUNTIME_DIR: here the test's folder, not the machine's."""
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))


def test_a_worker_receives_its_own_socket_bound_to_the_same_address() -> None:
    claimed = ReusePortSockets([claim_port("127.0.0.1", 0)])
    received = pickle.loads(pickle.dumps(claimed))  # what spawn does for each worker
    try:
        assert [s.getsockname() for s in received] == [s.getsockname() for s in claimed]
        assert received[0].fileno() != claimed[0].fileno()
        received[0].listen()  # a socket of its own, in the same SO_REUSEPORT group
        with socket.create_connection(received[0].getsockname(), timeout=5):
            connection, _ = received[0].accept()
            connection.close()
    finally:
        for sock in [*claimed, *received]:
            sock.close()


def test_a_port_a_running_ingest_holds_is_refused() -> None:
    claimed = ReusePortSockets([claim_port("127.0.0.1", 0)])
    (worker,) = pickle.loads(pickle.dumps(claimed))
    worker.listen()
    try:  # both would set SO_REUSEPORT: without the probe, a second ingest would share the port
        with pytest.raises(OSError):
            claim_port("127.0.0.1", worker.getsockname()[1]).close()
    finally:
        worker.close()
        claimed[0].close()


def test_a_port_a_plain_listener_holds_is_refused() -> None:
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        with pytest.raises(OSError):
            claim_port("127.0.0.1", other.getsockname()[1]).close()


def test_a_port_an_ingest_is_still_starting_on_is_refused() -> None:
    claimed = ReusePortSockets([claim_port("127.0.0.1", 0)])  # its workers are not listening yet
    try:
        with pytest.raises(OSError):
            claim_port("127.0.0.1", claimed[0].getsockname()[1]).close()
    finally:
        claimed[0].close()


@pytest.mark.timeout(30)  # a lock that waited instead of failing would hang here
def test_the_refusal_names_the_port_its_owner_and_what_to_do() -> None:
    claimed = claim_port("127.0.0.1", 0)
    port = claimed.getsockname()[1]
    try:
        with pytest.raises(PortTaken) as refused:
            claim_port("127.0.0.1", port)
        message = refused.value.strerror
        assert f"port {port} is taken by another ingest (pid {os.getpid()}," in message
        assert "stop it, or choose a free port (RETARGET_PORT, RETARGET_INGEST_OPS_PORT)" in message
    finally:
        claimed.close()


def test_a_foreign_listener_is_named_as_such() -> None:
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        with pytest.raises(PortTaken, match=r"is taken by a process listening on it"):
            claim_port("127.0.0.1", other.getsockname()[1])


def test_a_closed_claim_frees_the_port_for_the_next_ingest() -> None:
    first = claim_port("127.0.0.1", 0)
    port = first.getsockname()[1]
    first.close()  # the supervisor's end: its lock goes with its socket
    claim_port("127.0.0.1", port).close()


def test_the_lock_is_the_port_s_whatever_the_host() -> None:
    claimed = claim_port("0.0.0.0", 0)  # all addresses, still starting
    try:
        with pytest.raises(PortTaken, match="another ingest"):
            claim_port("127.0.0.1", claimed.getsockname()[1])
    finally:
        claimed.close()


def test_a_lock_folder_that_is_missing_is_named_with_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "gone"))  # a stale session's folder
    with pytest.raises(LockFileUnusable) as refused:
        claim_port("127.0.0.1", 0)
    assert f"can't open the port lock {tmp_path / 'gone'}/retarget-ingest-" in refused.value.strerror
    assert "set XDG_RUNTIME_DIR to a folder this user can write" in refused.value.strerror
