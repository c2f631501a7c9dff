"""Ingest throughput and latency beside Kafka's own producer, on the local stack.

    .venv/bin/python bench/bench_ingest.py [--runs 3] [--seconds 10] [--workers 2]

Each run: wrk against POST /v1/batch (100 events per request) and POST /v1/track (one
event per request), every event with a unique messageId; then the ceiling, Kafka's
ProducerPerformance tool (acks=all, lz4, linger 5 ms like ingest's producer) against the
same broker with records the size of one event as ingest writes it. Medians are printed
with every run's numbers. The workspace, write key and topic prefix are fresh and random;
the topics are deleted at the end. Needs `retarget devstack up` and wrk.

Around each wrk run the CPU time of every ingest worker, the broker's JVM, wrk itself and
the rest of the machine is recorded (cpu_meter.py), with the load average at its start and
end: CPU per event (batch) or per request (track) is what compares between sessions on a
shared machine, and a run that started overloaded or where wrk took a large share of the
cores is flagged unreliable.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import cpu_meter
import httpx
import psutil
from aiokafka.admin import AIOKafkaAdminClient

from retarget.common.kafka import ensure_topics
from retarget.common.schemas import encode
from retarget.common.topics import Topics
from retarget.common.workspaces import Workspace, WorkspaceStore
from retarget.common.write_keys import WriteKeyStore
from retarget.devstack.java import find_java
from retarget.devstack.kafka_jars import libs_dir
from retarget.ingest.events import build_event
from retarget.ingest.payloads import decode_event
from retarget.ingest.settings import IngestSettings

# One event, as Python text (to size it) and as a Lua expression (wrk builds the bodies).
EVENT = (
    '{"type":"track","userId":"u%d","event":"Product Viewed","messageId":"%s",'
    '"properties":{"sku":"SKU-1042","price":19.99,"currency":"EUR"}}'
)
LUA_EVENT = "'" + EVENT.replace("%d", "' .. (n * 100 + i) % 5000 .. '").replace("%s", "' .. id .. '") + "'"

LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Basic {auth}"
local counter, n, prefix = 0, 0, ""
function setup(thread) counter = counter + 1; thread:set("tid", counter) end
function init(args) prefix = "{run}-" .. tid .. "-" end
function request()
  n = n + 1
  local events = {{}}
  for i = 1, {per_request} do
    local id = prefix .. n .. "-" .. i
    events[i] = {event}
  end
  return wrk.format(nil, nil, nil, {wrap})
end
function done(summary, latency, requests)
  io.write(string.format("RESULT %d %d %d %d %d %d\\n", summary.requests, summary.duration,
    summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.timeout, latency:percentile(50), latency:percentile(99), latency.max))
end
"""


def lua_script(auth: str, run: str, per_request: int) -> str:
    wrap = """'{"batch":[' .. table.concat(events, ",") .. ']}'""" if per_request > 1 else "events[1]"
    return LUA.format(auth=auth, run=run, per_request=per_request, event=LUA_EVENT, wrap=wrap)


def wrk(url: str, script: Path, seconds: int, connections: int) -> dict[str, float]:
    argv = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "-s", str(script), url]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    fields = re.search(r"^RESULT (.*)$", out, re.M)
    if fields is None:
        raise RuntimeError(f"wrk printed no result:\n{out}")
    requests, duration_us, errors, p50, p99, top = map(int, fields.group(1).split())
    return {
        "requests": requests,
        "requests_s": requests / (duration_us / 1e6),
        "errors": errors,
        "p50_ms": p50 / 1000,
        "p99_ms": p99 / 1000,
        "max_ms": top / 1000,
    }


def measured_wrk(
    url: str,
    script: Path,
    seconds: int,
    connections: int,
    events_per_request: int,
    processes: Callable[[], dict[str, psutil.Process]],
) -> dict[str, Any]:
    """wrk's figures plus where the CPU went (cpu_meter); cpu_us is ingest's per event."""
    with cpu_meter.measure(processes) as cpu:
        result: dict[str, Any] = wrk(url, script, seconds, connections)
    result["cpu"] = cpu.as_json(max(result["requests"] * events_per_request, 1))
    result["cpu_us"] = result["cpu"]["ingest_cpu_us_per_unit"]
    result["ingest_cores"] = result["cpu"]["ingest_cores"]
    result["unreliable"] = bool(cpu.problems)
    return result


def producer_performance(topic: str, record_size: int, records: int) -> dict[str, float]:
    argv = [
        find_java(),
        "-Xmx512m",
        "-cp",
        f"{libs_dir()}/*",
        "org.apache.kafka.tools.ProducerPerformance",
        *("--topic", topic, "--num-records", str(records), "--record-size", str(record_size)),
        *("--throughput", "-1", "--producer-props", f"bootstrap.servers={IngestSettings().kafka_bootstrap}"),
        *("acks=all", "compression.type=lz4", "linger.ms=5"),
    ]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
    match = re.search(r"records sent, ([\d.]+) records/sec.*?([\d.]+) ms 50th.*?([\d.]+) ms 99th", out)
    if match is None:
        raise RuntimeError(f"unexpected ProducerPerformance output: {out}")
    return {"records_s": float(match[1]), "p50_ms": float(match[2]), "p99_ms": float(match[3])}


def event_record_size() -> int:
    """Bytes of one benchmark event on the events topic (what the ceiling's records weigh)."""
    incoming = decode_event((EVENT % (1, "r1-1-1-1")).encode())
    now = datetime.now(UTC)
    return len(encode(build_event(incoming, workspace_id="bench-xxxxxxxx", received_at=now)))


async def make_tenant(settings: IngestSettings) -> tuple[str, str]:
    conn = await asyncpg.connect(settings.database_url)
    try:
        workspace = f"bench-{uuid.uuid4().hex[:8]}"
        await WorkspaceStore(conn).upsert(
            Workspace(workspace, "Bench", "Bench", "bench@example.com", "1 Bench Road")
        )
        return workspace, await WriteKeyStore(conn).create(workspace)
    finally:
        await conn.close()


async def drop_topics(settings: IngestSettings, topics: list[str]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        await admin.delete_topics(topics)
    finally:
        await admin.close()


def start_ingest(env: dict[str, str], ops_port: int, log: Path) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [sys.executable, "-m", "retarget.ingest"], env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"ingest exited: {log.read_text()[-2000:]}")
        try:
            ready = httpx.get(f"http://127.0.0.1:{ops_port}/readyz", timeout=2).status_code == 200
            workers = int(env.get("RETARGET_WORKERS", "1"))
            if ready and cpu_meter.listening_workers(process.pid, int(env["RETARGET_PORT"])) >= workers:
                return process
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    process.terminate()
    raise RuntimeError(f"ingest not ready in 60 s: {log.read_text()[-2000:]}")


def median(runs: list[dict[str, float]], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10, help="length of each wrk run")
    parser.add_argument("--workers", type=int, default=2, help="ingest processes (RETARGET_WORKERS)")
    parser.add_argument("--perf-records", type=int, default=1_000_000)
    args = parser.parse_args()

    settings = IngestSettings()
    prefix = f"bench{uuid.uuid4().hex[:8]}"
    topics = Topics(prefix)
    perf_topic = f"{prefix}.perf.v1"
    asyncio.run(ensure_topics(settings, [topics.events, perf_topic]))
    workspace, key = asyncio.run(make_tenant(settings))
    auth = base64.b64encode(f"{key}:".encode()).decode()
    record_size = event_record_size()
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        folder = Path(tmp)
        port = int(os.environ.get("BENCH_INGEST_PORT", "18180"))
        ops_port = port + 5  # /readyz and /metrics live on ingest's ops port
        env = {
            **os.environ,
            "RETARGET_TOPIC_PREFIX": prefix,
            "RETARGET_PORT": str(port),
            "RETARGET_INGEST_OPS_PORT": str(ops_port),
            "RETARGET_WORKERS": str(args.workers),
            "RETARGET_RATE_LIMIT_EVENTS_PER_S": "10000000",  # measure ingest, not the limiter
            "RETARGET_RATE_LIMIT_BURST": "10000000",
            "RETARGET_LOG_LEVEL": "WARNING",
        }
        ingest = start_ingest(env, ops_port, folder / "ingest.log")
        batches, tracks, ceilings = [], [], []
        broker = cpu_meter.broker_process(settings.kafka_bootstrap)

        def watched() -> dict[str, psutil.Process]:
            return cpu_meter.ingest_processes(ingest.pid) | ({"broker": broker} if broker else {})

        try:
            for run in range(args.runs):
                for name, per_request in (("batch", 100), ("track", 1)):
                    (folder / f"{name}.lua").write_text(lua_script(auth, f"r{run}", per_request))
                url = f"http://127.0.0.1:{port}/v1/"
                batches.append(
                    measured_wrk(url + "batch", folder / "batch.lua", args.seconds, 20, 100, watched)
                )
                tracks.append(measured_wrk(url + "track", folder / "track.lua", args.seconds, 50, 1, watched))
                ceilings.append(producer_performance(perf_topic, record_size, args.perf_records))
                batch, track, ceiling = batches[-1], tracks[-1], ceilings[-1]
                print(
                    f"run {run + 1}: batch {batch['requests_s'] * 100:,.0f} events/s "
                    f"(p50 {batch['p50_ms']:.1f} ms, p99 {batch['p99_ms']:.1f} ms, errors {batch['errors']:.0f}, "
                    f"{batch['cpu_us']:.1f} µs ingest CPU/event); "
                    f"track {track['requests_s']:,.0f} req/s (p50 {track['p50_ms']:.1f} ms, "
                    f"p99 {track['p99_ms']:.1f} ms, errors {track['errors']:.0f}, "
                    f"{track['cpu_us']:.0f} µs ingest CPU/request); "
                    f"ProducerPerformance {ceiling['records_s']:,.0f} records/s",
                    flush=True,
                )
                for name, result in (("batch", batch), ("track", track)):
                    print(f"  {name}: {json.dumps(result['cpu'])}", flush=True)
        finally:
            ingest.terminate()
            ingest.wait(30)
            asyncio.run(drop_topics(settings, [topics.events, perf_topic]))

    ceiling = median(ceilings, "records_s")
    batch_events, track_events = median(batches, "requests_s") * 100, median(tracks, "requests_s")
    summary = {
        "workers": args.workers,
        "record_size": record_size,
        "batch_events_s": round(batch_events),
        "batch_p50_ms": median(batches, "p50_ms"),
        "batch_p99_ms": median(batches, "p99_ms"),
        "track_requests_s": round(track_events),
        "track_p50_ms": median(tracks, "p50_ms"),
        "track_p99_ms": median(tracks, "p99_ms"),
        "producer_performance_records_s": round(ceiling),
        "batch_to_ceiling": round(batch_events / ceiling, 3),
        "track_to_ceiling": round(track_events / ceiling, 3),
        "batch_ingest_cpu_us_per_event": median(batches, "cpu_us"),
        "track_ingest_cpu_us_per_request": median(tracks, "cpu_us"),
        "batch_ingest_cores": median(batches, "ingest_cores"),
        "track_ingest_cores": median(tracks, "ingest_cores"),
        "load_at_starts": [r["cpu"]["load"][0] for r in batches + tracks],
        "unreliable_runs": sum(bool(r["unreliable"]) for r in batches + tracks),
        "errors": sum(r["errors"] for r in batches + tracks),
    }
    print(f"\nmedians of {args.runs} runs (workspace {workspace}, {record_size}-byte events):")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
