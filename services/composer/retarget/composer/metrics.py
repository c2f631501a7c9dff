"""The composer's Prometheus metrics. Labels are bounded: campaign names come from the
segmenter's campaign list, reasons from the fixed set below."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

RENDERED = Counter("retarget_composer_rendered_total", "Messages composed, by campaign.", ["campaign"])
FAILED = Counter(
    "retarget_composer_failed_total",
    "Triggers dead-lettered instead of composed, by campaign and reason: undecodable, "
    "unknown_workspace, template, template_limit (too big or too much work: limits.py), "
    "missing_variable, bad_recipient, bad_sender, bad_data, coupon (a malformed coupon spec), internal.",
    ["campaign", "reason"],
)
RENDER_SECONDS = Histogram(
    "retarget_composer_render_seconds",
    "Time to compose one message that succeeded: context, templates, links and RFC 5322 bytes.",
    ["campaign"],
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05),
)
LINKS_DROPPED = Counter(
    "retarget_composer_links_dropped_total",
    "Links left out of a message because the workspace's emails may not link there (product "
    "and image URLs, survey, any other link), by reason: off_domain, scheme (not https), "
    "userinfo, port, host (not a plain DNS name), malformed.",
    ["reason"],
)
COUPONS_ISSUED = Counter(
    "retarget_composer_coupons_issued_total",
    "Coupon codes rendered into an email after being stored (a replay counts again), by campaign "
    "and mode (unique, pool).",
    ["campaign", "mode"],
)
COUPON_POOL_EMPTY = Counter(
    "retarget_composer_coupon_pool_empty_total",
    "Emails sent without their incentive because the campaign's coupon pool had no free code.",
    ["campaign"],
)
COUPON_POOL_REMAINING = Gauge(
    "retarget_composer_coupon_pool_remaining",
    "Free codes left in a workspace's coupon pool, as this composer last claimed from it.",
    ["workspace", "pool"],
)
