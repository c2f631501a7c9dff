"""Where a benchmark run's CPU went: per process, the client's own share, and the machine's load.

A throughput figure alone can't be compared between sessions on a shared machine: the same
code gave 14k and 73k events/s. The CPU time each process spent (psutil, user + system,
deltas around the run) per request can: it barely moves with load. Around each run this
records the CPU of every named process (each ingest worker, the broker's JVM), the client's
(wrk: the rusage of waited-for children), the whole machine's busy time (what the rest is
the other tenants'), and the load average at the start and the end; a run is flagged
unreliable when other work took a noticeable share of the cores during it, or the client took
a large share. (Not by the load average: its 1-minute figure decays over minutes, so a
benchmark's own previous run showed as "load 3.4" on an otherwise idle machine.)
"""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import psutil

CORES = os.cpu_count() or 1
# wrk competes with ingest for the same cores; past this share of the machine the client,
# not the server, is a large part of what is measured
MAX_CLIENT_SHARE = 0.25
# other tenants' CPU during the run, as a share of the machine: past this, they took cores
# the measured processes could have used
MAX_OTHERS_SHARE = 0.10


@dataclass
class RunCpu:
    wall_s: float
    cpu_s: dict[str, float]  # process label → CPU seconds during the run
    client_s: float  # waited-for children (wrk)
    machine_busy_s: float  # all processes on the machine
    load_start: float
    load_end: float
    problems: list[str] = field(default_factory=list)

    def total(self, prefix: str) -> float:
        return sum(s for label, s in self.cpu_s.items() if label.startswith(prefix))

    @property
    def others_s(self) -> float:
        """What the other tenants of the machine used meanwhile."""
        return max(0.0, self.machine_busy_s - sum(self.cpu_s.values()) - self.client_s)

    def share(self, seconds: float) -> float:
        """Seconds of CPU as a fraction of the machine's capacity over the run."""
        return seconds / (self.wall_s * CORES)

    def as_json(self, work_done: float) -> dict[str, object]:
        """CPU per process (s and % of one core), per unit of work, load, and why unreliable."""
        per_process = {label: round(s, 2) for label, s in sorted(self.cpu_s.items())}
        return {
            "cpu_s": per_process | {"wrk": round(self.client_s, 2), "others": round(self.others_s, 2)},
            "ingest_cpu_us_per_unit": round(self.total("ingest") / work_done * 1e6, 1),
            "ingest_cores": round(self.total("ingest") / self.wall_s, 2),
            "wrk_share": round(self.share(self.client_s), 3),
            "load": [round(self.load_start, 2), round(self.load_end, 2)],
            "unreliable": self.problems,
        }


def _busy_s() -> float:
    times = psutil.cpu_times()
    return sum(times) - times.idle - getattr(times, "iowait", 0.0)


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _cpu_s(process: psutil.Process) -> float:
    try:
        times = process.cpu_times()
    except psutil.NoSuchProcess:
        return 0.0
    return times.user + times.system


@contextmanager
def measure(processes: Callable[[], dict[str, psutil.Process]]) -> Iterator[RunCpu]:
    """CPU of `processes()` (label → process, looked up at the start) over the with-block.

    The client must be run and waited for inside the block (subprocess.run), so its CPU is
    in this process's RUSAGE_CHILDREN."""
    watched = processes()
    before = {label: _cpu_s(p) for label, p in watched.items()}
    client, busy, started = _children_cpu_s(), _busy_s(), time.monotonic()
    run = RunCpu(0.0, {}, 0.0, 0.0, os.getloadavg()[0], 0.0)
    yield run
    run.wall_s = time.monotonic() - started
    run.cpu_s = {label: _cpu_s(p) - before[label] for label, p in watched.items()}
    run.client_s = _children_cpu_s() - client
    run.machine_busy_s = _busy_s() - busy
    run.load_end = os.getloadavg()[0]
    run.problems += judge(run)


def judge(run: RunCpu) -> list[str]:
    """Why a run's figures are not the measured processes' own (empty: they are)."""
    problems = []
    if run.share(run.others_s) > MAX_OTHERS_SHARE:
        problems.append(f"other work used {run.share(run.others_s):.0%} of the machine")
    if run.share(run.client_s) > MAX_CLIENT_SHARE:
        problems.append(f"wrk used {run.share(run.client_s):.0%} of the machine")
    return problems


def ingest_processes(supervisor_pid: int) -> dict[str, psutil.Process]:
    """The ingest process and its workers (uvicorn's supervisor spawns one per worker)."""
    root = psutil.Process(supervisor_pid)
    children = [p for p in root.children(recursive=True) if "resource_tracker" not in " ".join(p.cmdline())]
    if not children:
        return {"ingest": root}
    return {"ingest supervisor": root} | {f"ingest worker {i + 1}": p for i, p in enumerate(children)}


def broker_process(bootstrap: str) -> psutil.Process | None:
    """The process listening on the first bootstrap address's port (the local broker's JVM)."""
    port = int(bootstrap.split(",")[0].rsplit(":", 1)[1])
    for conn in psutil.net_connections(kind="tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port and conn.pid:
            return psutil.Process(conn.pid)
    return None


def listening_workers(supervisor_pid: int, port: int) -> int:
    """How many of ingest's processes listen on `port`. A worker listens only once its
    startup is done, and until then every connection goes to the others: a run started
    before all of them listen can put the whole load on one."""
    root = psutil.Process(supervisor_pid)
    return sum(
        any(c.laddr.port == port and c.status == psutil.CONN_LISTEN for c in p.net_connections(kind="tcp"))
        for p in [root, *root.children(recursive=True)]
    )
