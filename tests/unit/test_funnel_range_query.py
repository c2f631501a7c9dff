"""The funnel's range query, evaluated by Prometheus' own engine (a promtool unit test written
on the fly): exact without a reset, through a reset, and counting a series born in the range."""

from __future__ import annotations

import argparse
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from retarget.cli.funnel import register
from retarget.cli.funnel_prometheus import checked_range, range_query, seconds

# one sample a minute; `_x30` = no sample for the first 30 minutes
SERIES = {
    "old": "100+1x80",  # existed before the range: only its growth counts
    "born": "_x30 5 6 7" + " 8" * 50,  # born inside the range at 5 (counted before its first scrape)
    "restarted": "0+1x40 2 3" + " 4" * 40,  # 40 by 40m, a restart, then 4 more
    "hidden": "0+1x39 2 3" + " 4" * 40,  # 39 by 39m, a restart between 39m and 40m, then 4 more
    "idle": "7x80",
    # born inside the range at 5, a restart at 36m (8, then 6 and 7): 5 + 3 + 7 = 15
    "born_restarted": "_x30 5 6 7 8 6 7" + " 7" * 40,
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


def test_growth_over_the_range_is_exact_without_a_reset(tmp_path: Path) -> None:
    # 175 now, 145 thirty minutes ago; the others have been flat since before 45m
    expected = {"old": 30, "born": 0, "idle": 0, "restarted": 0, "hidden": 0, "born_restarted": 0}
    _expect(tmp_path, range_query("c_total", "30m"), "75m", expected)


def test_a_series_born_inside_the_range_counts_its_first_value(tmp_path: Path) -> None:
    # born: 5 before its first scrape, then 3 (increase() alone says 3.x); restarted: 40 + 4
    expected = {"old": 145, "born": 8, "idle": 7, "restarted": 44, "hidden": 43}
    _expect(tmp_path, range_query('c_total{k!="born_restarted"}', "1h"), "45m", expected)


def test_a_series_born_inside_the_range_and_restarted_counts_its_first_value_too(tmp_path: Path) -> None:
    query = range_query("c_total", "1h")
    within = f"(({query}) >= bool 14) * (({query}) <= bool 16)"  # 1 where the total is in [14, 16]
    _expect(tmp_path, within, "45m", {k: float(k == "born_restarted") for k in SERIES})


def test_a_restart_inside_the_range_does_not_zero_the_total(tmp_path: Path) -> None:
    # restarted: 40 at 40m (the range's first sample), a restart, 4 after it; hidden: 2 at 40m, then 4
    expected = {"old": 30, "born": 0, "idle": 0, "restarted": 4, "hidden": 2, "born_restarted": 0}
    _expect(tmp_path, range_query("c_total", "30m"), "70m", expected)


def test_a_restart_between_the_range_and_the_sample_before_it_is_not_a_negative_total(tmp_path: Path) -> None:
    # the range (39m30s, 70m] starts after the restart; `offset` still finds the 39 before it
    query = range_query("c_total", "30m30s")
    within = f"(({query}) >= bool 1) * (({query}) <= bool 5)"  # 1 where the total is in [1, 5]
    _expect(tmp_path, within, "70m", {k: float(k in ("hidden", "restarted")) for k in SERIES})


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
