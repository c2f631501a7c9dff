"""Ingest's Prometheus metrics. Labels are bounded sets: route templates, status codes,
the six event types (+ "unknown"), and error codes — never ids or write keys.

With several worker processes (RETARGET_WORKERS > 1) each process writes its samples to
files in PROMETHEUS_MULTIPROC_DIR (prometheus-client's multiprocess mode, set up by the
supervisor before any worker imports this module) and /metrics, answered by any one of the
workers, adds up every worker's files. The gauges are summed over live workers.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from retarget.common.metrics import labelled

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
IN_FLIGHT_EVENTS = Gauge(
    "retarget_ingest_in_flight_events",
    "Events handed to Kafka, not yet acknowledged.",
    multiprocess_mode="livesum",
)
IN_FLIGHT_REQUESTS = Gauge(
    "retarget_ingest_in_flight_requests", "HTTP requests being handled.", multiprocess_mode="livesum"
)
TRACKING = Counter(
    "retarget_ingest_tracking_total",
    "Tracking-link requests (open pixel, click, unsubscribe) by kind and outcome.",
    ["kind", "outcome"],
)
ENGAGEMENT = Counter(
    "retarget_ingest_engagement_total",
    "What recipients did with an email, for the funnel: opened / clicked (people), "
    "opened_machine / clicked_machine (privacy proxies, scanners), unsubscribed (first time only), "
    "bounced / complained (reported later by mail, first time only).",
    ["workspace", "campaign", "action"],
)
COUPONS_REDEEMED = Counter(
    "retarget_ingest_coupons_redeemed_total",
    "Coupon codes redeemed through the API (once each; a retry for the same order is not "
    "counted again), by workspace and the campaign whose email showed the code: the funnel's redeemed.",
    ["workspace", "campaign"],
)
ENGAGEMENT_UNIQUE = Counter(
    "retarget_ingest_engagement_unique_total",
    "Emails opened / clicked by a person (machine fetches left out), each email counted once per "
    "action however often it is opened or clicked; next to retarget_ingest_engagement_total.",
    ["workspace", "campaign", "action"],
)
KEY_LOOKUPS = Counter(
    "retarget_ingest_key_lookups_total",
    "Credential lookups in PostgreSQL by credential (write_key/secret_key) and outcome "
    "(found/unknown), and lookups refused because the budget for keys not seen recently was "
    "spent (shed: a spray of made-up keys, or a cold cache under heavy traffic).",
    ["credential", "outcome"],
)
MAIL_REFUSED = Counter(
    "retarget_ingest_mail_refused_total",
    "Mails the mailbox refused, by reason: bad_bounce_address (a bounces+ recipient whose MAC "
    "is wrong), bad_mac_budget (MACs not checked while too many wrong ones came), "
    "dsn_not_to_bounce_address, arf_not_to_feedback_address, arf_unverified (a "
    "report that does not prove itself), mime_too_complex, read_too_slow, busy, unreadable, "
    "too_many_sessions (a connection beyond MAILBOX_MAX_SESSIONS).",
    ["reason"],
)

CONTENT_TYPE = CONTENT_TYPE_LATEST


_child = labelled


def count_accepted(event_type: str, count: int = 1) -> None:
    _child(EVENTS, event_type, "accepted", "").inc(count)  # type: ignore[attr-defined]


def count_rejected(event_type: str | None, reason: str, count: int = 1) -> None:
    _child(EVENTS, event_type or "unknown", "rejected", reason).inc(count)  # type: ignore[attr-defined]


def count_key_lookup(credential: str, outcome: str) -> None:
    _child(KEY_LOOKUPS, credential, outcome).inc()  # type: ignore[attr-defined]


def count_request(route: str, status: int) -> None:
    _child(REQUESTS, route, str(status)).inc()  # type: ignore[attr-defined]


def count_tracking(kind: str, outcome: str) -> None:
    _child(TRACKING, kind, outcome).inc()  # type: ignore[attr-defined]


def count_mail_refused(reason: str) -> None:
    _child(MAIL_REFUSED, reason).inc()  # type: ignore[attr-defined]


def count_engagement(workspace: str, campaign: str, action: str) -> None:
    ENGAGEMENT.labels(workspace, campaign, action).inc()


def count_redeemed(workspace: str, campaign: str) -> None:
    COUPONS_REDEEMED.labels(workspace, campaign).inc()


def count_unique_engagement(workspace: str, campaign: str, action: str) -> None:
    ENGAGEMENT_UNIQUE.labels(workspace, campaign, action).inc()


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def exposition() -> bytes:
    """The text /metrics serves: this process's registry, or every worker's in multiprocess mode."""
    if multiprocess_dir() is None:
        return generate_latest(REGISTRY)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return generate_latest(registry)


def forget_this_process() -> None:
    """On a worker's clean exit: drop its live gauges so the sums count live workers only."""
    if multiprocess_dir() is not None:
        multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]
