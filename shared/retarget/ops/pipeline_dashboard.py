"""**retarget — pipeline**: services up; ingest requests, 5xx/503 shares and latency; every
consumer group's lag, trigger lateness, event age; dead letters; sender outcomes (per recipient
domain too), rate-limit waits, SMTP times, retry backlog; bounce and complaint ratios; DKIM
signing and relay connection failures."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard, stat

from retarget.ops.panels import DATASOURCE, graph, limits, query

SERVICES = "ingest|ingest-mailbox|segmenter|composer|sender"


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
