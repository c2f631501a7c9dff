"""A batch's metric updates are held and applied once it is recorded, each counter's sum and each
histogram's bucket counts at once — with exactly the result of updating them one by one
(this also checks the prometheus_client internals HeldObservations writes to)."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram

from retarget.segmenter.metrics import BatchCounts

BUCKETS = (0.001, 0.01, 0.1, 1.0)
#: amounts on the bounds (a tie belongs to the bound's bucket), between them, past the last one
AMOUNTS = [0.0, 0.001, 0.0005, 0.01, 0.05, 0.1, 0.1, 0.7, 1.0, 3.0, 250.0]


def samples(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for metric in registry.collect()
        for s in metric.samples
        if not s.name.endswith("_created")
    }


def pair(kind: Any, *args: Any, **kwargs: Any) -> tuple[CollectorRegistry, Any, CollectorRegistry, Any]:
    one_by_one, held = CollectorRegistry(), CollectorRegistry()
    return one_by_one, kind(*args, registry=one_by_one, **kwargs), held, kind(*args, registry=held, **kwargs)


def test_held_observations_end_up_exactly_as_observed_one_by_one():
    one_by_one, expected, held, histogram = pair(Histogram, "h_seconds", "h", buckets=BUCKETS)
    counts = BatchCounts()
    for amount in AMOUNTS:
        expected.observe(amount)
        counts.observe(histogram, amount)
    assert samples(held)[("h_seconds_count", ())] == 0  # nothing before the batch is recorded
    counts.apply()
    assert samples(held) == samples(one_by_one)
    counts.apply()  # applied once: a second apply adds nothing
    assert samples(held) == samples(one_by_one)


def test_held_observations_of_labelled_children_go_to_their_own_child():
    one_by_one, expected, held, histogram = pair(Histogram, "r_seconds", "r", ["kind"], buckets=BUCKETS)
    counts = BatchCounts()
    for i, amount in enumerate(AMOUNTS):
        kind = "event" if i % 3 else "tick"
        expected.labels(kind).observe(amount)
        counts.observe(histogram.labels(kind), amount)
    counts.apply()
    assert samples(held) == samples(one_by_one)


def test_held_counts_add_up_per_counter_and_a_discarded_batch_counts_nothing():
    one_by_one, expected, held, counter = pair(Counter, "c", "c", ["outcome"])
    counts = BatchCounts()
    for outcome, amount in [("applied", 1), ("applied", 1), ("duplicate", 1), ("applied", 2.5)]:
        expected.labels(outcome).inc(amount)
        counts.inc(counter.labels(outcome), amount)
    counts.apply()
    assert samples(held) == samples(one_by_one)
    counts.inc(counter.labels("applied"))
    counts.observe(Histogram("d_seconds", "d", registry=held), 0.5)
    counts.discard()
    counts.apply()
    assert samples(held)[("c_total", (("outcome", "applied"),))] == 4.5
    assert samples(held)[("d_seconds_count", ())] == 0


def test_immediate_counts_update_at_once():
    registry = CollectorRegistry()
    counter, histogram = Counter("c", "c", registry=registry), Histogram("h", "h", registry=registry)
    counts = BatchCounts(immediate=True)
    counts.inc(counter, 2)
    counts.observe(histogram, 0.2)
    assert samples(registry)[("c_total", ())] == 2 and samples(registry)[("h_count", ())] == 1
