"""The funnel's counters over a time range, from Prometheus.

A service's counters start again at 0 when it restarts, so their current values (what its
/metrics says) are totals since that start. Per series, over the range:

* no reset in the range: the value now minus the value a range ago — exact; a series born
  inside the range (a campaign's first trigger) counts all of its value;
* a reset (the service restarted): Prometheus' increase(), which sees through it. increase()
  never counts a series' first value, so for a series born inside the range its first value
  (min_over_time(), or less when it reset) is added. increase() extrapolates to the range's
  edges: such a total is an estimate to within a scrape interval's worth of traffic (counts
  are rounded to whole numbers when printed).
"""

from __future__ import annotations

import re

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


def range_query(metric: str, window: str) -> str:
    """PromQL for how much `metric` grew over the last `window`, per series (see module doc)."""
    then = f"({metric} offset {window}) * 1"  # `* 1` drops the name, so `unless` matches on labels
    # no reset in the window: exact, now minus then (all of it for a series born inside). `then`
    # may be a sample from up to the lookback before the window: no reset since then either
    since_then = f"{int(seconds(window) + LOOKBACK_S)}s"
    exact = f"(({metric} - {then}) or {metric} * 1) and (resets({metric}[{since_then}]) == 0)"
    # a reset (a restart): increase() sees through it, plus a born series' first value
    grew = f"increase({metric}[{window}])"
    across_resets = f"({grew} + (min_over_time({metric}[{window}]) unless {then})) or {grew}"
    return f"{exact} or {across_resets}"


def from_prometheus_range(base_url: str, window: str) -> list[Sample]:
    """Funnel samples: each counter's growth over the last `window` (not its value now)."""
    samples: list[Sample] = []
    for metric in METRIC_NAMES:
        response = httpx.get(
            f"{base_url.rstrip('/')}/api/v1/query",
            params={"query": range_query(metric, checked_range(window))},
            timeout=30,
        )
        response.raise_for_status()
        for result in response.json()["data"]["result"]:
            samples.append((metric, result["metric"], float(result["value"][1])))
    return samples
