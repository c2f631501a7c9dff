"""Per-worker SO_REUSEPORT sockets (reuse_port.py): a worker gets its own socket on the same
address, and a port someone holds is refused, as without SO_REUSEPORT."""

from __future__ import annotations

import pickle
import socket

import pytest

from retarget.ingest.reuse_port import ReusePortSockets, claim_port


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


@pytest.mark.xfail(
    strict=True,
    reason="atk19 defect: while an ingest starts, its supervisor has bound the port (SO_REUSEADDR + "
    "SO_REUSEPORT, not listening) and its workers listen only after their startup (Kafka connect, "
    "seconds); a second ingest started then passes the probe (two SO_REUSEADDR sockets, neither "
    "listening, may share a port on Linux), binds with SO_REUSEPORT too, and both serve the port, "
    "each taking part of the connections. Needs an owner check that does not rely on a listener "
    "(a lock beside the port, or the supervisor listening itself).",
)
def test_a_port_an_ingest_is_still_starting_on_is_refused() -> None:
    claimed = ReusePortSockets([claim_port("127.0.0.1", 0)])  # its workers are not listening yet
    try:
        with pytest.raises(OSError):
            claim_port("127.0.0.1", claimed[0].getsockname()[1]).close()
    finally:
        claimed[0].close()
