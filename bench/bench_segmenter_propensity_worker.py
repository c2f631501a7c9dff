"""The propensity condition on a real worker (Kafka, RocksDB, a separate process): events/s and
CPU per event with it off and on, beside a bare aiokafka consumer's rate on the same topic.

    .venv/bin/python bench/bench_segmenter_propensity_worker.py [--events 30000] [--runs 2]

Needs the local stack. Per run, for each mode: fresh topics, bench_segmenter.py's shop mix
produced, one worker with a 2 s cart wait drains it (so the cart reminders fire during the
drain), events/s and CPU µs an event from the worker's own counter (bench_segmenter.Worker).
off: the sample campaigns. on: abandoned_cart with `propensity_below: 0.6` and a model for the
workspace in PostgreSQL (every cart reminder scored). The bare consumer reads the same records
in the same run (the ceiling). The bench's model rows are deleted at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
from bench_segmenter import MADE, WS, Worker, ceiling, fresh_topics, produce, shop_events

from retarget.common.kafka import delete_topics_with_prefixes
from retarget.common.workspaces import Workspace, WorkspaceStore
from retarget.segmenter.propensity.features import FEATURES
from retarget.segmenter.propensity.model import KIND, LogisticModel
from retarget.segmenter.propensity.store import ModelStore
from retarget.segmenter.settings import DEFAULT_CAMPAIGNS_DIR

DSN = os.environ.get("RETARGET_DATABASE_URL", "postgresql://retarget@127.0.0.1:15432/retarget")
BOOTSTRAP = os.environ.get("RETARGET_KAFKA_BOOTSTRAP", "127.0.0.1:19092")
N = len(FEATURES)


async def store_model() -> None:
    conn = await asyncpg.connect(DSN)
    try:
        if await WorkspaceStore(conn).get(WS) is None:
            await WorkspaceStore(conn).upsert(
                Workspace(WS, "Bench", "Bench", "bench@shop.example", "1 Main St")
            )
        model = LogisticModel(
            kind=KIND,
            features=list(FEATURES),
            mean=[1.0] * N,
            scale=[2.0] * N,
            coef=[0.1 * (i % 5 - 2) for i in range(N)],
            intercept=-1.0,
        )
        await ModelStore(conn).save(WS, model, {}, until=datetime.now(UTC), horizon=timedelta(days=7))
    finally:
        await conn.close()


async def drop_models() -> None:
    conn = await asyncpg.connect(DSN)
    try:
        await conn.execute("DELETE FROM propensity_models WHERE workspace_id = $1", WS)
    finally:
        await conn.close()


def campaigns_with_condition(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for source in DEFAULT_CAMPAIGNS_DIR.glob("*.yaml"):
        text = source.read_text()
        if source.name == "abandoned_cart.yaml":
            text = text.replace(
                "  cart_not_empty: true\n", "  cart_not_empty: true\n  propensity_below: 0.6\n"
            )
            assert "propensity_below" in text
        (folder / source.name).write_text(text)
    return folder


async def one_mode(folder: Path, records: list, mode: str) -> tuple[float, float, float, float]:
    prefix = f"bench{uuid.uuid4().hex[:8]}"
    topics = await fresh_topics(prefix)
    await produce(topics.events, records)
    bare = await ceiling(topics.events, len(records))
    env = {"RETARGET_CAMPAIGN_WAITS": '{"abandoned_cart": "2s"}', "RETARGET_WAIT_SCALE": "1000"}
    if mode == "on":
        env["RETARGET_CAMPAIGNS_DIR"] = str(campaigns_with_condition(folder / "campaigns"))
    worker = Worker(folder / mode, prefix, **env)
    try:
        await worker.wait_up()
        rate = await worker.drain(len(records))
        await worker.settle()
        scored = worker.metric("retarget_segmenter_propensity_total")
    finally:
        worker.stop()
    await delete_topics_with_prefixes(BOOTSTRAP, {prefix})
    MADE.discard(prefix)
    return rate, worker.cpu_us_per_event, bare, scored


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=30_000)
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    records = shop_events(args.events)
    await store_model()
    results: dict[str, list[tuple[float, float, float, float]]] = {"off": [], "on": []}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for i in range(args.runs):
                for mode in ("off", "on"):
                    rate, cpu, bare, scored = await one_mode(Path(tmp) / f"{i}", records, mode)
                    results[mode].append((rate, cpu, bare, scored))
                    print(
                        f"run {i + 1} {mode}: {rate:,.0f} events/s, {cpu:.1f} µs CPU an event, "
                        f"ceiling (bare consumer) {bare:,.0f}/s, {rate / bare:.0%}; scored {scored:.0f}",
                        flush=True,
                    )
    finally:
        await drop_models()
    for mode, rows in results.items():
        print(
            f"median {mode}: {statistics.median(r[0] for r in rows):,.0f} events/s, "
            f"{statistics.median(r[1] for r in rows):.1f} µs CPU an event, "
            f"ratio to the ceiling {statistics.median(r[0] / r[2] for r in rows):.0%}"
        )


if __name__ == "__main__":
    asyncio.run(main())
