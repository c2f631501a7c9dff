"""The sample names the services export, as Prometheus stores them.

Read from the metric definitions `retarget docs` documents (cli/docs.py's METRIC_MODULES),
with the suffixes prometheus_client adds: a counter `x_total` is exposed as `x_total`, a
histogram `x` as `x_bucket`, `x_sum` and `x_count`. A labelled metric exposes nothing until a
label set is used, so the names come from the definitions, not from a scrape of an idle registry.
"""

from __future__ import annotations

from retarget.cli.docs import METRIC_MODULES, metrics_of

# written by Prometheus itself for every scrape target
SCRAPE_SERIES = frozenset({"up", "scrape_duration_seconds", "scrape_samples_scraped"})

_SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_sum", "_count"),
    "summary": ("", "_sum", "_count"),
    "gauge": ("",),
    "info": ("_info",),
    "stateset": ("",),
    "enum": ("",),
}


def exported_sample_names() -> frozenset[str]:
    names: set[str] = set()
    for _title, module in METRIC_MODULES:
        for metric in metrics_of(module):
            # prometheus_client keeps a counter's name without `_total` (it adds it on exposure)
            names.update(metric._name + suffix for suffix in _SUFFIXES[str(metric._type)])
    return frozenset(names)
