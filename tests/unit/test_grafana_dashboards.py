"""The Grafana dashboards: the committed JSON is what the generator writes, reads back through the
grafana-foundation-sdk's models of Grafana's schema unchanged, every query parses (promtool) and
names metrics the services export, and docker-compose provisions them."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.cog.plugins import register_default_plugins
from grafana_foundation_sdk.models.dashboard import Dashboard

from retarget.ops.dashboards import DASHBOARDS, render
from retarget.ops.exported import SCRAPE_SERIES, exported_sample_names
from retarget.ops.panels import DATASOURCE
from retarget.ops.promql import metric_names

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "deploy" / "grafana"
RECORDING = ROOT / "deploy" / "prometheus" / "rules" / "recording.yml"
# Grafana's variables, as Prometheus would see them once Grafana has filled them in
VARIABLES = {
    "$__range": "1h",
    "$__rate_interval": "1m",
    "$__interval": "1m",
    "$workspace": ".*",
    "$campaign": ".*",
}


def _load(name: str) -> dict[str, Any]:
    return json.loads((GRAFANA / "dashboards" / name).read_text())


def _panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in board["panels"]:
        yield panel
        yield from panel.get("panels", [])  # a collapsed row keeps its panels


def _queries(board: dict[str, Any]) -> list[str]:
    return [t["expr"] for p in _panels(board) for t in p.get("targets", [])]


def _substituted(expr: str) -> str:
    for variable, value in VARIABLES.items():
        expr = expr.replace(variable, value)
    assert "$" not in expr, f"a Grafana variable the test does not know: {expr}"
    return expr


@pytest.mark.parametrize("name", DASHBOARDS)
def test_the_committed_json_is_what_the_generator_writes(name: str) -> None:
    committed = (GRAFANA / "dashboards" / name).read_text()
    assert committed == render(DASHBOARDS[name]()), (
        f"run `python -m retarget.ops.dashboards` and commit {name}"
    )


@pytest.mark.parametrize("name", DASHBOARDS)
def test_the_json_reads_back_through_grafanas_schema_unchanged(name: str) -> None:
    register_default_plugins()  # panel options and queries decode into their plugins' models
    data = _load(name)
    again = json.loads(json.dumps(Dashboard.from_json(data), cls=JSONEncoder))
    assert again == data  # a field the schema does not know would be dropped, a wrong shape fail
    assert data["uid"] and data["title"].startswith("retarget — ") and data["schemaVersion"] >= 39
    ids = [p["id"] for p in _panels(data)]
    assert len(ids) == len(set(ids)), "panel ids must be unique"


@pytest.mark.parametrize("name", DASHBOARDS)
def test_every_query_parses(name: str, tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is missing: install Debian's `prometheus` package (make system-deps)")
    # promtool parses PromQL only inside rules: each query becomes a recording rule
    rules = [
        {"record": f"panel_query_{n}", "expr": _substituted(e)} for n, e in enumerate(_queries(_load(name)))
    ]
    assert rules, "a dashboard without queries"
    path = tmp_path / "queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": name, "rules": rules}]}))
    done = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("name", DASHBOARDS)
def test_every_query_and_variable_names_exported_or_recorded_metrics(name: str) -> None:
    recorded = {
        r["record"]
        for g in yaml.safe_load(RECORDING.read_text())["groups"]
        for r in g["rules"]
        if "record" in r
    }
    known = exported_sample_names() | SCRAPE_SERIES | recorded
    board = _load(name)
    variables = [v["query"] for v in board.get("templating", {}).get("list", []) if v.get("type") == "query"]
    selectors = [re.fullmatch(r"label_values\((.+), \w+\)", q).group(1) for q in variables]  # type: ignore[union-attr]
    for expr in _queries(board) + selectors:
        names = metric_names(_substituted(expr))
        assert names and names <= known, f"{expr} names {sorted(names - known)}"


@pytest.mark.parametrize("name", DASHBOARDS)
def test_every_panel_queries_the_provisioned_datasource(name: str) -> None:
    provisioned = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())
    [source] = provisioned["datasources"]
    assert (source["type"], source["uid"]) == (DATASOURCE.type_val, DATASOURCE.uid)
    for panel in _panels(_load(name)):
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": source["type"], "uid": source["uid"]}, panel["title"]


def test_compose_mounts_the_provisioning_the_dashboards_and_the_rules() -> None:
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    grafana = {v.split(":")[1]: ROOT / v.split(":")[0] for v in services["grafana"]["volumes"]}
    assert grafana["/etc/grafana/provisioning"] == ROOT / "deploy/grafana/provisioning"
    provider = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "retarget.yml").read_text())
    [dashboards] = [p["options"]["path"] for p in provider["providers"]]
    assert grafana[dashboards] == ROOT / "deploy/grafana/dashboards"
    assert {p.name for p in grafana[dashboards].glob("*.json")} == set(DASHBOARDS)
    prometheus = {v.split(":")[1]: v.split(":")[0] for v in services["prometheus"]["volumes"]}
    assert prometheus["/etc/prometheus/rules"] == "./deploy/prometheus/rules"
