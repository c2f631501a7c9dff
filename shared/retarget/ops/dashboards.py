"""The Grafana dashboards, built with the grafana-foundation-sdk's typed builders (Grafana's own
schema), written as JSON to deploy/grafana/dashboards/ for provisioning.

    .venv/bin/python -m retarget.ops.dashboards      # after changing a panel: commit the JSON

tests/unit/test_grafana_dashboards.py fails when the committed JSON differs from what this
writes, when a query does not parse (promtool) or names a metric no service exports.
Totals over the dashboard's time range use `increase(…[$__range])`, rates `rate()` or the
recording rules of deploy/prometheus/rules/recording.yml: both see through a restarted
service's counter reset.
"""

from __future__ import annotations

import json
from pathlib import Path

from grafana_foundation_sdk.builders import bargauge, dashboard, prometheus, stat, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import (
    DataSourceRef,
    Threshold,
    ThresholdsMode,
    VariableOption,
    VariableRefresh,
)

# the datasource deploy/grafana/provisioning/datasources/prometheus.yml provisions
DATASOURCE = DataSourceRef(type_val="prometheus", uid="prometheus")
SERVICES = "ingest|ingest-mailbox|segmenter|composer|sender"
SCOPE = 'workspace=~"$workspace", campaign=~"$campaign"'  # the funnel's variables
FUNNEL_STAGES = (  # (stage, counter, extra matcher) in funnel order
    ("triggered", "retarget_segmenter_triggers_fired_total", ""),
    ("sent", "retarget_sender_outcomes_total", ', outcome="sent"'),
    ("opened", "retarget_ingest_engagement_total", ', action="opened"'),
    ("clicked", "retarget_ingest_engagement_total", ', action="clicked"'),
    ("converted", "retarget_segmenter_conversions_total", ""),
)


def query(expr: str, legend: str = "", *, instant: bool = False) -> prometheus.Dataquery:
    built = prometheus.Dataquery().expr(expr).legend_format(legend or "__auto").datasource(DATASOURCE)
    return built.instant() if instant else built.range()


def graph(title: str, unit: str, *queries: prometheus.Dataquery, width: int = 12) -> timeseries.Panel:
    panel = (
        timeseries.Panel()
        .title(title)
        .unit(unit)
        .datasource(DATASOURCE)
        .height(8)
        .span(width)
        # set, not left to Grafana's defaults: the JSON then reads back through the SDK unchanged
        .line_width(1)
        .fill_opacity(10)
    )
    for ref, q in zip("ABCDEFGH", queries, strict=False):
        panel = panel.with_target(q.ref_id(ref))
    return panel


def limits(*steps: tuple[float | None, str]) -> dashboard.ThresholdsConfig:
    return (
        dashboard.ThresholdsConfig()
        .mode(ThresholdsMode.ABSOLUTE)
        .steps([Threshold(value=v, color=c) for v, c in steps])
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
        .title("triggered → sent → opened → clicked → converted")
        .datasource(DATASOURCE)
        .height(8)
        .span(12)
    )
    for ref, (stage, counter, matcher) in zip("ABCDE", FUNNEL_STAGES, strict=True):
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


def pipeline_dashboard() -> dashboard.Dashboard:
    by_rate = "[$__rate_interval]"
    return (
        dashboard.Dashboard("retarget — pipeline")
        .uid("retarget-pipeline")
        .tags(["retarget"])
        .time("now-6h", "now")
        .refresh("30s")
        .with_row(dashboard.Row("Services"))
        .with_panel(
            stat.Panel()
            .title("up")
            .datasource(DATASOURCE)
            .height(4)
            .span(24)
            .thresholds(limits((None, "red"), (1, "green")))
            .with_target(query(f'up{{job=~"{SERVICES}"}}', "{{job}} {{instance}}", instant=True).ref_id("A"))
        )
        .with_row(dashboard.Row("Ingest"))
        .with_panel(
            graph(
                "requests by route and status",
                "reqps",
                query("route_status:retarget_ingest_requests:rate5m", "{{route}} {{status}}"),
            )
        )
        .with_panel(
            graph(
                "5xx (not 503) and 503 share of requests",
                "percentunit",
                query("retarget:ingest_requests_5xx_not_503:ratio_rate5m", "5xx other than 503"),
                query("retarget:ingest_requests_503:ratio_rate5m", "503"),
            ).thresholds(limits((None, "green"), (0.01, "orange"), (0.05, "red")))
        )
        .with_panel(
            graph(
                "time to Kafka's acknowledgement",
                "s",
                query("quantile:retarget_ingest_produce_seconds:rate5m", "p{{quantile}}"),
            )
        )
        .with_panel(
            graph(
                "events by outcome",
                "ops",
                query(
                    f"sum by (outcome, reason) (rate(retarget_ingest_events_total{by_rate}))",
                    "{{outcome}} {{reason}}",
                ),
            )
        )
        .with_row(dashboard.Row("Segmenter"))
        .with_panel(
            graph(
                "consumer lag by group and topic",
                "short",
                query("job_topic:retarget_consumer_lag:sum", "{{job}} {{topic}}"),
            )
        )
        .with_panel(
            graph(
                "trigger lateness (due → fired), p99",
                "s",
                query("retarget:segmenter_timer_lag_seconds:p99_rate5m", "p99"),
            ).thresholds(limits((None, "green"), (2, "red")))
        )
        .with_panel(
            graph(
                "event age when applied, p99",
                "s",
                query(
                    f"histogram_quantile(0.99, sum by (le) (rate(retarget_segmenter_event_age_seconds_bucket{by_rate})))",
                    "p99",
                ),
            )
        )
        .with_panel(
            graph(
                "dead letters by stage",
                "short",
                query(f"sum by (stage) (increase(retarget_dead_letters_total{by_rate}))", "{{stage}}"),
            )
        )
        .with_row(dashboard.Row("Sender"))
        .with_panel(
            graph(
                "outcomes",
                "ops",
                query(f"sum by (outcome) (rate(retarget_sender_outcomes_total{by_rate}))", "{{outcome}}"),
            )
        )
        .with_panel(
            graph(
                "outcomes by reason",
                "ops",
                query(
                    "sum by (outcome, reason) (workspace_outcome_reason:retarget_sender_outcomes:rate5m)",
                    "{{outcome}} {{reason}}",
                ),
            )
        )
        .with_panel(
            graph(
                "delivery attempts by recipient domain and outcome",
                "ops",
                query("domain_outcome:retarget_sender_domain_outcomes:rate5m", "{{domain}} {{outcome}}"),
                width=24,
            )
        )
        .with_panel(
            graph(
                "rate-limit wait by bucket (domain, workspace, global), p99",
                "s",
                query(
                    f"histogram_quantile(0.99, sum by (le, bucket) (rate(retarget_sender_token_wait_seconds_bucket{by_rate})))",
                    "{{bucket}}",
                ),
            )
        )
        .with_panel(
            graph(
                "SMTP transaction time by reply, p99",
                "s",
                query(
                    f"histogram_quantile(0.99, sum by (le, reply) (rate(retarget_sender_smtp_seconds_bucket{by_rate})))",
                    "{{reply}}",
                ),
            )
        )
        .with_panel(
            graph(
                "retry backlog",
                "short",
                query("retarget:sender_retry_backlog:max", "deferred messages"),
                query("max(retarget_sender_retry_oldest_age_seconds) / 60", "oldest, minutes"),
            )
        )
        .with_panel(
            graph(
                "SMTP connections",
                "short",
                query("sum(retarget_sender_smtp_connections)", "open"),
                query("sum(retarget_sender_smtp_pool_size)", "pool size"),
            )
        )
        .with_row(dashboard.Row("Reputation and signing"))
        .with_panel(
            graph(
                "hard bounces per delivery attempt, last hour",
                "percentunit",
                query("workspace:retarget_hard_bounces:ratio1h", "{{workspace}}"),
            ).thresholds(limits((None, "green"), (0.02, "red")))
        )
        .with_panel(
            graph(
                "complaints per email sent, last 24 h",
                "percentunit",
                query("workspace:retarget_complaints:ratio1d", "{{workspace}}"),
            ).thresholds(limits((None, "green"), (0.001, "orange"), (0.003, "red")))
        )
        .with_panel(
            graph(
                "DKIM signing failures (mail deferred)",
                "short",
                query(
                    f'sum by (workspace) (increase(retarget_sender_outcomes_total{{reason="dkim_key_missing"}}{by_rate}))',
                    "{{workspace}}",
                ),
            )
        )
        .with_panel(
            graph(
                "relay connection failures (TLS, AUTH, connect) and deferrals",
                "short",
                query(
                    f'sum by (reason) (increase(retarget_sender_outcomes_total{{reason=~"connection_lost|sender_refused"}}{by_rate}))',
                    "{{reason}}",
                ),
                query(
                    f"sum by (kind) (increase(retarget_sender_relay_connect_failures_total{by_rate}))",
                    "connect: {{kind}}",
                ),
            )
        )
    )


DASHBOARDS = {"funnel.json": funnel_dashboard, "pipeline.json": pipeline_dashboard}


def render(build: dashboard.Dashboard) -> str:
    model = build.build()
    for number, panel in enumerate(model.panels or [], start=1):
        panel.id_val = number  # the builders leave ids unset or 0; Grafana links and edits panels by id
    return json.dumps(model, cls=JSONEncoder, indent=2, sort_keys=True) + "\n"


def main() -> None:
    from retarget.devstack.paths import repo_root

    folder = repo_root() / "deploy" / "grafana" / "dashboards"
    folder.mkdir(parents=True, exist_ok=True)
    for name, build in DASHBOARDS.items():
        path: Path = folder / name
        path.write_text(render(build()))
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
