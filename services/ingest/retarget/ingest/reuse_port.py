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
use would otherwise start fine and take half of the first one's connections. That probe
only sees listeners, and an ingest whose workers are still starting has none yet, so the
supervisor also holds the port's lock (port_lock.py) while its socket is open.
What it passes to the workers is a ReusePortSockets list, which a worker receives
not as copies of those sockets but as new ones bound to the same addresses (the list
pickles as its addresses: spawn pickles the sockets for each worker it starts, restarts
included).
"""

from __future__ import annotations

import errno
import socket
from typing import Any, BinaryIO, TypeVar

from retarget.ingest.port_lock import PortTaken, lock_port

_Socket = TypeVar("_Socket", bound=socket.socket)


def bind_reuse_port(host: str, port: int) -> socket.socket:
    """A TCP socket bound to (host, port) with SO_REUSEPORT, inheritable, not listening."""
    return _bound_with_reuse_port(socket.socket(_family(host), socket.SOCK_STREAM), host, port)


def _bound_with_reuse_port(sock: _Socket, host: str, port: int) -> _Socket:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


class ClaimedSocket(socket.socket):
    """The supervisor's socket on a port, holding the port's lock until it is closed."""

    port_lock: BinaryIO | None = None

    def close(self) -> None:
        super().close()
        if self.port_lock is not None:
            self.port_lock.close()


def claim_port(host: str, port: int) -> socket.socket:
    """bind_reuse_port, failing (PortTaken, an OSError) when anything holds the port: a
    listener of any process, or another ingest that has claimed it and is still starting."""
    with socket.socket(_family(host), socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn: TIME_WAIT is no owner
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            raise PortTaken(port, "a process listening on it") from None
    sock = _bound_with_reuse_port(ClaimedSocket(_family(host), socket.SOCK_STREAM), host, port)
    # locked on the bound port, so port 0 (the kernel's choice) is locked too; refusing after
    # the bind is as safe as before it, since this socket never listens
    try:
        sock.port_lock = lock_port(sock.getsockname()[1])
    except BaseException:
        sock.close()
        raise
    return sock


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _bound_again(addresses: list[tuple[str, int]]) -> list[socket.socket]:
    return [bind_reuse_port(host, port) for host, port in addresses]


class ReusePortSockets(list[socket.socket]):
    """Sockets that a worker process receives as its own sockets on the same addresses."""

    def __reduce__(self) -> tuple[Any, ...]:
        return _bound_again, ([sock.getsockname()[:2] for sock in self],)
