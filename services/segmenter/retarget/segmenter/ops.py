"""/healthz, /readyz and /metrics on faust's web server; the table-size estimate for a gauge and
one partition's items for an erasure scan (both reach into faust's store: faust_internals.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import faust
from aiokafka.partitioner import DefaultPartitioner
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from retarget.common.ops import partitions_by_topic
from retarget.segmenter import faust_internals


def add_ops_pages(
    app: faust.App,
    *,
    config_ready: Callable[[], bool] = lambda: True,
    events_read: Callable[[], Iterable[tuple[str, int]]] = tuple,
) -> None:
    """`events_read`: the events partitions the events loop reads (faust assigns their owner topic)."""

    @app.page("/healthz")
    async def healthz(web: Any, request: Any) -> Any:
        return web.json({"status": "ok"})

    @app.page("/readyz")
    async def readyz(web: Any, request: Any) -> Any:
        problems = {}
        if app.rebalancing:
            problems["kafka"] = "rebalancing"
        if app.in_recovery:
            problems["tables"] = "recovering from changelog"
        if not config_ready():
            problems["config"] = "reading the change feed"
        actives = app.assignor.assigned_actives()
        assigned = len(actives) if not problems else 0
        body = {
            "ready": not problems,
            "problems": problems,
            "assigned_topic_partitions": assigned,
            # what this worker owns (source topics and table changelogs), to watch replicas share them
            "partitions": partitions_by_topic([*actives, *events_read()]),
        }
        return web.json(body, status=503 if problems else 200)

    @app.page("/metrics")
    async def metrics(web: Any, request: Any) -> Any:
        # aiohttp wants the charset outside content_type; Prometheus text is UTF-8 by definition
        content_type = CONTENT_TYPE_LATEST.split(";")[0] + "; version=0.0.4"
        return web.bytes(generate_latest(REGISTRY), content_type=content_type)


def table_size(table: Any) -> int:
    """Keys in the active partitions: RocksDB's own estimate (cheap), else an exact count."""
    dbs = faust_internals.open_partition_dbs(table)
    if dbs is None:
        return len(table.data)
    topic = table.changelog_topic_name
    actives = {tp.partition for tp in table.app.assignor.assigned_actives() if tp.topic == topic}
    total = 0
    for partition, db in dbs.items():
        if partition in actives:
            try:
                total += int(db.property_int_value("rocksdb.estimate-num-keys") or 0)
            except Exception:  # an older rocksdict without properties: leave the gauge alone
                return -1
    return total


def partition_items(table: Any, partition: int, partitions: int) -> Iterable[tuple[bytes, bytes]]:
    """One partition's (key, value) pairs: RocksDB keeps a database per partition; the memory
    store (tests) is filtered with the producer's default partitioner."""
    dbs = faust_internals.open_partition_dbs(table)
    if dbs is not None:
        db = dbs.get(partition)
        return faust_internals.visible_items(table, db) if db is not None else ()
    every = list(range(partitions))
    choose = DefaultPartitioner()
    return ((k, v) for k, v in table.items() if choose(k, every, every) == partition)
