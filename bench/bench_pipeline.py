"""The whole pipeline: HTTP events → ingest → segmenter → composer → sender → Postfix's smtp-sink.

Starts the four services as processes on the local stack (one each, then two each with
--processes 1,2) under a topic prefix and bench workspace of their own; the workspace's
abandoned-cart campaign waits --wait seconds (applied through the config store, as the
demo does). Visitors identify and add to the cart; a --fire-share of them leave (a reminder
is due), the rest buy. Events are posted at --rate per second through /v1/batch for
--seconds. Reports events/s in, emails/s out at the sink (its own counter), trigger due →
SMTP 250 latency (due_at from the triggers topic, the 250 time from the send log's sent_at),
CPU per service (psutil), each stage's input lag (composer and sender: their groups' offsets
on the broker; the segmenter keeps offsets in a table, so its own lag gauge), the
bottleneck, and the ceiling by CPU per email.

    .venv/bin/python bench/bench_pipeline.py [--processes 1,2] [--rate 2500] [--seconds 60]
    .venv/bin/python bench/bench_pipeline.py --smoke --json report.json   # seconds, tiny rate

Needs the local stack (`retarget devstack up`, `retarget db migrate`) and Postfix (`make system-deps`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import psutil
from aiokafka import AIOKafkaConsumer
from pipeline_probe import LagProbe, cpu_seconds, gauge_total, sink_messages
from pipeline_report import STAGES, StageLoad, lag_at_ends, report
from pipeline_services import (
    BenchError,
    CountingSink,
    Running,
    start_services,
    stop_services,
    wait_groups_stable,
    wait_ready,
)
from pipeline_traffic import Posted, post_steadily

from retarget.cli._config import config_service
from retarget.common.identity import message_id_for
from retarget.common.kafka import delete_topics_with_prefixes
from retarget.common.settings import CommonSettings
from retarget.common.topics import Topics
from retarget.common.workspaces import Workspace, WorkspaceStore
from retarget.common.write_keys import WriteKeyStore
from retarget.config.defaults import bundled_campaigns
from retarget.devstack.env import stack_env

LATENCY_SOURCE = "due_at: the trigger on the triggers topic; 250: the send log's sent_at (sender's clock)"


async def prepare_workspace(stack: dict[str, str], workspace_id: str, prefix: str, wait_s: float) -> str:
    """The bench workspace, its write key, and its abandoned_cart waiting `wait_s` (config store)."""
    try:
        conn = await asyncpg.connect(stack["RETARGET_DATABASE_URL"], timeout=10)
    except (OSError, asyncpg.PostgresError) as exc:
        raise BenchError(
            f"cannot reach PostgreSQL ({exc})", "`retarget devstack up` and `retarget db migrate`"
        ) from None
    try:
        workspace = Workspace(workspace_id, "Bench Shop", "Bench Shop", "news@shop.example", "1 Main St")
        await WorkspaceStore(conn).upsert(workspace)
        write_key = await WriteKeyStore(conn).create(workspace_id)
    finally:
        await conn.close()
    settings = CommonSettings(
        kafka_bootstrap=stack["RETARGET_KAFKA_BOOTSTRAP"],
        database_url=stack["RETARGET_DATABASE_URL"],
        topic_prefix=prefix,
    )
    campaign = {**bundled_campaigns()["abandoned_cart"], "wait": f"{wait_s:g}s"}
    async with config_service(settings) as service:
        if service is None:
            raise BenchError(
                "cannot reach the config store", "`retarget devstack up` and `retarget db migrate`"
            )
        await service.apply(workspace_id, "campaign", "abandoned_cart", campaign, author="bench")
    return write_key


async def read_due_times(bootstrap: str, topic: str, into: dict[str, float], stop: asyncio.Event) -> None:
    """trigger_id → due_at (epoch s) of every trigger on the bench's own triggers topic."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    try:
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                for record in records:
                    trigger = json.loads(record.value or b"{}")
                    if trigger.get("dueAt"):  # the wire names are camelCase (schemas.py)
                        into[trigger["triggerId"]] = _epoch(trigger["dueAt"])
    finally:
        await consumer.stop()


def _epoch(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


async def sent_times(database_url: str, workspace_id: str) -> dict[str, float]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT message_id, sent_at FROM send_log WHERE workspace_id = $1 AND state = 'sent'",
            workspace_id,
        )
    finally:
        await conn.close()
    return {r["message_id"]: r["sent_at"].timestamp() for r in rows}


async def send_log_settled(database_url: str, workspace_id: str, timeout_s: float) -> int:
    """Wait until no message of the run is between its claim and its recorded outcome (the
    sink's 250 comes first); returns how many still are at the deadline."""
    conn = await asyncpg.connect(database_url)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            claimed = await conn.fetchval(
                "SELECT count(*) FROM send_log WHERE workspace_id = $1 AND state = 'claimed'", workspace_id
            )
            if claimed == 0 or time.monotonic() >= deadline:
                return int(claimed)
            await asyncio.sleep(0.2)
    finally:
        await conn.close()


class Watch:
    """Samples sink count, lag and CPU; prints one progress line per sample."""

    def __init__(
        self,
        running: list[Running],
        sink: CountingSink,
        lag: LagProbe,
        groups: dict[str, str],
        events_topic: str,
    ):
        self.running, self.sink, self.lag_probe, self.groups = running, sink, lag, groups
        self.events_topic = events_topic
        self.helpers = _servers()
        self.sink_series: list[tuple[float, int]] = []
        self.lag_series: list[tuple[float, dict[str, int]]] = []
        self.posted: Posted | None = None

    def cpu(self) -> dict[str, float]:
        return {
            stage: cpu_seconds([r.child.process.pid for r in self.running if r.name == stage])
            for stage in STAGES
        }

    def cpu_beside(self) -> dict[str, float]:
        """CPU seconds of what works for the pipeline beside it: the broker, PostgreSQL (its
        postmaster and backends, which other engineers' tests share) and this bench itself."""
        own = cpu_seconds([os.getpid()], children=False)  # its children are the services
        return {
            "bench (posting, watching)": own,
            **{name: cpu_seconds(p) for name, p in self.helpers.items()},
        }

    async def lag(self) -> dict[str, int]:
        by_group = await self.lag_probe.lag()
        lag = {stage: by_group[group] for stage, group in self.groups.items() if group in by_group}
        segmenters = [
            r.ready_url.replace("/readyz", "/metrics") for r in self.running if r.name == "segmenter"
        ]
        async with httpx.AsyncClient() as client:
            lag["segmenter"] = await gauge_total(
                client, segmenters, "retarget_segmenter_consumer_lag", topic=self.events_topic
            )
        return {stage: lag[stage] for stage in ("segmenter", "composer", "sender")}

    async def run(self, stop: asyncio.Event) -> None:
        last_lag = last_print = 0.0
        while not stop.is_set():
            now = time.monotonic()
            self.sink_series.append((now, sink_messages(self.sink.counter_file)))
            if now - last_lag >= 1:
                last_lag = now
                self.lag_series.append((now, await self.lag()))
            if now - last_print >= 5:
                last_print = now
                lag = self.lag_series[-1][1]
                posted = self.posted
                sent = f"events posted {posted.events_accepted:,}" if posted else ""
                print(
                    f"  {sent}  emails at the sink {self.sink_series[-1][1]:,}  lag "
                    + " ".join(f"{k}={v:,}" for k, v in lag.items())
                    + f"  load {os.getloadavg()[0]:.1f}",
                    flush=True,
                )
            await asyncio.sleep(0.25)

    def sink_span(self) -> float:
        """From the first message at the sink to the last (sampled every 0.25 s)."""
        counts = self.sink_series
        first = next((t for t, c in counts if c > 0), None)
        final = counts[-1][1] if counts else 0
        last = next((t for t, c in counts if c >= final), None)
        return (last - first) if first is not None and last is not None else 0.0


async def one_run(args: argparse.Namespace, processes: int, stack: dict[str, str]) -> dict[str, object]:
    tag = uuid.uuid4().hex[:8]
    prefix, workspace_id = f"pb{tag}", f"pb-{tag}"
    topics = Topics(prefix)
    load_average = dict(zip(("1m", "5m", "15m"), (round(x, 2) for x in os.getloadavg()), strict=True))
    print(f"==> {processes} process(es) per service; prefix {prefix}; load average {load_average['1m']}")
    write_key = await prepare_workspace(stack, workspace_id, prefix, args.wait)
    folder = Path(tempfile.mkdtemp(prefix="retarget-bench-pipeline-"))
    sink = CountingSink(folder)
    env = {
        **stack,
        "RETARGET_TOPIC_PREFIX": prefix,
        "RETARGET_TOPIC_PARTITIONS": str(args.partitions),
        "RETARGET_LINK_SECRET": secrets.token_hex(16),
        "RETARGET_LOG_LEVEL": "WARNING",
        "RETARGET_SMTP_URL": f"smtp://127.0.0.1:{sink.port}",
        "RETARGET_SMTP_CONNECTIONS": str(args.connections),
        "RETARGET_SENDER_GROUP": f"{prefix}-sender",
        # limits high: the bench measures the pipeline, not the configured sending rates
        "RETARGET_RATE_DOMAIN": "100000/100000",
        "RETARGET_RATE_LIMIT_EVENTS_PER_S": "1000000",
        "RETARGET_RATE_LIMIT_BURST": "1000000",
    }
    groups = {
        "segmenter": f"{prefix}-segmenter",
        "composer": f"{prefix}-composer",
        "sender": f"{prefix}-sender",
    }
    inputs = {"segmenter": topics.events, "composer": topics.triggers, "sender": topics.outbound}
    running: list[Running] = []
    # the segmenter's offsets are in a table of its own, its lag on its /metrics (Watch.lag)
    lag = LagProbe(stack["RETARGET_KAFKA_BOOTSTRAP"], {groups[s]: inputs[s] for s in ("composer", "sender")})
    stop = asyncio.Event()
    due: dict[str, float] = {}
    finished = False
    try:
        print(f"    starting {processes * 4} processes (logs in {folder})", flush=True)
        running = start_services(processes, env, folder)
        await asyncio.to_thread(wait_ready, running, args.ready_timeout)
        await wait_groups_stable(
            stack["RETARGET_KAFKA_BOOTSTRAP"], {g: processes for g in groups.values()}, args.ready_timeout
        )
        await lag.start()
        watch = Watch(running, sink, lag, groups, topics.events)
        tasks = [
            asyncio.create_task(watch.run(stop)),
            asyncio.create_task(
                read_due_times(stack["RETARGET_KAFKA_BOOTSTRAP"], topics.triggers, due, stop)
            ),
        ]
        ingests = [r.child.url for r in running if r.name == "ingest"]
        clients = [httpx.AsyncClient(base_url=u, auth=(write_key, ""), timeout=30) for u in ingests]
        cpu_start, beside_start = watch.cpu(), watch.cpu_beside()
        machine_start, started = psutil.cpu_times(), time.monotonic()
        print(f"    posting {args.rate:,} events/s for {args.seconds} s", flush=True)
        posted = await post_steadily(
            clients,
            run=tag,
            rate=args.rate,
            seconds=args.seconds,
            fire_share=args.fire_share,
            on_tick=lambda p: setattr(watch, "posted", p),
        )
        lag_start, lag_end = lag_at_ends(watch.lag_series, posted.started, posted.ended)
        for client in clients:
            await client.aclose()
        if posted.failures:
            print(
                f"    {posted.failures:,} events not accepted; last answer: {posted.last_error}", flush=True
            )
        await drain(watch, posted.firing, args.drain_timeout)
        window = time.monotonic() - started
        cpu_end, beside_end = watch.cpu(), watch.cpu_beside()
        machine_busy = busy_share(machine_start, psutil.cpu_times())
        stop.set()
        await asyncio.gather(*tasks)
        # the sink answers 250 before the sender records 'sent' (a group commit later): counted
        # the moment the sink reached the expected number, the last few looked unsent (#19, atk19)
        await send_log_settled(stack["RETARGET_DATABASE_URL"], workspace_id, timeout_s=30)
        sent = await sent_times(stack["RETARGET_DATABASE_URL"], workspace_id)
        latencies = [sent[message_id_for(t)] - d for t, d in due.items() if message_id_for(t) in sent]
        loads = [
            StageLoad(
                stage,
                processes,
                cpu_end[stage] - cpu_start[stage],
                window,
                lag_start.get(stage),
                lag_end.get(stage),
            )
            for stage in STAGES
        ]
        finished = True
        result = report(
            processes=processes,
            posted_s=posted.ended - posted.started,
            events_accepted=posted.events_accepted,
            visitors_firing=posted.firing,
            emails_at_sink=sink_messages(sink.counter_file),
            sent_in_send_log=len(sent),
            sink_span_s=watch.sink_span(),
            latencies_s=latencies,
            loads=loads,
            machine_cores=psutil.cpu_count() or 1,
            machine_busy=machine_busy,
            load_average=load_average,
            latency_source=LATENCY_SOURCE,
        )
        result["cores_busy_beside"] = {
            name: round((beside_end[name] - beside_start[name]) / window, 2) for name in beside_end
        }
        return result
    finally:
        stop.set()
        await asyncio.to_thread(stop_services, running)
        sink.stop()
        await lag.stop()
        await cleanup(stack, prefix, workspace_id)
        if finished:  # a failed run keeps its logs for reading
            shutil.rmtree(folder, ignore_errors=True)


def _servers() -> dict[str, list[int]]:
    """The processes listening on the stack's Kafka and PostgreSQL ports (when visible)."""
    from retarget.devstack.env import database_url, host_port, kafka_bootstrap
    from retarget.devstack.procs import listener

    found = {}
    for name, address, default in (("kafka", kafka_bootstrap(), 9092), ("postgres", database_url(), 5432)):
        process = listener(host_port(address, default)[1])
        if process is not None:
            found[name] = [process.pid]
    return found


def busy_share(before: Any, after: Any) -> float:
    """Share of all cores' time not idle between two psutil.cpu_times() readings."""
    total = sum(after) - sum(before)
    idle = (after.idle + getattr(after, "iowait", 0)) - (before.idle + getattr(before, "iowait", 0))
    return 1 - idle / total if total > 0 else 0.0


async def drain(watch: Watch, expected: int, timeout_s: float) -> None:
    """Until every due reminder reached the sink, or nothing arrived for `timeout_s`."""
    last_count, last_change = -1, time.monotonic()
    while True:
        count = sink_messages(watch.sink.counter_file)
        if count >= expected:
            return
        if count != last_count:
            last_count, last_change = count, time.monotonic()
        elif time.monotonic() - last_change > timeout_s:
            print(f"    only {count:,} of {expected:,} emails reached the sink; read the logs", flush=True)
            return
        await asyncio.sleep(0.5)


async def cleanup(stack: dict[str, str], prefix: str, workspace_id: str) -> None:
    await delete_topics_with_prefixes(stack["RETARGET_KAFKA_BOOTSTRAP"], [prefix])
    conn = await asyncpg.connect(stack["RETARGET_DATABASE_URL"])
    try:
        await conn.execute("DELETE FROM send_log WHERE workspace_id = $1", workspace_id)
    finally:
        await conn.close()


def show(result: dict[str, object]) -> None:
    latency = result["latency_due_to_250_s"]
    assert isinstance(latency, dict)
    print(
        f"  {result['processes_per_service']} per service: in {result['events_per_s_in']:,} events/s, "
        f"out {result['emails_per_s_out']:,} emails/s ({result['emails_at_sink']:,} of {result['emails_expected']:,}; "
        f"{result['sent_in_send_log']:,} sent in the send log), "
        f"due→250 p50 {latency['p50']} s p99 {latency['p99']} s"
    )
    stages = result["stages"]
    assert isinstance(stages, dict)
    for stage, figures in stages.items():
        print(
            f"    {stage:<9} CPU {figures['cpu_cores_busy']:.2f} cores ({figures['cpu_per_process']:.0%} per process), "
            f"lag {figures['lag_start']} → {figures['lag_end']}"
        )
    print(f"    machine: {result['machine']}; load average at start {result['load_average']}")
    print(f"    cores busy beside the services: {result['cores_busy_beside']}")
    print(f"    bottleneck: {result['bottleneck']}")
    print(f"    ceiling by CPU per email (emails/s): {result['ceiling_emails_per_s']}", flush=True)


async def main(args: argparse.Namespace) -> int:
    try:
        stack = stack_env()
    except Exception as exc:  # the stack's state cannot be read at all
        raise BenchError(f"the local stack is not available ({exc})", "`retarget devstack up`") from exc
    results = []
    for processes in args.processes:
        results.append(await one_run(args, processes, stack))
        show(results[-1])
    if args.json:
        text = json.dumps({"args": _args_of(args), "runs": results}, indent=2) + "\n"
        await asyncio.to_thread(Path(args.json).write_text, text)
    return 0


def _args_of(args: argparse.Namespace) -> dict[str, object]:
    return {k: v for k, v in vars(args).items() if k != "json"}


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--processes", default="1,2", help="processes per service, one run each: 1,2")
    parser.add_argument("--rate", type=float, default=2500, help="events posted per second")
    parser.add_argument("--seconds", type=float, default=60, help="how long events are posted")
    parser.add_argument("--wait", type=float, default=5, help="the abandoned_cart campaign's wait, seconds")
    parser.add_argument(
        "--fire-share", type=float, default=0.5, help="share of visitors whose reminder is due"
    )
    parser.add_argument("--partitions", type=int, default=12, help="partitions of the bench's topics")
    parser.add_argument("--connections", type=int, default=50, help="SMTP connections per sender process")
    parser.add_argument(
        "--ready-timeout", type=float, default=240, help="seconds for the services to be ready"
    )
    parser.add_argument(
        "--drain-timeout", type=float, default=60, help="give up after this long without an email"
    )
    parser.add_argument("--json", help="also write the report to this file")
    parser.add_argument("--smoke", action="store_true", help="a few seconds at a tiny rate, one process each")
    args = parser.parse_args(argv)
    if args.smoke:
        args.processes, args.rate, args.seconds, args.wait = "1", 20, 3, 2
    args.processes = [int(n) for n in str(args.processes).split(",")]
    return args


if __name__ == "__main__":
    try:
        raise SystemExit(asyncio.run(main(parse())))
    except KeyboardInterrupt:
        raise SystemExit(130) from None
