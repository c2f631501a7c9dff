"""Run services as separate processes, the way they run in production; shared e2e helpers."""

from __future__ import annotations

import email
import time
from collections.abc import Iterator
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from retarget.common.workspaces import Workspace, WorkspaceStore
from retarget.common.write_keys import WriteKeyStore
from retarget.devstack.child import Child, free_port, start_child


class Service(Child):
    def wait_healthy(self, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.exited() is not None:
                pytest.fail(f"{self.name} exited with {self.process.returncode}:\n{self.tail()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        pytest.fail(f"{self.name} not healthy after {timeout_s}s:\n{self.tail()}")


def start_service(
    stack: dict[str, str],
    folder: Path,
    name: str,
    port_var: str,
    env: dict[str, str],
    *,
    port: int | None = None,
    module: str | None = None,
) -> Service:
    """`python -m retarget.<name>` (or `module`) as a process on a free port, logging into `folder`."""
    port = port or free_port()
    if name == "ingest":  # its ops port too, or parallel runs would collide on the default
        env = {"RETARGET_INGEST_OPS_PORT": str(free_port()), **env}
    child = start_child(
        name,
        module or f"retarget.{name}",
        env={**stack, **env, port_var: str(port)},
        port=port,
        log=folder / f"{name}.log",
        cwd=folder,
    )
    return Service(child.name, child.process, child.port, child.log)


def kill_all(started: list[Service]) -> None:
    for service in started:
        if service.process.poll() is None:
            service.process.kill()
            service.process.wait()


@pytest.fixture
def launch(tmp_path: Path, stack: dict[str, str]) -> Iterator:
    started: list[Service] = []

    def _launch(name: str, port_var: str, env: dict[str, str]) -> Service:
        started.append(start_service(stack, tmp_path, name, port_var, env))
        return started[-1]

    yield _launch
    kill_all(started)


async def new_workspace(database_url: str, workspace_id: str, **fields: Any) -> str:
    """A Boot Shop workspace (`fields` override Workspace's defaults); returns a new write key."""
    conn = await asyncpg.connect(database_url)
    try:
        await WorkspaceStore(conn).upsert(
            Workspace(
                id=workspace_id,
                name="Boot Shop",
                from_name="Boot Shop",
                from_email="news@boots.example",
                postal_address="1 Main St, Springfield",
                **fields,
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
