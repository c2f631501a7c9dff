"""The browser path beside the server path, in the same run against the same ingest.

    .venv/bin/python bench/bench_browser_ingest.py [--runs 3] [--seconds 10] [--workers 1]

Each run, wrk with the same connections against:
* POST /v1/track: JSON, the write key as Basic auth (the server SDKs);
* POST /v1/t: text/plain, `Origin` of a page the workspace allows, the write key in the
  body (analytics-next, sendBeacon): the media-type check, the origin check (cached) and the
  CORS headers are the difference.
The order alternates between runs so neither always gets the warmer (or the noisier) slot.
Besides requests/s, the CPU time ingest's processes spent per request (psutil, over each wrk
run): on a loaded machine requests/s swing with the neighbours, CPU per request much less.
One event per request, each with a unique messageId; medians are printed with every run's
numbers. Needs `retarget devstack up` and wrk; the topics are deleted at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import tempfile
import uuid
from pathlib import Path

import asyncpg
import psutil
from bench_ingest import EVENT, LUA, drop_topics, make_tenant, median, start_ingest, wrk

from retarget.common.kafka import ensure_topics
from retarget.common.topics import Topics
from retarget.ingest.settings import IngestSettings

ORIGIN = "https://shop.bench.example"


def lua_event(write_key: str | None) -> str:
    event = EVENT if write_key is None else EVENT[:-1] + f',"writeKey":"{write_key}"}}'
    return "'" + event.replace("%d", "' .. (n * 100 + i) % 5000 .. '").replace("%s", "' .. id .. '") + "'"


def lua_script(run: str, *, auth: str | None, write_key: str | None) -> str:
    script = LUA.format(auth=auth or "", run=run, per_request=1, event=lua_event(write_key), wrap="events[1]")
    if auth is None:  # the browser: no Authorization, text/plain, an Origin
        script = script.replace('wrk.headers["Authorization"] = "Basic "\n', "")
        script = script.replace('"application/json"', '"text/plain;charset=UTF-8"')
        script = script.replace("wrk.method", f'wrk.headers["Origin"] = "{ORIGIN}"\nwrk.method', 1)
    return script


async def allow_origin(settings: IngestSettings, workspace: str) -> None:
    conn = await asyncpg.connect(settings.database_url)
    try:
        await conn.execute("UPDATE workspaces SET allowed_origins = $2 WHERE id = $1", workspace, [ORIGIN])
    finally:
        await conn.close()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ingest and its worker processes so far."""
    root = psutil.Process(pid)
    return sum(sum(p.cpu_times()[:2]) for p in [root, *root.children(recursive=True)])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10, help="length of each wrk run")
    parser.add_argument("--workers", type=int, default=1, help="ingest processes (RETARGET_WORKERS)")
    parser.add_argument("--connections", type=int, default=50)
    args = parser.parse_args()

    settings = IngestSettings()
    prefix = f"bench{uuid.uuid4().hex[:8]}"
    topics = Topics(prefix)
    asyncio.run(ensure_topics(settings, [topics.events]))
    workspace, key = asyncio.run(make_tenant(settings))
    asyncio.run(allow_origin(settings, workspace))
    auth = base64.b64encode(f"{key}:".encode()).decode()
    results: dict[str, list[dict[str, float]]] = {"track": [], "browser": []}
    with tempfile.TemporaryDirectory(prefix="bench-browser-") as tmp:
        folder = Path(tmp)
        port = int(os.environ.get("BENCH_INGEST_PORT", "18190"))  # and port + 5: ingest's ops port
        env = {
            **os.environ,
            "RETARGET_TOPIC_PREFIX": prefix,
            "RETARGET_PORT": str(port),
            "RETARGET_INGEST_OPS_PORT": str(port + 5),
            "RETARGET_WORKERS": str(args.workers),
            "RETARGET_RATE_LIMIT_EVENTS_PER_S": "10000000",  # measure ingest, not the limiter
            "RETARGET_RATE_LIMIT_BURST": "10000000",
            "RETARGET_LOG_LEVEL": "WARNING",
        }
        ingest = start_ingest(env, port + 5, folder / "ingest.log")
        try:
            for run in range(args.runs):
                paths = {"track": "/v1/track", "browser": "/v1/t"}
                scripts = {
                    "track": lua_script(f"t{run}", auth=auth, write_key=None),
                    "browser": lua_script(f"b{run}", auth=None, write_key=key),
                }
                order = ["track", "browser"] if run % 2 == 0 else ["browser", "track"]
                for name in order:
                    (folder / f"{name}.lua").write_text(scripts[name])
                    url = f"http://127.0.0.1:{port}{paths[name]}"
                    cpu_before = cpu_seconds(ingest.pid)
                    result = wrk(url, folder / f"{name}.lua", args.seconds, args.connections)
                    requests = result["requests_s"] * args.seconds
                    result["cpu_us_per_request"] = (cpu_seconds(ingest.pid) - cpu_before) / requests * 1e6
                    results[name].append(result)
                track, browser = results["track"][-1], results["browser"][-1]
                print(
                    f"run {run + 1}: /v1/track {track['requests_s']:,.0f} req/s (p50 {track['p50_ms']:.1f} ms, "
                    f"p99 {track['p99_ms']:.1f} ms, {track['cpu_us_per_request']:.0f} µs CPU/req, errors "
                    f"{track['errors']:.0f}); /v1/t text/plain+Origin {browser['requests_s']:,.0f} req/s "
                    f"(p50 {browser['p50_ms']:.1f} ms, p99 {browser['p99_ms']:.1f} ms, "
                    f"{browser['cpu_us_per_request']:.0f} µs CPU/req, errors {browser['errors']:.0f})",
                    flush=True,
                )
        finally:
            ingest.terminate()
            ingest.wait(30)
            asyncio.run(drop_topics(settings, [topics.events]))

    track_rps, browser_rps = median(results["track"], "requests_s"), median(results["browser"], "requests_s")
    summary = {
        "workers": args.workers,
        "track_requests_s": round(track_rps),
        "track_p50_ms": median(results["track"], "p50_ms"),
        "track_p99_ms": median(results["track"], "p99_ms"),
        "browser_requests_s": round(browser_rps),
        "browser_p50_ms": median(results["browser"], "p50_ms"),
        "browser_p99_ms": median(results["browser"], "p99_ms"),
        "track_cpu_us_per_request": round(median(results["track"], "cpu_us_per_request")),
        "browser_cpu_us_per_request": round(median(results["browser"], "cpu_us_per_request")),
        "browser_to_track": round(browser_rps / track_rps, 3),
        "browser_cpu_to_track": round(
            median(results["browser"], "cpu_us_per_request") / median(results["track"], "cpu_us_per_request"),
            3,
        ),
        "errors": sum(r["errors"] for r in results["track"] + results["browser"]),
    }
    print(f"\nmedians of {args.runs} runs (workspace {workspace}):")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
