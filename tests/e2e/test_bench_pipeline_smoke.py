"""bench/bench_pipeline.py --smoke on the real stack, so the benchmark cannot rot: it starts the
four services, posts a few events, and its report has every figure it promises (structure and
consistency, never speed: the machine is shared)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from retarget.sender.local_mta import tool

pytestmark = pytest.mark.e2e
BENCH = Path(__file__).parents[2] / "bench" / "bench_pipeline.py"


def test_the_pipeline_bench_smoke_run_reports_every_figure(stack: dict[str, str], tmp_path: Path):
    if tool("smtp-sink") is None:
        pytest.skip("Postfix's smtp-sink is not installed (`make system-deps`)")
    out = tmp_path / "report.json"
    done = subprocess.run(
        [sys.executable, str(BENCH), "--smoke", "--json", str(out)],
        env={**os.environ, **stack},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    assert "bottleneck" in done.stdout  # the progress and the summary go to the terminal
    [run] = json.loads(out.read_text())["runs"]
    assert run["processes_per_service"] == 1
    assert run["events_accepted"] > 0 and run["events_per_s_in"] > 0
    # every reminder due reached the sink, once
    assert run["emails_at_sink"] == run["emails_expected"] == run["sent_in_send_log"] > 0
    latency = run["latency_due_to_250_s"]
    assert latency["count"] == run["emails_expected"]
    assert 0 <= latency["p50"] <= latency["p99"] <= latency["max"]
    assert set(run["stages"]) == {"ingest", "segmenter", "composer", "sender"}
    for stage in ("segmenter", "composer", "sender"):
        assert run["stages"][stage]["lag_end"] is not None  # read from the broker
    assert all(s["cpu_cores_busy"] > 0 for s in run["stages"].values())
    assert run["bottleneck"]["stage"] and run["bottleneck"]["why"]
    assert set(run["ceiling_emails_per_s"]) == {"ingest", "segmenter", "composer", "sender", "pipeline"}
    assert set(run["load_average"]) == {"1m", "5m", "15m"}
