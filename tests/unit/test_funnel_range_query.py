"""The funnel's growth over a range: the one-query path evaluated by Prometheus' own engine (a
promtool unit test written on the fly), and the sample-by-sample path for series that reset."""

from __future__ import annotations

import argparse
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from retarget.cli.funnel import register
from retarget.cli.funnel_prometheus import checked_range, growth, no_reset_query, seconds

# one sample a minute; `_x30` = no sample for the first 30 minutes
SERIES = {
    "old": "100+1x80",  # existed before the range: only its growth counts
    "born": "_x30 5 6 7" + " 8" * 50,  # born inside the range at 5 (counted before its first scrape)
    "restarted": "0+1x40 2 3" + " 4" * 40,  # 40 by 40m, a restart, then 4 more
    "hidden": "0+1x39 2 3" + " 4" * 40,  # 39 by 39m, a restart between 39m and 40m, then 4 more
    "idle": "7x80",
}


def _expect(tmp_path: Path, expr: str, at: str, expected: dict[str, float]) -> None:
    """Prometheus evaluates `expr` at `at` over SERIES to exactly `expected` (by series k)."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is missing: install Debian's `prometheus` package (make system-deps)")
    samples = [{"labels": f'{{k="{k}"}}', "value": v} for k, v in expected.items()]
    test = {
        "rule_files": [],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [{"series": f'c_total{{k="{k}"}}', "values": v} for k, v in SERIES.items()],
                "promql_expr_test": [{"expr": expr, "eval_time": at, "exp_samples": samples}],
            }
        ],
    }
    path = tmp_path / "range_test.yml"
    path.write_text(yaml.safe_dump(test))
    done = subprocess.run([promtool, "test", "rules", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_growth_of_series_without_a_reset_is_now_minus_then(tmp_path: Path) -> None:
    # 175 now, 145 thirty minutes ago; born, idle and hidden flat since before 45m; restarted
    # reset at 41m, within a lookback of the range: left to the sample-by-sample path
    expected = {"old": 30, "born": 0, "idle": 0, "hidden": 0}
    _expect(tmp_path, no_reset_query("c_total", "30m"), "75m", expected)


def test_a_series_born_inside_the_range_counts_all_of_its_value(tmp_path: Path) -> None:
    # born: 5 before its first scrape, then 3 (increase() would say 3.x); the restarted are left out
    expected = {"old": 145, "born": 8, "idle": 7}
    _expect(tmp_path, no_reset_query("c_total", "1h"), "45m", expected)


def test_a_restart_leaves_the_series_to_the_sample_by_sample_path(tmp_path: Path) -> None:
    # restarted resets inside the range; hidden between its baseline sample (39m) and the range
    # (from 39m30s): now minus then would be 4 - 39. old: 170 now, 139 at 39m, its baseline sample
    _expect(tmp_path, no_reset_query("c_total", "30m30s"), "70m", {"old": 31, "born": 0, "idle": 0})


def test_growth_sample_by_sample_counts_across_restarts() -> None:
    assert growth(100, [101, 105, 110]) == 10
    assert growth(None, [5, 6, 8]) == 8  # born inside the range: from 0
    assert growth(38, [40, 2, 3, 4]) == 6  # 2 before the restart, 4 after it
    assert growth(39, [2, 3, 4]) == 4  # the restart between the baseline and the range
    assert growth(None, [5, 7, 8, 6, 7]) == 15  # born, 8, restarted, 7 more
    assert growth(3, [3, 3]) == 0


def test_range_must_be_a_prometheus_duration() -> None:
    assert checked_range("24h") == "24h" and seconds("1h30m") == 5400 and seconds("7d") == 604800
    for bad in ("", "24", "1 day", "24h]) or vector(1", "-5m"):
        with pytest.raises(ValueError, match="not a duration"):
            checked_range(bad)
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    with pytest.raises(SystemExit):
        parser.parse_args(["funnel", "--range", "1 day"])
    assert parser.parse_args(["funnel"]).range == "24h"
