"""The funnel's counters over a time range, from Prometheus, exactly (to the last scrape).

A service's counters start again at 0 when it restarts, so their current values (what its
/metrics says) are totals since that start. What the funnel wants is how much each counter
grew over the range, per series:

* most series did not reset in the range: the value now minus the value a range ago, in one
  PromQL query (`no_reset_query`); a series born inside the range counts all of its value;
* the others (a restart: a reset, or a series gone since) are read sample by sample and
  added up by `growth`: a drop is a restart, after which the counter counted again from 0.

Prometheus' increase() would do both at once, but it extrapolates to the range's edges and
never counts a series' first sample, so a funnel of whole emails would show 8.6 where 8 were
sent, or miss the campaign's first hour.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from typing import Any

import httpx

from retarget.common.funnel import METRIC_NAMES, Sample

# Prometheus durations: 90s, 15m, 24h, 7d, 1w, or combined (1h30m)
_DURATION = re.compile(r"^(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?$")
_UNIT_S = (365 * 86400, 7 * 86400, 86400, 3600, 60, 1, 0.001)
LOOKBACK_S = 300  # Prometheus' default lookback: how far back `x offset r` looks for a sample


def checked_range(text: str) -> str:
    """`text` if Prometheus reads it as a duration; ValueError naming the problem otherwise."""
    if not text or not _DURATION.match(text):
        raise ValueError(f"{text!r} is not a duration such as 15m, 24h or 7d")
    return text


def seconds(duration: str) -> float:
    found = _DURATION.match(checked_range(duration))
    assert found is not None
    return sum(int(n) * unit for n, unit in zip(found.groups(), _UNIT_S, strict=True) if n)


def _since_baseline(window: str) -> str:
    # `x offset window` may be a sample from up to the lookback before the window
    return f"{int(seconds(window) + LOOKBACK_S)}s"


def no_reset_query(metric: str, window: str) -> str:
    """PromQL: per series of `metric` with no reset since a range ago, its growth over the range."""
    then = f"({metric} offset {window}) * 1"  # `* 1` drops the name, so `or` matches on labels
    return f"(({metric} - {then}) or {metric} * 1) and (resets({metric}[{_since_baseline(window)}]) == 0)"


def growth(baseline: float | None, values: Iterable[float]) -> float:
    """How much a counter grew from `baseline` (its value before the range; None: born inside
    it, from 0) through `values`: a drop is a restart, after which it counted from 0 again."""
    total, previous = 0.0, baseline or 0.0
    for value in values:
        total += value - previous if value >= previous else value
        previous = value
    return total


def from_prometheus_range(base_url: str, window: str) -> list[Sample]:
    """Funnel samples: each counter's growth over the last `window` (not its value now)."""
    api = _Api(base_url, at=time.time())  # every query at the same instant: one consistent read
    samples: list[Sample] = []
    for metric in METRIC_NAMES:
        exact = {_key(r["metric"]): float(r["value"][1]) for r in api.query(no_reset_query(metric, window))}
        samples += [(metric, dict(key), value) for key, value in exact.items()]
        for result in api.query(f"count_over_time({metric}[{window}])"):  # every series in the range
            key = _key(result["metric"])
            if key not in exact:  # it reset, or it is gone: sample by sample
                samples.append((metric, dict(key), _series_growth(api, metric, key, window)))
    return samples


def _series_growth(api: _Api, metric: str, key: frozenset[tuple[str, str]], window: str) -> float:
    selector = metric + "{" + ", ".join(f'{name}="{_escaped(value)}"' for name, value in sorted(key)) + "}"
    before = api.query(f"{selector} offset {window}")
    [series] = api.query(f"{selector}[{window}]")
    return growth(float(before[0]["value"][1]) if before else None, (float(v) for _, v in series["values"]))


def _key(labels: dict[str, str]) -> frozenset[tuple[str, str]]:
    return frozenset((k, v) for k, v in labels.items() if k != "__name__")


def _escaped(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class _Api:
    def __init__(self, base_url: str, *, at: float) -> None:
        self.url = f"{base_url.rstrip('/')}/api/v1/query"
        self.at = at

    def query(self, promql: str) -> list[dict[str, Any]]:
        response = httpx.get(self.url, params={"query": promql, "time": self.at}, timeout=30)
        response.raise_for_status()
        result: list[dict[str, Any]] = response.json()["data"]["result"]
        return result
