"""`RETARGET_WORKERS=2` as it runs (`python -m retarget.ingest`), on the real stack: both
workers take connections — each listens on its own SO_REUSEPORT socket (reuse_port.py) —,
both ports answer, and SIGTERM stops it cleanly."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from retarget.ingest.settings import IngestSettings
from tests.integration.ingest.conftest import Tenant, ops_url

pytestmark = pytest.mark.integration

CLIENTS = 40


def start(settings: IngestSettings, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "RETARGET_TOPIC_PREFIX": settings.topic_prefix,
        "RETARGET_TOPIC_PARTITIONS": str(settings.topic_partitions),
        "RETARGET_PORT": str(settings.port),
        "RETARGET_INGEST_OPS_PORT": str(settings.ingest_ops_port),
        "RETARGET_WORKERS": "2",
        "RETARGET_LOG_LEVEL": "WARNING",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "retarget.ingest"], env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT
    )
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()[-2000:]
        try:
            if httpx.get(f"{ops_url(settings)}/readyz", timeout=2).status_code == 200:
                return process
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    process.kill()
    raise AssertionError(f"ingest with 2 workers not ready in 90 s: {log.read_text()[-2000:]}")


def connections_per_worker(supervisor: psutil.Process, port: int) -> list[int]:
    workers = [p for p in supervisor.children() if "resource_tracker" not in " ".join(p.cmdline())]
    return [
        sum(
            1
            for c in w.net_connections(kind="tcp")
            if c.laddr.port == port and c.status == psutil.CONN_ESTABLISHED
        )
        for w in workers
    ]


def listening_sockets(supervisor: psutil.Process, port: int) -> list[int]:
    """The inode of each worker's listening socket on the port (the same one when shared)."""
    inodes = []
    for worker in supervisor.children():
        for c in worker.net_connections(kind="tcp"):
            if c.laddr.port == port and c.status == psutil.CONN_LISTEN:
                inodes.append(os.stat(f"/proc/{worker.pid}/fd/{c.fd}").st_ino)
    return inodes


async def test_both_workers_take_connections_and_stop_cleanly(
    ingest_settings: IngestSettings, tenant: Tenant, tmp_path: Path
) -> None:
    process = start(ingest_settings, tmp_path / "ingest.log")
    clients = [httpx.AsyncClient(limits=httpx.Limits(max_connections=1), timeout=30) for _ in range(CLIENTS)]
    try:
        url = f"http://127.0.0.1:{ingest_settings.port}/v1/track"
        responses = await asyncio.gather(
            *(
                client.post(url, json={"userId": f"u{n}", "event": "Viewed"}, auth=(tenant.write_key, ""))
                for n, client in enumerate(clients)
            )
        )
        assert [r.status_code for r in responses] == [200] * CLIENTS
        for port in (ingest_settings.port, ingest_settings.ingest_ops_port):
            inodes = listening_sockets(psutil.Process(process.pid), port)
            assert len(inodes) == 2 and len(set(inodes)) == 2, f"workers share a listening socket on {port}"
        held = connections_per_worker(psutil.Process(process.pid), ingest_settings.port)
        # the kernel hashes connections over the two sockets: 40 all on one would be 2^-39
        assert len(held) == 2 and sum(held) == CLIENTS and min(held) >= 5, held
        assert (await clients[0].get(f"{ops_url(ingest_settings)}/metrics")).status_code == 200
        assert (await clients[0].get(f"http://127.0.0.1:{ingest_settings.port}/metrics")).status_code == 404
    finally:
        for client in clients:
            await client.aclose()
        process.terminate()
        exit_code = process.wait(60)
    assert exit_code == 0, (tmp_path / "ingest.log").read_text()[-2000:]
