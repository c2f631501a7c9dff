"""Operations artefacts checked against the code: the metric names Prometheus rules and
Grafana dashboards may use (exported.py, promql.py) and the dashboards' generator
(dashboards.py, run as `python -m retarget.ops.dashboards`)."""
