"""One ingest per port: an advisory lock that says a port is taken while nothing listens yet.

A multi-worker ingest's supervisor binds its ports with SO_REUSEPORT and never listens; its
workers listen only after their startup (Kafka connect, seconds). In that window a second
ingest's probe (reuse_port.claim_port) finds no listener, binds with SO_REUSEPORT too, and
both would serve the port, each taking part of the connections. So whoever claims a port
also takes an exclusive flock on a file named after it, and keeps the file open as long as
it holds the port. flock is released by the kernel when the holder dies (kill -9 included),
so a crash leaves no stale owner; the file itself stays (removing it would race with a
claimant that has just opened it), empty but for the last owner's pid.

The lock is keyed on the port alone: two ingests on one port with different hosts
(127.0.0.1 and 0.0.0.0) would conflict at listen anyway, and a port is what operators choose.

Why not let the supervisor listen instead: a listening SO_REUSEPORT socket joins the group
the kernel spreads connections over, and the supervisor never accepts, so its share of the
connections would hang.
"""

from __future__ import annotations

import errno
import fcntl
import os
import tempfile
from pathlib import Path
from typing import BinaryIO


class PortTaken(OSError):
    """Another process owns the port; the message names it and says what to do."""

    def __init__(self, port: int, owner: str) -> None:
        super().__init__(
            errno.EADDRINUSE,
            f"port {port} is taken by {owner}: stop it, or choose a free port "
            "(RETARGET_PORT, RETARGET_INGEST_OPS_PORT)",
        )


class LockFileUnusable(OSError):
    """The port's lock file can't be opened: its folder is missing or not this user's to write."""

    def __init__(self, path: Path, why: OSError) -> None:
        super().__init__(
            why.errno,
            f"can't open the port lock {path} ({why.strerror}): set XDG_RUNTIME_DIR to a folder "
            "this user can write",
        )


def lock_path(port: int) -> Path:
    """Per user when the session has a runtime dir (SO_REUSEPORT only joins sockets of one user)."""
    folder = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    return Path(folder) / f"retarget-ingest-{port}.lock"


def lock_port(port: int) -> BinaryIO:
    """The port's lock file, locked; the lock lasts while the file is open (close() frees it)."""
    path = lock_path(port)
    try:
        held = os.fdopen(os.open(path, os.O_RDWR | os.O_CREAT, 0o644), "r+b", buffering=0)
    except OSError as exc:
        raise LockFileUnusable(path, exc) from None
    try:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # NB: a second ingest fails, never waits
    except BlockingIOError:
        owner = held.read(32).decode(errors="replace").strip() or "?"
        held.close()
        raise PortTaken(port, f"another ingest (pid {owner}, lock file {path})") from None
    held.truncate(0)
    held.write(f"{os.getpid()}\n".encode())  # for the next claimant's message
    return held
