"""A service run as a child process for a test or a benchmark: started on a free port with its
output in a log file, stopped with SIGTERM as an orchestrator would (the exit code tells
whether the shutdown was clean), killed with SIGKILL to simulate a crash.

Unlike retarget.devstack.services (long-lived, recorded in the stack's state for `status`),
these children belong to whoever started them and leave no trace.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Child:
    name: str
    process: subprocess.Popen
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def exited(self) -> int | None:
        return self.process.poll()

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, timeout_s: float = 30) -> int:
        """SIGTERM; the exit code. Raises TimeoutError (after a SIGKILL) if it ignored SIGTERM."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill9()
            raise TimeoutError(f"{self.name} ignored SIGTERM for {timeout_s}s:\n{self.tail()}") from None

    def kill9(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)


def start_child(name: str, module: str, *, env: dict[str, str], port: int, log: Path, cwd: Path) -> Child:
    """`python -m module` with os.environ + `env`; stdout and stderr to `log`."""
    process = subprocess.Popen(
        [sys.executable, "-m", module],
        env={**os.environ, **env},
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        cwd=cwd,
    )
    return Child(name, process, port, log)
