"""The pipeline benchmark's arithmetic: percentiles, lag trends, bottleneck, ceilings, traffic shares."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[3] / "bench"))

from pipeline_report import StageLoad, bottleneck, ceilings, lag_at_ends, percentile
from pipeline_traffic import fires, visitor_events


def load(
    stage: str, cpu: float, lag: tuple[int | None, int | None] = (0, 0), processes: int = 1
) -> StageLoad:
    return StageLoad(stage, processes, cpu_seconds=cpu, window_s=10, lag_start=lag[0], lag_end=lag[1])


def test_percentiles_are_nearest_rank():
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50
    assert percentile(values, 99) == 99
    assert percentile([3.0], 99) == 3.0
    assert percentile([], 50) is None


def test_lag_at_the_ends_takes_the_least_sample_of_each_third():
    # a commit every few seconds makes lag saw-toothed: the minimum of each third is the trend
    series = [
        (0.0, {"sender": 900}),
        (1.0, {"sender": 10}),
        (5.0, {"sender": 5000}),
        (8.0, {"sender": 7000}),
        (9.0, {"sender": 4000}),
    ]
    start, end = lag_at_ends(series, 0.0, 9.0)
    assert start == {"sender": 10}
    assert end == {"sender": 4000}


def test_the_stage_whose_lag_grew_most_is_the_bottleneck_even_if_another_is_busier():
    loads = [load("segmenter", 9.0, (0, 300)), load("composer", 5.0, (10, 5000)), load("sender", 9.9)]
    stage, why = bottleneck(loads)
    assert stage == "composer"
    assert "4,990" in why


def test_lag_jitter_below_the_threshold_is_not_falling_behind():
    stage, _ = bottleneck([load("segmenter", 2.0, (0, 150)), load("sender", 1.0)])
    assert stage.startswith("none")


def test_without_growing_lag_a_saturated_stage_is_the_bottleneck():
    stage, why = bottleneck([load("segmenter", 9.0, processes=1), load("sender", 17.0, processes=2)])
    assert stage == "segmenter"  # 90% of its one core; the sender's two use 85% each
    assert "90%" in why


def test_ceilings_divide_cores_by_cpu_per_email():
    loads = [load("segmenter", 2.0), load("sender", 1.0, processes=2)]
    result = ceilings(loads, emails=1000, machine_cores=2)
    assert result["segmenter"] == pytest.approx(500)  # 2 ms per email on one core
    assert result["sender"] == pytest.approx(2000)  # 1 ms per email, two processes
    assert result["pipeline"] == pytest.approx(2 / 0.003)
    assert ceilings(loads, emails=0, machine_cores=2)["pipeline"] is None


@pytest.mark.parametrize("share", [0.0, 0.25, 0.5, 1.0])
def test_the_share_of_visitors_whose_reminder_fires_is_exact(share: float):
    assert sum(fires(n, share) for n in range(1000)) == round(1000 * share)


def test_a_visitor_who_buys_gets_no_reminder_and_one_who_leaves_does():
    now = datetime(2026, 1, 1, tzinfo=UTC)
    leaving = [e.get("event") for e in visitor_events("r", 0, 1.0, now)]
    buying = [e.get("event") for e in visitor_events("r", 0, 0.0, now)]
    assert leaving == [None, "Product Added"]
    assert buying == [None, "Product Added", "Order Completed"]
    ids = [e["messageId"] for e in visitor_events("r", 7, 0.0, now)]
    assert len(set(ids)) == 3


def test_a_stage_behind_on_a_saturated_machine_is_named_starved_not_slow():
    loads = [load("segmenter", 1.2, (0, 9000)), load("sender", 0.5)]  # 12% of a core
    _, why = bottleneck(loads, machine_busy=0.97)
    assert "starved of CPU" in why
    _, idle_machine = bottleneck(loads, machine_busy=0.3)
    assert "starved" not in idle_machine
