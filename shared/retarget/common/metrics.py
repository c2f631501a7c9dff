"""Metrics every pipeline stage shares. Service-specific metrics live beside their service."""

from __future__ import annotations

import functools
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

STAGE_RECORDS = Counter(
    "retarget_stage_records_total", "Records a stage consumed, by outcome.", ["stage", "outcome"]
)
DEAD_LETTERS = Counter(
    "retarget_dead_letters_total",
    "Records sent to the dead-letter topic, by the stage that could not use them (segmenter, "
    "composer, sender, sender-retry). Each stage creates its series at 0 on start, so the first "
    "dead letter is an increase an alert sees.",
    ["stage"],
)
STAGE_CONSUMER_LAG = Gauge(
    "retarget_stage_consumer_lag",
    "Records of a partition the stage's consumer group has not committed yet (end offset minus "
    "committed offset), by stage, topic and partition; refreshed every few seconds.",
    ["stage", "topic", "partition"],
)
STAGE_BATCH_SECONDS = Histogram(
    "retarget_stage_batch_seconds",
    "Time to process one consumed batch, produce its output and commit.",
    ["stage"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


@functools.cache
def labelled(metric: Any, *labels: str) -> Any:
    """`metric.labels(*labels)`, looked up once: `.labels()` costs a lock and a dict walk per call,
    which shows on hot paths (a few per event)."""
    return metric.labels(*labels)
