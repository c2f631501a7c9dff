"""Run retarget services as detached processes next to the stack, recorded in state.json.

Used by the demo and the e2e tests: start_service() spawns, records and waits for
GET /healthz; stop_service() and `retarget devstack down` stop them again, even from
another process, because everything needed (pid, start time) is in the state file.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from retarget.devstack import procs
from retarget.devstack.env import stack_env
from retarget.devstack.errors import DevstackError
from retarget.devstack.paths import HOST, Layout, repo_root
from retarget.devstack.state import load_state, update_state

STOP_TIMEOUT = 20.0


def _running(record: Mapping[str, Any]) -> bool:
    return procs.alive(record.get("pid"), create_time=record.get("create_time"))


def _healthy(http: str) -> bool:
    try:
        return httpx.get(f"{http}/healthz", timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def list_services(layout: Layout | None = None) -> dict[str, dict[str, Any]]:
    """Recorded services by name, each with a live `running` flag."""
    services = load_state(layout).get("services", {})
    return {name: {**record, "running": _running(record)} for name, record in services.items()}


def start_service(
    name: str,
    argv: Sequence[str],
    *,
    http_port: int,
    metrics_port: int | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 30.0,
    layout: Layout | None = None,
) -> dict[str, Any]:
    """Start `argv` as service `name`, wait for GET http://127.0.0.1:<http_port>/healthz == 200.

    The child gets os.environ + stack_env() + `env`; output goes to .devstack/logs/<name>.log.
    Calling it again with the same argv while the service runs returns the running one.
    Blocking (it polls); from async code use `await asyncio.to_thread(start_service, …)`.
    """
    layout = layout or Layout.current()
    layout.ensure()
    existing = load_state(layout)["services"].get(name)
    if existing and _running(existing):
        if existing.get("argv") == list(argv):
            return existing
        raise DevstackError(
            f"service {name} already runs (pid {existing['pid']}) with another command line",
            f"stop it first (stop_service({name!r}) or `retarget devstack down`), or pick another name",
        )
    for port in (http_port, metrics_port):
        if port is not None:
            procs.ensure_port_free(HOST, port, f"service {name}")
    log = layout.service_log(name)
    child_env = {**os.environ, **stack_env(), "PYTHONUNBUFFERED": "1", **(env or {})}
    pid = procs.spawn(argv, log_file=log, env=child_env, cwd=cwd or repo_root())
    http = f"http://{HOST}:{http_port}"
    record = {
        "name": name,
        "pid": pid,
        "create_time": procs.create_time(pid),
        "argv": list(argv),
        "http": http,
        "metrics": f"http://{HOST}:{metrics_port}/metrics" if metrics_port else None,
        "log": str(log),
        "started_at": datetime.now(UTC).isoformat(),
    }
    # Recorded before the health wait, so `down` can clean up even if this caller dies now.
    update_state(lambda s: s["services"].__setitem__(name, record), layout)
    deadline = time.monotonic() + timeout
    while not _healthy(http):
        if not procs.alive(pid) or time.monotonic() > deadline:
            exited = not procs.alive(pid)
            stop_service(name, layout=layout)
            raise DevstackError(
                f"service {name} {'exited' if exited else f'did not answer {http}/healthz within {timeout:.0f}s'}",
                f"read {log} (last 20 lines above) and fix the service or its settings",
                details=procs.tail(log, 20),
            )
        time.sleep(0.2)
    return record


def stop_service(name: str, *, timeout: float = STOP_TIMEOUT, layout: Layout | None = None) -> str:
    """SIGTERM, up to `timeout` s for a graceful exit, then SIGKILL; forget the record."""
    layout = layout or Layout.current()
    record = load_state(layout)["services"].get(name)
    update_state(lambda s: s["services"].pop(name, None), layout)
    if not record or not _running(record):
        return f"service {name}: not running"
    clean = procs.stop(record["pid"], timeout=timeout)
    how = "stopped" if clean else f"killed after {timeout:.0f}s"
    return f"service {name}: {how} (pid {record['pid']})"


def stop_all_services(layout: Layout | None = None) -> list[str]:
    return [stop_service(name, layout=layout) for name in load_state(layout)["services"]]
