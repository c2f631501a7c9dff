"""Operations artefacts checked against the code: the metric names Prometheus rules and
Grafana dashboards may use (exported.py, promql.py) and the dashboards (panels.py,
funnel_dashboard.py, pipeline_dashboard.py), written by `python -m retarget.ops.dashboards`."""
