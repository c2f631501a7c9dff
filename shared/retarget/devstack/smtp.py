"""Start and stop the SMTP capture process (see smtp_capture.py for the server itself)."""

from __future__ import annotations

import sys

from retarget.devstack import procs
from retarget.devstack.env import SMTP_ENV
from retarget.devstack.listening import spawn_listening, stop_listening
from retarget.devstack.paths import HOST, SMTP_PORT, Layout

MARKER = "retarget.devstack.smtp_capture"


def running_pid(layout: Layout) -> int | None:
    pid = procs.read_pid(layout.smtp_pid)
    return pid if procs.alive(pid, MARKER) else None


async def start(layout: Layout) -> tuple[int, bool]:
    """Start the capture unless it runs; returns (pid, started_now) once it accepts connections."""
    pid = running_pid(layout)
    if pid is not None:
        return pid, False
    procs.ensure_port_free(HOST, SMTP_PORT, "the SMTP capture", SMTP_ENV)
    argv = [
        sys.executable,
        "-m",
        MARKER,
        "--dir",
        str(layout.mail_dir),
        "--host",
        HOST,
        "--port",
        str(SMTP_PORT),
    ]
    pid = await spawn_listening(
        argv,
        name="the SMTP capture",
        port=SMTP_PORT,
        log_file=layout.smtp_log,
        pid_file=layout.smtp_pid,
        cwd=layout.root,
        fix=f"or set {SMTP_ENV} to use another server",
        timeout=15,
    )
    return pid, True


def stop(layout: Layout) -> str:
    return stop_listening("smtp", running_pid(layout), layout.smtp_pid)
