"""`retarget funnel --range` against a real Prometheus (started as the local stack starts its own,
retarget.devstack.prometheus) scraping a real ingest process: a restart of ingest between two
reads zeroes its counters, not the funnel's row."""

from __future__ import annotations

import argparse
import secrets
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from retarget.cli.funnel import collect, from_metrics
from retarget.common.funnel import funnel
from retarget.common.tokens import LinkClaims, link_url, sign
from retarget.devstack import prometheus
from retarget.devstack.child import Child, free_port, start_child

BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"
DEADLINE_S = 120  # generous: the machine is shared and loaded


def _wait(what: str, check: Callable[[], bool], tail: Callable[[], str] = lambda: "") -> None:
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    pytest.fail(f"{what} not within {DEADLINE_S}s\n{tail()}")


class Ingest:
    """Ingest as a process on fixed ports, so a restart is the same scrape target."""

    def __init__(self, env: dict[str, str], folder: Path) -> None:
        self.public, self.ops = free_port(), free_port()
        self.env = {**env, "RETARGET_PORT": str(self.public), "RETARGET_INGEST_OPS_PORT": str(self.ops)}
        self.folder = folder
        self.child: Child | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        log = self.folder / f"ingest-{self.starts}.log"
        self.child = start_child(
            "ingest", "retarget.ingest", env=self.env, port=self.public, log=log, cwd=self.folder
        )
        ops = f"http://127.0.0.1:{self.ops}/healthz"
        _wait("ingest healthy", lambda: httpx.get(ops, timeout=2).status_code == 200, self.child.tail)

    def stop(self) -> None:
        if self.child is not None and self.child.exited() is None:
            self.child.stop()


@pytest.fixture
def ingest(stack: dict[str, str], topic_prefix: str, tmp_path: Path) -> Iterator[Ingest]:
    env = {**stack, "RETARGET_TOPIC_PREFIX": topic_prefix, "RETARGET_LINK_SECRET": secrets.token_hex(16)}
    service = Ingest(env, tmp_path)
    service.start()
    yield service
    service.stop()


@pytest.fixture
def prometheus_url(ingest: Ingest, tmp_path: Path) -> Iterator[str]:
    exe = prometheus.binary()
    if exe is None:
        pytest.fail(
            "the prometheus binary is missing: install Debian's `prometheus` package (make system-deps)"
        )
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s}\n"
        f"scrape_configs: [{{job_name: ingest, static_configs: [{{targets: ['127.0.0.1:{ingest.ops}']}}]}}]\n"
    )
    listen = f"127.0.0.1:{free_port()}"
    log = tmp_path / "prometheus.log"
    argv = prometheus.command(exe, config, tmp_path / "prometheus-data", listen, retention="1h")
    process = subprocess.Popen(argv, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    url = f"http://{listen}"
    try:
        _wait(
            "Prometheus ready",
            lambda: httpx.get(f"{url}/-/ready", timeout=2).status_code == 200,
            log.read_text,
        )
        yield url
    finally:
        process.terminate()
        process.wait(30)


def _open_pixel(ingest: Ingest, workspace: str, times: int) -> None:
    secret = ingest.env["RETARGET_LINK_SECRET"].encode()
    for _ in range(times):
        claims = LinkClaims(
            kind="open",
            message_id=f"m-{uuid.uuid4().hex}",
            workspace_id=workspace,
            campaign="abandoned_cart",
            profile_id="p-1",
            expires=int(time.time()) + 3600,
        )
        url = link_url(f"http://127.0.0.1:{ingest.public}", "open", sign(claims, secret))
        assert httpx.get(url, headers={"User-Agent": BROWSER}, timeout=10).status_code == 200


def _opened(prometheus_url: str, workspace: str, window: str = "1h") -> float:
    args = argparse.Namespace(prometheus=prometheus_url, metrics=None, range=window)
    source, samples = collect(args)
    assert source == f"Prometheus at {prometheus_url}, last {window}"
    return funnel(samples).get((workspace, "abandoned_cart"), {}).get("opened", 0.0)


def _scraped(prometheus_url: str, workspace: str, value: int) -> bool:
    """Prometheus holds the ingest counter's current value (a scrape after the last open)."""
    query = f'retarget_ingest_engagement_total{{workspace="{workspace}", action="opened"}} == {value}'
    found = httpx.get(f"{prometheus_url}/api/v1/query", params={"query": query}, timeout=5).json()
    return bool(found["data"]["result"])


def test_a_restarted_service_does_not_zero_its_funnel_row(ingest: Ingest, prometheus_url: str) -> None:
    workspace = f"ws-{uuid.uuid4().hex[:8]}"
    _open_pixel(ingest, workspace, 5)
    _wait("Prometheus scraped 5 opens", lambda: _scraped(prometheus_url, workspace, 5))
    assert _opened(prometheus_url, workspace) == 5  # born inside the range: all of it counts

    ingest.stop()  # SIGTERM; its counters die with it
    ingest.start()
    _open_pixel(ingest, workspace, 2)
    _wait("Prometheus scraped the restarted ingest's 2 opens", lambda: _scraped(prometheus_url, workspace, 2))

    # ingest itself now says 2; the range says 7
    assert _opened(prometheus_url, workspace) == 7
    own = funnel(from_metrics([f"http://127.0.0.1:{ingest.ops}/metrics"]))
    assert own[(workspace, "abandoned_cart")]["opened"] == 2


def test_without_prometheus_the_funnel_says_it_reads_totals_since_each_service_started(
    ingest: Ingest,
) -> None:
    workspace = f"ws-{uuid.uuid4().hex[:8]}"
    _open_pixel(ingest, workspace, 3)
    args = argparse.Namespace(prometheus=None, metrics=[f"http://127.0.0.1:{ingest.ops}/metrics"], range="1h")
    source, samples = collect(args)
    assert "totals since each started, no Prometheus" in source
    assert funnel(samples)[(workspace, "abandoned_cart")]["opened"] == 3


def test_the_local_stacks_prometheus_config_loads_every_rule_group(tmp_path: Path) -> None:
    """The stack's own config (deploy/prometheus/prometheus.yml), on a port of its own: its
    rule_files are found and every rule evaluates without an error."""
    exe = prometheus.binary()
    if exe is None:
        pytest.fail(
            "the prometheus binary is missing: install Debian's `prometheus` package (make system-deps)"
        )
    listen, log = f"127.0.0.1:{free_port()}", tmp_path / "prometheus.log"
    argv = prometheus.command(exe, prometheus.CONFIG, tmp_path / "data", listen, retention="1h")
    process = subprocess.Popen(argv, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    url = f"http://{listen}/api/v1/rules"

    def evaluated() -> bool:  # every group ran at least once, and no rule failed
        answer = httpx.get(url, timeout=5)
        if answer.status_code != 200:  # 503 while Prometheus is still starting: not yet
            return False
        groups = answer.json()["data"]["groups"]
        rules = [rule for group in groups for rule in group["rules"]]
        assert all(rule["health"] != "err" for rule in rules), [r for r in rules if r["health"] == "err"]
        return len(groups) == 4 and all(rule["health"] == "ok" for rule in rules)

    try:
        _wait("the rules evaluated", evaluated, log.read_text)
        groups = {g["name"] for g in httpx.get(url, timeout=5).json()["data"]["groups"]}
        assert groups == {"retarget-funnel", "retarget-pipeline", "retarget-reputation", "retarget-alerts"}
    finally:
        process.terminate()
        process.wait(30)
