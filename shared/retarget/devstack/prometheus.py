"""Prometheus (Debian's package) scraping every service on its fixed local port.

Optional: the demo's funnel reads it, nothing else needs it, so a machine without the
`prometheus` binary gets a clear note instead of a failed `up`. The scrape targets are
deploy/prometheus/prometheus.yml, the same ports the demo starts the services on; it loads
the recording and alert rules of deploy/prometheus/rules/ (what dashboards, alerts and
`retarget funnel --range` read), re-read with the config on SIGHUP.
"""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

from retarget.devstack import procs
from retarget.devstack.listening import spawn_listening, stop_listening
from retarget.devstack.paths import HOST, PROMETHEUS_PORT, Layout, repo_root

CONFIG = repo_root() / "deploy" / "prometheus" / "prometheus.yml"  # its rule_files: rules/*.yml

MARKER = "prometheus/prometheus.yml"
URL = f"http://{HOST}:{PROMETHEUS_PORT}"


def binary() -> str | None:
    return shutil.which("prometheus")


def running_pid(layout: Layout) -> int | None:
    pid = procs.read_pid(layout.prometheus_pid)
    return pid if procs.alive(pid, MARKER) else None


async def start(layout: Layout) -> tuple[int | None, bool]:
    """(pid, started_now); (None, False) when the binary is missing."""
    pid = running_pid(layout)
    if pid is not None:
        # the config may have changed since it started (a scrape target moved to an ops port):
        # SIGHUP makes Prometheus re-read it, so a running stack never scrapes stale targets
        os.kill(pid, signal.SIGHUP)
        return pid, False
    exe = binary()
    if exe is None:
        return None, False
    procs.ensure_port_free(HOST, PROMETHEUS_PORT, "Prometheus")
    layout.prometheus_data.mkdir(parents=True, exist_ok=True)
    argv = command(exe, CONFIG, layout.prometheus_data, f"{HOST}:{PROMETHEUS_PORT}")
    pid = await spawn_listening(
        argv,
        name="Prometheus",
        port=PROMETHEUS_PORT,
        log_file=layout.prometheus_log,
        pid_file=layout.prometheus_pid,
        cwd=layout.root,
        fix="or free the port",
    )
    return pid, True


def command(exe: str, config: Path, data: Path, listen: str, retention: str = "7d") -> list[str]:
    """The Prometheus command line (the stack's; tests start private ones with their own config)."""
    return [
        exe,
        f"--config.file={config}",
        f"--storage.tsdb.path={data}",
        f"--web.listen-address={listen}",
        f"--storage.tsdb.retention.time={retention}",
    ]


def stop(layout: Layout) -> str:
    return stop_listening("prometheus", running_pid(layout), layout.prometheus_pid)
