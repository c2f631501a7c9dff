"""The deployment files can't be run here (no Docker engine), so check what can be checked:
every RETARGET_* variable they set is a real setting, ports agree, Prometheus configs parse."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from retarget.cli.docs import SETTINGS_CLASSES, load_settings
from retarget.demo.services import PLAN

ROOT = Path(__file__).resolve().parents[2]
# The system's services; the demo shop is the demo's own web page, not part of a deployment.
SERVICES = [plan for plan in PLAN if plan.metrics]


def known_variables() -> set[str]:
    names = set()
    for _, path in SETTINGS_CLASSES:
        cls = load_settings(path)
        prefix = cls.model_config.get("env_prefix", "")
        names |= {f"{prefix}{name.upper()}" for name in cls.model_fields}
    return names


def test_compose_sets_only_settings_that_exist():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    known = known_variables()
    for name, service in compose["services"].items():
        for variable in service.get("environment") or {}:
            if variable.startswith("RETARGET_"):
                assert variable in known, f"docker-compose service {name} sets unknown {variable}"


def test_compose_and_the_demo_use_the_same_service_ports():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    for plan in SERVICES:
        assert compose[plan.name]["environment"][plan.port_var] == str(plan.port), plan.name
        assert plan.port_var in known_variables()


@pytest.mark.parametrize("config", ["prometheus.yml", "prometheus-compose.yml"])
def test_prometheus_configs_are_valid_and_scrape_every_service(config: str):
    path = ROOT / "deploy" / "prometheus" / config
    jobs = {job["job_name"] for job in yaml.safe_load(path.read_text())["scrape_configs"]}
    assert jobs == {plan.name for plan in SERVICES}
    if shutil.which("promtool") is None:
        pytest.skip("promtool (Debian package prometheus) is not installed: `make system-deps`")
    result = subprocess.run(["promtool", "check", "config", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_prometheus_scrapes_where_each_service_serves_its_metrics():
    """Ingest's /metrics is on its ops port, not on the public one the demo also starts."""
    for config, host in (("prometheus.yml", "127.0.0.1"), ("prometheus-compose.yml", None)):
        jobs = yaml.safe_load((ROOT / "deploy" / "prometheus" / config).read_text())["scrape_configs"]
        targets = {job["job_name"]: job["static_configs"][0]["targets"] for job in jobs}
        for plan in SERVICES:
            port = plan.metrics_port or plan.port
            assert targets[plan.name] == [f"{host or plan.name}:{port}"], (config, plan.name)
