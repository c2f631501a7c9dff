"""The per-campaign funnel: triggered → sent → opened → clicked → converted → redeemed, and revenue.

Each stage is a counter some service exports with `workspace` and `campaign` labels; this
module only says which counter (and which label value) feeds which column, and adds the
samples up. Where the samples come from (Prometheus' API or the services' /metrics) is the
caller's business, so this stays pure and testable.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from retarget.common.experiment_funnel import EXPERIMENT_METRICS

STAGES = (
    "triggered",
    "suppressed",
    "capped",
    "sent",
    "deferred",
    "bounced",
    "opened",
    "opened_unique",  # emails a person opened, each once (opened counts every human open)
    "opened_machine",  # privacy relays' prefetches and scanners: never people
    "clicked",
    "clicked_unique",
    "unsubscribed",
    "converted",
    "redeemed",  # coupon codes redeemed through the API, by the campaign whose email showed them
    "revenue",
)


@dataclass(frozen=True)
class Source:
    metric: str  # sample name as exposed, e.g. retarget_sender_outcomes_total
    stage: str
    label: str | None = None  # when one counter feeds several stages: the label naming the stage
    value: str | None = None


SOURCES = [
    Source("retarget_segmenter_triggers_fired_total", "triggered"),
    *(
        Source("retarget_sender_outcomes_total", stage, "outcome", stage)
        for stage in ("suppressed", "capped", "sent", "deferred", "bounced")
    ),
    Source("retarget_ingest_engagement_total", "opened", "action", "opened"),
    Source("retarget_ingest_engagement_unique_total", "opened_unique", "action", "opened"),
    Source("retarget_ingest_engagement_total", "opened_machine", "action", "opened_machine"),
    Source("retarget_ingest_engagement_total", "clicked", "action", "clicked"),
    Source("retarget_ingest_engagement_unique_total", "clicked_unique", "action", "clicked"),
    Source("retarget_ingest_engagement_total", "unsubscribed", "action", "unsubscribed"),
    Source("retarget_ingest_engagement_total", "bounced", "action", "bounced"),  # reported later by mail
    Source("retarget_segmenter_conversions_total", "converted"),
    Source("retarget_segmenter_revenue_total", "revenue"),
    Source("retarget_ingest_coupons_redeemed_total", "redeemed"),
]
# the experiment counters too (experiment_funnel.py): read with the funnel's, at the same instant
METRIC_NAMES = sorted({s.metric for s in SOURCES} | set(EXPERIMENT_METRICS))

Sample = tuple[str, dict[str, str], float]  # (name, labels, value)
Row = dict[str, float]


def revenue_text(row: Row) -> str:
    """`USD 1,234.00`, or `USD 10.00 + EUR 5.00` when a campaign sold in several currencies."""
    parts = [
        (k.removeprefix("revenue_"), v) for k, v in sorted(row.items()) if k.startswith("revenue_") and v
    ]
    if not parts:
        return f"{row.get('revenue', 0.0):,.2f}"
    return " + ".join(f"{currency} {amount:,.2f}" for currency, amount in parts)


def funnel(samples: Iterable[Sample]) -> dict[tuple[str, str], Row]:
    """Rows keyed by (workspace, campaign), one column per stage; revenue also per currency
    (`revenue_USD`, …), since `revenue` adds amounts in different currencies as they are."""
    by_metric: dict[str, list[Source]] = defaultdict(list)
    for source in SOURCES:
        by_metric[source.metric].append(source)
    rows: dict[tuple[str, str], Row] = defaultdict(lambda: dict.fromkeys(STAGES, 0.0))
    for name, labels, value in samples:
        for source in by_metric.get(name, []):
            if source.label is not None and labels.get(source.label) != source.value:
                continue
            key = (labels.get("workspace", "?"), labels.get("campaign", "?"))
            rows[key][source.stage] += value
            if source.stage == "revenue":  # never converted between currencies: kept apart too
                currency = f"revenue_{labels.get('currency', 'unknown')}"
                rows[key][currency] = rows[key].get(currency, 0.0) + value
    return dict(sorted(rows.items()))
