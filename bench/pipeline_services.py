"""The pipeline benchmark's processes: N of each service on the local stack under a topic prefix
of their own (their own consumer groups, so nobody else's traffic is counted), and Postfix's
smtp-sink printing its counters to a file."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
from aiokafka.admin import AIOKafkaAdminClient

from retarget.devstack.child import Child, free_port, start_child
from retarget.sender.local_mta import tool, wait_for_port

# service → (the variable of its HTTP port, whether it consumes from Kafka)
SERVICES = {
    "ingest": "RETARGET_PORT",
    "segmenter": "RETARGET_WEB_PORT",
    "composer": "RETARGET_OPS_PORT",
    "sender": "RETARGET_OPS_PORT",
}


class BenchError(SystemExit):
    """A failure the person running the bench can act on: what happened and what to do."""

    def __init__(self, what: str, fix: str) -> None:
        super().__init__(f"error: {what}\n  what to do: {fix}")


@dataclass
class Running:
    name: str
    child: Child
    ready_url: str  # /readyz (ingest: on its ops port)


def _distinct_ports() -> Iterator[int]:
    """Free ports, none twice: the OS may hand the same just-closed port out again."""
    seen: set[int] = set()
    while True:
        port = free_port()
        if port not in seen:
            seen.add(port)
            yield port


def start_services(count: int, env: dict[str, str], folder: Path) -> list[Running]:
    started: list[Running] = []
    ports = _distinct_ports()
    for name, port_var in SERVICES.items():
        for n in range(1, count + 1):
            port, extra = next(ports), {}
            ready_port = port
            if name == "ingest":
                ready_port = next(ports)
                extra["RETARGET_INGEST_OPS_PORT"] = str(ready_port)
            if name == "segmenter":
                extra["RETARGET_DATA_DIR"] = str(folder / f"segmenter-{n}")
            child = start_child(
                f"{name}-{n}",
                f"retarget.{name}",
                env={**env, **extra, port_var: str(port)},
                port=port,
                log=folder / f"{name}-{n}.log",
                cwd=folder,
            )
            started.append(Running(name, child, f"http://127.0.0.1:{ready_port}/readyz"))
    return started


def wait_ready(running: list[Running], timeout_s: float) -> None:
    """Every process answers /readyz 200 (a consumer once it has joined its group)."""
    deadline = time.monotonic() + timeout_s
    waiting = list(running)
    while waiting:
        for each in list(waiting):
            if each.child.exited() is not None:
                raise BenchError(
                    f"{each.child.name} exited with {each.child.process.returncode}:\n{each.child.tail(15)}",
                    f"read {each.child.log}; is the stack up (`retarget devstack up`, `retarget db migrate`)?",
                )
            try:
                if httpx.get(each.ready_url, timeout=2).status_code == 200:
                    waiting.remove(each)
            except httpx.HTTPError:
                pass
        if waiting and time.monotonic() > deadline:
            names = ", ".join(w.child.name for w in waiting)
            raise BenchError(
                f"not ready after {timeout_s:.0f} s: {names}",
                "read their logs (named above) and `curl` their /readyz; the machine may be overloaded",
            )
        time.sleep(0.5)


async def wait_groups_stable(bootstrap: str, members: dict[str, int], timeout_s: float) -> None:
    """Until each consumer group is Stable with all its members, so no rebalance is timed."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            state = {}
            for group in members:  # one at a time: the broker drops a request naming several
                [response] = await admin.describe_consumer_groups([group])
                g = response.groups[0]  # (error, id, state, protocol type, protocol, members, ...)
                state[group] = (g[2], len(g[5]))
            if all(state.get(group) == ("Stable", count) for group, count in members.items()):
                return
            if time.monotonic() > deadline:
                raise BenchError(
                    f"consumer groups did not settle within {timeout_s:.0f} s: {state}",
                    "read the services' logs; a broker under heavy load can take long to rebalance",
                )
            await asyncio.sleep(0.5)
    finally:
        await admin.close()


def stop_services(running: list[Running]) -> None:
    for each in running:
        try:
            each.child.stop(timeout_s=30)
        except TimeoutError:
            pass  # stop() killed it already


class CountingSink:
    """smtp-sink with -c: it rewrites a `sess=.. quit=.. mesg=N` line in `counter_file`."""

    def __init__(self, folder: Path, backlog: int = 1024) -> None:
        binary = tool("smtp-sink")
        if binary is None:
            raise BenchError(
                "Postfix's smtp-sink is not installed", "run `make system-deps` (Debian postfix)"
            )
        self.port = free_port()
        self.counter_file = folder / "smtp-sink.counters"
        as_root = ["-u", "root"] if os.geteuid() == 0 else []  # it refuses root otherwise
        with open(self.counter_file, "wb") as out:
            self.process = subprocess.Popen(
                [binary, *as_root, "-c", f"127.0.0.1:{self.port}", str(backlog)], stdout=out
            )
        wait_for_port(self.port)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)
