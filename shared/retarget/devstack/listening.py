"""Start a helper server process and wait until it listens: the SMTP capture and Prometheus
both start this way, and fail the same way (stop it, show its log, say what to do)."""

from __future__ import annotations

import time
from pathlib import Path

from retarget.devstack import procs
from retarget.devstack.errors import DevstackError
from retarget.devstack.paths import HOST
from retarget.devstack.progress import wait_until


async def spawn_listening(
    argv: list[str],
    *,
    name: str,
    port: int,
    log_file: Path,
    pid_file: Path,
    cwd: Path,
    fix: str,
    timeout: float = 30,
) -> int:
    """Spawn `argv`, record its pid, wait for HOST:port; on failure stop it and raise."""
    pid = procs.spawn(argv, log_file=log_file, cwd=cwd)
    procs.write_pid(pid_file, pid)

    async def listening() -> bool:
        return procs.port_open(HOST, port, timeout=0.2)

    took = await wait_until(
        listening,
        what=f"{name}: waiting",
        timeout=timeout,
        interval=0.1,
        gave_up=lambda: not procs.alive(pid),
    )
    if took is None:
        procs.stop(pid, timeout=5)
        pid_file.unlink(missing_ok=True)  # noqa: ASYNC240 - a one-off on the failure path
        raise DevstackError(
            f"{name} did not start on {HOST}:{port}",
            f"read {log_file} (last lines above), {fix}",
            details=procs.tail(log_file),
        )
    return pid


def stop_listening(name: str, pid: int | None, pid_file: Path) -> str:
    """Stop a process started by spawn_listening (None: it isn't running); forget its pid."""
    pid_file.unlink(missing_ok=True)
    if pid is None:
        return f"{name}: not running"
    started = time.monotonic()
    procs.stop(pid, timeout=10)
    return f"{name}: stopped (pid {pid}, {time.monotonic() - started:.1f}s)"
