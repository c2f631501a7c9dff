"""When a benchmark run is flagged unreliable: by what else used the cores during it, not by
the load average (which a benchmark's own previous run keeps above the core count)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[3] / "bench"))

from cpu_meter import CORES, RunCpu, judge


def run(ingest_s: float, client_s: float, busy_s: float, load_start: float = 0.0) -> RunCpu:
    return RunCpu(10.0, {"ingest worker 1": ingest_s}, client_s, busy_s, load_start, load_start)


def test_an_idle_machine_is_reliable_whatever_the_load_average_says() -> None:
    assert judge(run(ingest_s=8, client_s=1, busy_s=9.2, load_start=3.4)) == []


def test_other_work_taking_cores_during_the_run_is_flagged() -> None:
    others = 0.2 * 10 * CORES  # a fifth of the machine
    [problem] = judge(run(ingest_s=8, client_s=1, busy_s=9 + others))
    assert problem.startswith("other work used 20%")


def test_a_client_taking_a_large_share_is_flagged() -> None:
    client = 0.3 * 10 * CORES
    [problem] = judge(run(ingest_s=8, client_s=client, busy_s=8 + client))
    assert problem.startswith("wrk used 30%")
