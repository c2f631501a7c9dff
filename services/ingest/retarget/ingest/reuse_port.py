"""Each worker process listens on its own SO_REUSEPORT socket, so the kernel spreads
connections over the workers.

uvicorn's supervisor hands every worker a copy of one listening socket; the workers then
race to accept, and the first one awake takes whole bursts of connections. With clients
that keep their connections (load balancers, SDK batching, wrk) one worker could end up
with nearly all of them: 0.2 s against 3.1 s of CPU in one benchmark run, ingest capped at
one core. With SO_REUSEPORT each worker has its own socket on the same address and Linux
hashes each new connection to one of them.

The supervisor still binds the addresses (with SO_REUSEPORT, never listening: a socket
that doesn't listen gets no connections), so a port already taken fails at start as
before — after first trying the port without SO_REUSEPORT, since two processes that both
set it may share a port: a second ingest (another checkout, a test) started on a port in
use would otherwise start fine and take half of the first one's connections. What it passes to the workers is a ReusePortSockets list, which a worker receives
not as copies of those sockets but as new ones bound to the same addresses (the list
pickles as its addresses: spawn pickles the sockets for each worker it starts, restarts
included).
"""

from __future__ import annotations

import socket
from typing import Any


def bind_reuse_port(host: str, port: int) -> socket.socket:
    """A TCP socket bound to (host, port) with SO_REUSEPORT, inheritable, not listening."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


def claim_port(host: str, port: int) -> socket.socket:
    """bind_reuse_port, failing (OSError: address in use) when anything holds the port."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn: TIME_WAIT is no owner
        probe.bind((host, port))
    return bind_reuse_port(host, port)


def _bound_again(addresses: list[tuple[str, int]]) -> list[socket.socket]:
    return [bind_reuse_port(host, port) for host, port in addresses]


class ReusePortSockets(list[socket.socket]):
    """Sockets that a worker process receives as its own sockets on the same addresses."""

    def __reduce__(self) -> tuple[Any, ...]:
        return _bound_again, ([sock.getsockname()[:2] for sock in self],)
