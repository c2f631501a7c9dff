"""The Prometheus rules: promtool accepts them and their unit tests pass, every alert is tested
both ways (fires, stays quiet) and has a runbook section, and every metric they read is one the
services export."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from retarget.ops.exported import SCRAPE_SERIES, exported_sample_names
from retarget.ops.promql import metric_names

ROOT = Path(__file__).resolve().parents[2]
RULES = sorted((ROOT / "deploy" / "prometheus" / "rules").glob("*.yml"))
RULE_TESTS = sorted((ROOT / "deploy" / "prometheus" / "tests").glob("*.yml"))
OPERATIONS = ROOT / "docs" / "operations.md"


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail("promtool is missing: install Debian's `prometheus` package (make system-deps)")
    return found


def _rules() -> list[dict[str, Any]]:
    return [
        rule
        for path in RULES
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
    ]


def _alerts() -> list[dict[str, Any]]:
    return [rule for rule in _rules() if "alert" in rule]


def test_promtool_checks_the_rule_files() -> None:
    assert RULES, "no rule files"
    done = subprocess.run([promtool(), "check", "rules", *RULES], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("path", RULE_TESTS, ids=lambda p: p.name)
def test_promtool_rule_unit_tests_pass(path: Path) -> None:
    done = subprocess.run(
        [promtool(), "test", "rules", path.name], cwd=path.parent, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr


def _alert_checks() -> list[tuple[str, bool]]:
    """(alertname, fires) for every alert_rule_test of every test file."""
    checks = []
    for path in RULE_TESTS:
        for test in yaml.safe_load(path.read_text())["tests"]:
            for check in test.get("alert_rule_test", []):
                checks.append((check["alertname"], bool(check.get("exp_alerts"))))
    return checks


def test_every_alert_is_tested_firing_and_quiet() -> None:
    checks = set(_alert_checks())
    for alert in _alerts():
        name = alert["alert"]
        assert (name, True) in checks, f"{name}: no promtool test where it fires"
        assert (name, False) in checks, f"{name}: no promtool test where it stays quiet"


def _anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    headings = re.findall(r"^#+\s+(.+?)\s*$", markdown, flags=re.M)
    return {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in headings}


def test_every_alert_says_what_happened_and_links_its_runbook_section() -> None:
    anchors = _anchors(OPERATIONS.read_text())
    for alert in _alerts():
        annotations = alert.get("annotations", {})
        assert annotations.get("summary") and annotations.get("description"), alert["alert"]
        assert alert.get("labels", {}).get("severity") in ("warning", "critical"), alert["alert"]
        page, _, anchor = annotations.get("runbook", "").partition("#")
        assert page == "docs/operations.md" and anchor in anchors, f"{alert['alert']}: no section {anchor!r}"


def test_every_metric_the_rules_read_is_exported_or_recorded() -> None:
    recorded = {rule["record"] for rule in _rules() if "record" in rule}
    known = exported_sample_names() | SCRAPE_SERIES | recorded
    for rule in _rules():
        unknown = metric_names(rule["expr"]) - known
        assert not unknown, f"{rule.get('record') or rule.get('alert')} reads {sorted(unknown)}"


def test_exported_names_carry_the_suffixes_prometheus_stores() -> None:
    names = exported_sample_names()
    assert "retarget_sender_outcomes_total" in names and "retarget_sender_outcomes" not in names
    assert {
        "retarget_segmenter_timer_lag_seconds_bucket",
        "retarget_segmenter_timer_lag_seconds_count",
    } <= names
    assert "retarget_segmenter_timer_lag_seconds" not in names  # a histogram has no bare series
    assert "retarget_sender_retry_backlog" in names  # a gauge keeps its name


def test_metric_names_are_told_apart_from_functions_labels_and_keywords() -> None:
    expr = (
        'sum by (workspace, le) (increase(a_total{outcome="sum(b)"}[1h]) or rate(c_bucket[5m] offset 10m))'
        " / on (workspace) group_left (campaign) up > bool 0.5 unless job:d:rate5m"
    )
    assert metric_names(expr) == {"a_total", "c_bucket", "up", "job:d:rate5m"}
