"""Process and port helpers: start detached, check alive, stop politely, read logs.

Stack processes outlive the `retarget` command that starts them, so they run in their
own session (a Ctrl-C in the shell does not reach them) and are found again later by
pid plus a check that the pid still belongs to the same program (pids get reused).
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import psutil

from retarget.devstack.errors import DevstackError


def alive(pid: int | None, marker: str | None = None, create_time: float | None = None) -> bool:
    """True when `pid` runs and is still our process (cmdline holds `marker`, same start time)."""
    if not pid:
        return False
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        if create_time is not None and abs(proc.create_time() - create_time) > 1.0:
            return False
        return marker is None or marker in " ".join(proc.cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def create_time(pid: int) -> float | None:
    with contextlib.suppress(psutil.Error):
        return psutil.Process(pid).create_time()
    return None


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """Something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def listener(port: int) -> psutil.Process | None:
    """The process listening on `port`, when the OS lets us see it."""
    with contextlib.suppress(psutil.Error, OSError):
        for conn in psutil.net_connections(kind="tcp"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port and conn.pid:
                return psutil.Process(conn.pid)
    return None


def describe_listener(port: int) -> str:
    proc = listener(port)
    if proc is None:
        return "another program"
    with contextlib.suppress(psutil.Error):
        command = " ".join(" ".join(proc.cmdline()).split())  # one line, even for `python -c` scripts
        return f"pid {proc.pid} ({command[:100]})"
    return f"pid {proc.pid}"


def ensure_port_free(host: str, port: int, component: str, override_env: str | None = None) -> None:
    """Fail early, naming the port and the squatter, instead of a cryptic bind error later."""
    if not port_open(host, port):
        return
    fix = f"stop {describe_listener(port)} which holds {host}:{port}"
    if override_env:
        fix += f", or set {override_env} to use what runs there instead of starting {component}"
    raise DevstackError(f"cannot start {component}: port {host}:{port} is already in use", fix)


def spawn(
    argv: Sequence[str],
    *,
    log_file: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> int:
    """Start argv detached (own session, stdin closed, output appended to log_file)."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "ab") as log:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
        )
    # The child is meant to outlive this Popen object, whose finaliser would otherwise
    # warn "subprocess still running"; stop() reaps it if it is still our child then.
    proc.returncode = 0
    return proc.pid


def _wait_gone(proc: psutil.Process, timeout: float) -> bool:
    """Wait for exit; a zombie counts as gone (PID 1 of a container may reap it late)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            proc.wait(timeout=0)  # reaps it when it is our own child
            return True
        except psutil.TimeoutExpired:
            pass
        except psutil.NoSuchProcess:
            return True
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


def stop(pid: int, *, timeout: float) -> bool:
    """SIGTERM, wait up to `timeout` s, then SIGKILL. True when it exited on SIGTERM.

    Children (e.g. uvicorn workers) are collected first so none outlives its parent.
    """
    try:
        proc = psutil.Process(pid)
        children = proc.children(recursive=True)
        proc.terminate()
    except psutil.NoSuchProcess:
        return True
    clean = _wait_gone(proc, timeout)
    if not clean:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
        _wait_gone(proc, 5)
    for child in children:
        if not _wait_gone(child, 2):
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()
    return clean


def tail(path: Path, lines: int = 20) -> str:
    """The last lines of a log file (empty text when it does not exist yet)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 64 * 1024))
            text = f.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def read_pid(path: Path) -> int | None:
    with contextlib.suppress(FileNotFoundError, ValueError):
        return int(path.read_text().split()[0])
    return None


def write_pid(path: Path, pid: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{pid}\n")
