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

from grafana_foundation_sdk.builders import dashboard
from grafana_foundation_sdk.cog.encoder import JSONEncoder

from retarget.ops.funnel_dashboard import funnel_dashboard
from retarget.ops.pipeline_dashboard import pipeline_dashboard

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
