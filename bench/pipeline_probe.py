"""What the pipeline benchmark watches while it runs: CPU seconds per process (psutil), each
consumer group's lag on its input topic (from the broker: end offsets minus committed
offsets; the segmenter keeps its offsets in a table, not in Kafka, so its lag is its own
gauge of the broker's high watermark minus its position), and how many messages Postfix's
smtp-sink has received (its -c counters)."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import httpx
import psutil
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from prometheus_client.parser import text_string_to_metric_families

SINK_COUNT = re.compile(rb"mesg=(\d+)")


def cpu_seconds(pids: Sequence[int], *, children: bool = True) -> float:
    """User + system CPU of these processes (and their children) so far (gone ones count 0)."""
    total = 0.0
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            process = psutil.Process(pid)
            for each in (process, *(process.children(recursive=True) if children else ())):
                with contextlib.suppress(psutil.Error):
                    times = each.cpu_times()
                    total += times.user + times.system
    return total


def sink_messages(counter_file: Path) -> int:
    """Messages smtp-sink has accepted: the last `mesg=N` it printed (it rewrites one line with \\r)."""
    with contextlib.suppress(FileNotFoundError), open(counter_file, "rb") as f:
        f.seek(0, 2)
        f.seek(max(0, f.tell() - 256))
        found = SINK_COUNT.findall(f.read())
        return int(found[-1]) if found else 0
    return 0


class LagProbe:
    """Lag of consumer groups on their topics, read from the broker."""

    def __init__(self, bootstrap: str, groups: Mapping[str, str]) -> None:
        self.groups = dict(groups)  # group → topic it consumes
        self.admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        self.offsets = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        self.partitions: dict[str, list[int]] = {}

    async def start(self) -> None:
        await self.admin.start()
        await self.offsets.start()

    async def stop(self) -> None:
        await self.offsets.stop()
        await self.admin.close()

    async def lag(self) -> dict[str, int]:
        """Records not yet committed, per group (a partition with no commit counts from 0)."""
        result = {}
        for group, topic in self.groups.items():
            if topic not in self.partitions:
                [described] = await self.admin.describe_topics([topic])
                self.partitions[topic] = [p["partition"] for p in described["partitions"]]
            tps = [TopicPartition(topic, p) for p in self.partitions[topic]]
            ends = await self.offsets.end_offsets(tps) if tps else {}
            committed = await self.admin.list_consumer_group_offsets(group, partitions=tps)
            result[group] = sum(
                ends[tp] - max(0, committed[tp].offset if tp in committed else 0) for tp in tps
            )
        return result


async def gauge_total(client: httpx.AsyncClient, urls: Sequence[str], name: str, **labels: str) -> int:
    """The sum of a gauge's samples with these labels over these /metrics pages (a page that
    fails counts 0)."""
    total = 0.0
    for url in urls:
        try:
            text = (await client.get(url, timeout=5)).text
        except httpx.HTTPError:
            continue
        for family in text_string_to_metric_families(text):
            total += sum(
                sample.value
                for sample in family.samples
                if sample.name == name and labels.items() <= sample.labels.items()
            )
    return int(total)
