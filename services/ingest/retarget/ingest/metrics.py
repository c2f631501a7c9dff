"""Ingest's Prometheus metrics. Labels are bounded sets: route templates, status codes,
the six event types (+ "unknown"), and error codes — never ids or write keys.

They live in the process-global registry; with several worker processes each serves its
own numbers (prometheus-client's multiprocess mode is a later concern).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

REQUESTS = Counter(
    "retarget_ingest_requests_total", "HTTP requests, by route and status.", ["route", "status"]
)
EVENTS = Counter(
    "retarget_ingest_events_total",
    "Events by type and outcome (accepted/rejected) and the reason of a rejection.",
    ["type", "outcome", "reason"],
)
PAYLOAD_BYTES = Histogram(
    "retarget_ingest_payload_bytes",
    "Decoded request body size, by route.",
    ["route"],
    buckets=(256, 1024, 4096, 16384, 32768, 65536, 131072, 262144, 524288, 1048576),
)
PRODUCE_SECONDS = Histogram(
    "retarget_ingest_produce_seconds",
    "Time from handing a request's events to Kafka to their acknowledgement.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
IN_FLIGHT_EVENTS = Gauge("retarget_ingest_in_flight_events", "Events handed to Kafka, not yet acknowledged.")
IN_FLIGHT_REQUESTS = Gauge("retarget_ingest_in_flight_requests", "HTTP requests being handled.")


def count_accepted(event_type: str) -> None:
    EVENTS.labels(event_type, "accepted", "").inc()


def count_rejected(event_type: str | None, reason: str) -> None:
    EVENTS.labels(event_type or "unknown", "rejected", reason).inc()
