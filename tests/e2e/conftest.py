"""Run services as separate processes, the way they run in production; shared e2e helpers."""

from __future__ import annotations

import email
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path

import asyncpg
import httpx
import pytest

from retarget.common.workspaces import Workspace, WorkspaceStore
from retarget.common.write_keys import WriteKeyStore


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Service:
    name: str
    process: subprocess.Popen
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def wait_healthy(self, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"{self.name} exited with {self.process.returncode}:\n{self.tail()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        pytest.fail(f"{self.name} not healthy after {timeout_s}s:\n{self.tail()}")

    def stop(self, timeout_s: float = 30) -> int:
        """SIGTERM, as an orchestrator would; the exit code tells whether shutdown was clean."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            pytest.fail(f"{self.name} ignored SIGTERM for {timeout_s}s:\n{self.tail()}")


@pytest.fixture
def launch(tmp_path: Path, stack: dict[str, str]) -> Iterator:
    started: list[Service] = []

    def _launch(name: str, port_var: str, env: dict[str, str]) -> Service:
        port = free_port()
        log = tmp_path / f"{name}.log"
        full_env = {**os.environ, **stack, **env, port_var: str(port)}
        process = subprocess.Popen(
            [sys.executable, "-m", f"retarget.{name}"],
            env=full_env,
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
        )
        service = Service(name, process, port, log)
        started.append(service)
        return service

    yield _launch
    for service in started:
        if service.process.poll() is None:
            service.process.kill()
            service.process.wait()


async def new_workspace(database_url: str, workspace_id: str) -> str:
    """A Boot Shop workspace; returns a new write key for it."""
    conn = await asyncpg.connect(database_url)
    try:
        await WorkspaceStore(conn).upsert(
            Workspace(
                id=workspace_id,
                name="Boot Shop",
                from_name="Boot Shop",
                from_email="news@boots.example",
                postal_address="1 Main St, Springfield",
            )
        )
        return await WriteKeyStore(conn).create(workspace_id)
    finally:
        await conn.close()


def mails_to(folder: Path, recipient: str) -> list[EmailMessage]:
    """The captured messages addressed to `recipient`, oldest first."""
    found = []
    for path in sorted(folder.glob("*.eml")):
        msg = email.message_from_bytes(path.read_bytes(), policy=default_policy)
        if recipient in str(msg["To"]):
            found.append(msg)  # type: ignore[arg-type]
    return found


def wait_for_mail(folder: Path, recipient: str, timeout_s: float) -> list[EmailMessage]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = mails_to(folder, recipient)
        if found:
            return found
        time.sleep(0.3)
    return []
