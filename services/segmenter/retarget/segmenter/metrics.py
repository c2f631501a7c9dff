"""The segmenter's Prometheus metrics."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

EVENTS = Counter("retarget_segmenter_events_total", "Events consumed, by outcome.", ["outcome"])
TRIGGERS_FIRED = Counter(
    "retarget_segmenter_triggers_fired_total",
    "Triggers sent to the triggers topic.",
    ["workspace", "campaign"],
)
TIMER_LAG = Histogram(
    "retarget_segmenter_timer_lag_seconds",
    "Delay between a trigger's due time and its firing (fired_at - due_at).",
    buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300),
)
PROCESSING = Histogram(
    "retarget_segmenter_event_seconds",
    "Time to apply one event to its profile.",
    buckets=(0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1),
)
