"""Small builders every retarget dashboard uses: a Prometheus query on the provisioned
datasource, a time-series panel, thresholds."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard, prometheus, timeseries
from grafana_foundation_sdk.models.dashboard import DataSourceRef, Threshold, ThresholdsMode

# the datasource deploy/grafana/provisioning/datasources/prometheus.yml provisions
DATASOURCE = DataSourceRef(type_val="prometheus", uid="prometheus")


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
