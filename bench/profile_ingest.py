"""Where ingest's CPU goes under bench_ingest.py's load: py-spy on every worker while wrk runs.

    .venv/bin/python bench/profile_ingest.py [--path batch|track] [--seconds 15] [--workers 1]

Starts ingest as bench_ingest.py does (fresh workspace, key and topics), runs wrk against
/v1/<path> and meanwhile `py-spy record --format raw` against each worker (samples of the
threads that are running, not idle ones), then prints the frames with the most samples:
self (the function itself) and inclusive (it and what it calls), in % of all samples. The
raw stacks stay in --out for a flame graph (`flamegraph.pl` or speedscope read them).
py-spy is in the dev dependencies; attaching to a process needs ptrace rights (root, or
kernel.yama.ptrace_scope 0).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import subprocess
import sys
import tempfile
import uuid
from collections import Counter
from pathlib import Path

import cpu_meter
from bench_ingest import drop_topics, lua_script, make_tenant, start_ingest

from retarget.common.kafka import ensure_topics
from retarget.common.topics import Topics
from retarget.ingest.settings import IngestSettings

PER_REQUEST = {"batch": 100, "track": 1}
CONNECTIONS = {"batch": 20, "track": 50}


def frame_name(frame: str) -> str:
    """py-spy's 'function (path/to/module.py:line)' as 'function (module.py)'."""
    function, _, where = frame.partition(" (")
    return f"{function} ({Path(where.rsplit(':', 1)[0]).name})" if where else function


def top_frames(raw: str, count: int) -> tuple[int, list[tuple[str, int]], list[tuple[str, int]]]:
    """(samples, self counts, inclusive counts) from py-spy's raw (collapsed) stacks."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, weight = line.rpartition(" ")
        if not stack or not weight.isdigit():
            continue
        samples = int(weight)
        frames = [frame_name(f) for f in stack.split(";")[1:]]  # the first is the thread
        total += samples
        if frames:
            own[frames[-1]] += samples
        for name in set(frames):
            inclusive[name] += samples
    return total, own.most_common(count), inclusive.most_common(count)


def report(raw: str, count: int) -> str:
    total, own, inclusive = top_frames(raw, count)
    lines = [f"{total} samples"]
    for title, rows in (("self", own), ("inclusive", inclusive)):
        lines.append(f"  top {count} by {title}:")
        lines += [f"    {n / max(total, 1):6.1%}  {name}" for name, n in rows]
    return "\n".join(lines)


def record(pid: int, seconds: int, output: Path) -> subprocess.Popen[bytes]:
    """py-spy sampling `pid` for `seconds` (--nonblocking: the worker is never paused)."""
    spy = Path(sys.executable).with_name("py-spy")
    argv = [str(spy), "record", "--pid", str(pid), "--duration", str(max(seconds, 1)), "--format", "raw"]
    argv += ["--nonblocking", "--output", str(output)]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--path", choices=sorted(PER_REQUEST), default="track")
    parser.add_argument("--seconds", type=int, default=15, help="length of the wrk run")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--out", type=Path, default=None, help="folder for the raw stacks")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="profile-ingest-"))
    out.mkdir(parents=True, exist_ok=True)

    settings = IngestSettings()
    prefix = f"bench{uuid.uuid4().hex[:8]}"
    topics = Topics(prefix)
    asyncio.run(ensure_topics(settings, [topics.events]))
    _, key = asyncio.run(make_tenant(settings))
    auth = base64.b64encode(f"{key}:".encode()).decode()
    port = int(os.environ.get("BENCH_INGEST_PORT", "18180"))
    env = {
        **os.environ,
        "RETARGET_TOPIC_PREFIX": prefix,
        "RETARGET_PORT": str(port),
        "RETARGET_INGEST_OPS_PORT": str(port + 5),
        "RETARGET_WORKERS": str(args.workers),
        "RETARGET_RATE_LIMIT_EVENTS_PER_S": "10000000",
        "RETARGET_RATE_LIMIT_BURST": "10000000",
        "RETARGET_LOG_LEVEL": "WARNING",
    }
    ingest = start_ingest(env, port + 5, out / "ingest.log")
    try:
        script = out / f"{args.path}.lua"
        script.write_text(lua_script(auth, "p", PER_REQUEST[args.path]))
        workers = {
            label: p
            for label, p in cpu_meter.ingest_processes(ingest.pid).items()
            if "supervisor" not in label
        }
        url = f"http://127.0.0.1:{port}/v1/{args.path}"
        wrk_argv = ["wrk", "-t2", f"-c{CONNECTIONS[args.path]}", f"-d{args.seconds}s", "-s", str(script), url]
        client = subprocess.Popen(wrk_argv, stdout=subprocess.PIPE, text=True)
        profilers = {
            label: record(p.pid, args.seconds - 3, out / f"{label.replace(' ', '-')}.txt")
            for label, p in workers.items()
        }
        for profiler in profilers.values():
            profiler.wait()
        wrk_out = client.communicate()[0]
        print(wrk_out.strip().splitlines()[-1] if wrk_out.strip() else "wrk printed nothing")
        raw = "\n".join((out / f"{label.replace(' ', '-')}.txt").read_text() for label in profilers)
        print(f"/v1/{args.path}, {args.workers} worker(s), stacks in {out}:\n{report(raw, args.top)}")
    finally:
        ingest.terminate()
        ingest.wait(30)
        asyncio.run(drop_topics(settings, [topics.events]))


if __name__ == "__main__":
    main()
