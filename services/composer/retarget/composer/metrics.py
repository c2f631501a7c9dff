"""The composer's Prometheus metrics."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

RENDERED = Counter("retarget_composer_rendered_total", "Messages rendered, by campaign.", ["campaign"])
FAILED = Counter(
    "retarget_composer_failed_total",
    "Triggers that could not be rendered, by campaign and reason.",
    ["campaign", "reason"],
)
RENDER_SECONDS = Histogram(
    "retarget_composer_render_seconds",
    "Time to render one message.",
    ["campaign"],
    buckets=(0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.05),
)
