"""Several worker processes on one port (RETARGET_WORKERS > 1), with one /metrics for all.

uvicorn's supervisor spawns the workers; each listens on its own SO_REUSEPORT sockets on
the two ports (reuse_port.py: the kernel spreads connections over them) and runs its own app: its own Kafka producer, key cache and rate-limit
buckets. The buckets being per process means a write key may send up to WORKERS times
RETARGET_RATE_LIMIT_EVENTS_PER_S to one host (set the rate to limit ÷ workers to keep a
per-host limit). Metrics use prometheus-client's multiprocess mode: every worker writes
its samples to files in PROMETHEUS_MULTIPROC_DIR, which must be set before any worker
imports prometheus_client, so the supervisor prepares it before spawning them.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import uvicorn
from fastapi import FastAPI
from uvicorn.supervisors import Multiprocess

from retarget.common.logging import configure_logging
from retarget.ingest.reuse_port import ReusePortSockets, claim_port
from retarget.ingest.settings import IngestSettings

APP_FACTORY = "retarget.ingest.workers:worker_app"


def worker_app() -> FastAPI:
    """What each worker process serves (called by uvicorn in the child)."""
    from retarget.ingest.main import create_app

    settings = IngestSettings()
    configure_logging("ingest", settings.log_level)
    return create_app(settings)


@contextmanager
def metrics_dir() -> Iterator[Path]:
    """PROMETHEUS_MULTIPROC_DIR for the workers, emptied first (stale files would add up).

    A folder given in the environment is used (emptied of *.db files); otherwise a private
    temporary one is made and removed at exit.
    """
    given = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if given:
        folder = Path(given)
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob("*.db"):
            stale.unlink()
        yield folder
        return
    folder = Path(tempfile.mkdtemp(prefix="retarget-ingest-metrics-"))
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(folder)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def serve_workers(config_options: dict[str, object], settings: IngestSettings) -> None:
    """Run settings.workers processes under uvicorn's supervisor until SIGTERM/SIGINT."""
    with metrics_dir():
        config = uvicorn.Config(APP_FACTORY, factory=True, workers=settings.workers, **config_options)  # type: ignore[arg-type]
        # each worker gets its own sockets on the two ports, so the kernel spreads connections
        ports = (settings.port, settings.ingest_ops_port)
        sockets = ReusePortSockets(claim_port(settings.http_host, port) for port in ports)
        try:
            Multiprocess(config, sockets=sockets).run()
        finally:
            for socket in sockets:
                socket.close()
