"""**retarget — funnel**: per workspace and campaign (variables), triggered → sent → opened →
clicked → converted → redeemed (coupons) and revenue, as totals over the dashboard's time range
(`increase(…[$__range])`) and as rates (the recording rules)."""

from __future__ import annotations

from grafana_foundation_sdk.builders import bargauge, dashboard, stat
from grafana_foundation_sdk.models.dashboard import VariableOption, VariableRefresh

from retarget.ops.experiment_panels import experiment_panels
from retarget.ops.panels import DATASOURCE, graph, query

SCOPE = 'workspace=~"$workspace", campaign=~"$campaign"'  # the funnel's variables
FUNNEL_STAGES = (  # (stage, counter, extra matcher) in funnel order
    ("triggered", "retarget_segmenter_triggers_fired_total", ""),
    ("sent", "retarget_sender_outcomes_total", ', outcome="sent"'),
    ("opened", "retarget_ingest_engagement_total", ', action="opened"'),
    ("clicked", "retarget_ingest_engagement_total", ', action="clicked"'),
    ("converted", "retarget_segmenter_conversions_total", ""),
    ("redeemed", "retarget_ingest_coupons_redeemed_total", ""),
)


def scope_variable(name: str, query_text: str) -> dashboard.QueryVariable:
    return (
        dashboard.QueryVariable(name)
        .label(name)
        .datasource(DATASOURCE)
        .query(query_text)
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        .multi(True)
        .include_all(True)
        .all_value(".*")
        .current(VariableOption(text="All", value="$__all"))
    )


def funnel_dashboard() -> dashboard.Dashboard:
    board = (
        dashboard.Dashboard("retarget — funnel")
        .uid("retarget-funnel")
        .tags(["retarget"])
        .time("now-24h", "now")
        .refresh("1m")
        .with_variable(
            scope_variable("workspace", "label_values(retarget_segmenter_triggers_fired_total, workspace)")
        )
        .with_variable(
            scope_variable(
                "campaign",
                'label_values(retarget_segmenter_triggers_fired_total{workspace=~"$workspace"}, campaign)',
            )
        )
        .with_row(dashboard.Row("Over the dashboard's time range"))
    )
    for stage, counter, matcher in FUNNEL_STAGES:
        total = f"sum(increase({counter}{{{SCOPE}{matcher}}}[$__range]))"
        board = board.with_panel(
            stat.Panel()
            .title(stage)
            .datasource(DATASOURCE)
            .height(4)
            .span(4)
            .with_target(query(total, stage, instant=True).ref_id("A"))
        )
    revenue = f"sum by (currency) (increase(retarget_segmenter_revenue_total{{{SCOPE}}}[$__range]))"
    board = board.with_panel(
        stat.Panel()
        .title("revenue")
        .datasource(DATASOURCE)
        .height(4)
        .span(4)
        .decimals(2)
        .with_target(query(revenue, "{{currency}}", instant=True).ref_id("A"))
    )
    funnel_bars = (
        bargauge.Panel()
        .title("triggered → sent → opened → clicked → converted → redeemed")
        .datasource(DATASOURCE)
        .height(8)
        .span(12)
    )
    for ref, (stage, counter, matcher) in zip("ABCDEF", FUNNEL_STAGES, strict=True):
        total = f"sum(increase({counter}{{{SCOPE}{matcher}}}[$__range]))"
        funnel_bars = funnel_bars.with_target(query(total, stage, instant=True).ref_id(ref))
    board = board.with_panel(funnel_bars)
    conversion = (
        f"sum(increase(retarget_segmenter_conversions_total{{{SCOPE}}}[$__range]))"
        f' / sum(increase(retarget_sender_outcomes_total{{{SCOPE}, outcome="sent"}}[$__range]))'
    )
    board = board.with_panel(
        stat.Panel()
        .title("converted per email sent")
        .datasource(DATASOURCE)
        .height(8)
        .span(12)
        .unit("percentunit")
        .with_target(query(conversion, "converted / sent", instant=True).ref_id("A"))
    )
    board = board.with_row(dashboard.Row("Experiments: variants and holdout (docs/experiments.md)"))
    for panel in experiment_panels():
        board = board.with_panel(panel)
    return (
        board.with_row(dashboard.Row("Rates"))
        .with_panel(
            graph(
                "funnel by stage",
                "ops",
                query(
                    f"sum by (stage) (workspace_campaign_stage:retarget_funnel:rate5m{{{SCOPE}}})",
                    "{{stage}}",
                ),
            )
        )
        .with_panel(
            graph(
                "emails sent by campaign",
                "ops",
                query(
                    f'sum by (campaign) (rate(retarget_sender_outcomes_total{{{SCOPE}, outcome="sent"}}[$__rate_interval]))',
                    "{{campaign}}",
                ),
            )
        )
        .with_panel(
            graph(
                "conversions by campaign",
                "ops",
                query(
                    f"sum by (campaign) (rate(retarget_segmenter_conversions_total{{{SCOPE}}}[$__rate_interval]))",
                    "{{campaign}}",
                ),
            )
        )
        .with_panel(
            graph(
                "revenue by currency (per second)",
                "short",
                query(
                    f"sum by (currency) (workspace_campaign_currency:retarget_segmenter_revenue:rate5m{{{SCOPE}}})",
                    "{{currency}}",
                ),
            )
        )
    )
