"""The segmenter's Prometheus metrics (served on /metrics by the faust web server)."""

from __future__ import annotations

import bisect
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

EVENTS = Counter(
    "retarget_segmenter_events_total",
    "Events consumed, by outcome: applied, forwarded (to the known profile), duplicate, "
    "unusable (skipped), invalid and poison (dead-lettered), rerouted (to the partition its key "
    "hashes to).",
    ["outcome"],
)
PROFILES_CREATED = Counter("retarget_segmenter_profiles_created_total", "Profiles created.")
PROFILES = Gauge(
    "retarget_segmenter_profiles",
    "Profiles (and identity redirects) in the partitions this worker owns; an estimate with RocksDB.",
)
MERGES = Counter(
    "retarget_segmenter_merges_total", "Anonymous profiles merged into a known profile (identify / alias)."
)
TRIGGERS_SCHEDULED = Counter(
    "retarget_segmenter_triggers_scheduled_total",
    "Campaign waits started (scheduled), pushed out by a new entry event (restarted), or over and held "
    "for the person's best hour (held: send_time optimal).",
    ["campaign", "kind"],
)
TRIGGERS_FIRED = Counter(
    "retarget_segmenter_triggers_fired_total",
    "Triggers sent to the triggers topic.",
    ["workspace", "campaign"],  # the funnel (retarget.common.funnel) reads it by workspace and campaign
)
TRIGGERS_CANCELLED = Counter(
    "retarget_segmenter_triggers_cancelled_total",
    "Campaign waits that ended without a trigger, by reason (exit event, no email, cooldown, ...).",
    ["campaign", "reason"],
)
TIMER_LAG = Histogram(
    "retarget_segmenter_timer_lag_seconds",
    "Delay between a trigger's due time and its firing (fired_at - due_at).",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300),
)
PROCESSING = Histogram(
    "retarget_segmenter_record_seconds",
    "Time to handle one record (event, internal record or tick).",
    ["kind"],
    buckets=(0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5),
)
EVENT_AGE = Histogram(
    "retarget_segmenter_event_age_seconds",
    "Time from ingest receiving an event to the segmenter applying it.",
    buckets=(0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 300),
)
CONSUMER_LAG = Gauge(
    "retarget_segmenter_consumer_lag", "Records not yet read, by topic partition.", ["topic", "partition"]
)
DUE_SCHEDULED = Gauge("retarget_segmenter_due_heap_entries", "Entries in the timer's in-memory schedule.")
CONVERSIONS = Counter(
    "retarget_segmenter_conversions_total",
    "Purchases attributed to a campaign (last human open or click within the attribution window); "
    "each order counts once.",
    ["workspace", "campaign"],  # read by the funnel (retarget.common.funnel)
)
REVENUE = Counter(
    "retarget_segmenter_revenue_total",
    "Revenue of attributed purchases, in the order's currency units (sum by currency; orders without "
    "a valid ISO 4217 code are labelled currency=unknown).",
    ["workspace", "campaign", "currency"],
)
# Experiments (experiments.py, docs/experiments.md): intent-to-treat counts per arm; `arm` is a
# variant's name, "default", "holdout", or "_other" (an arm the campaign no longer has)
ASSIGNED = Counter(
    "retarget_segmenter_experiment_assigned_total",
    "Campaign firings by experiment arm, the held-out control group (arm=holdout) included.",
    ["workspace", "campaign", "arm"],
)
ARM_CONVERSIONS = Counter(
    "retarget_segmenter_experiment_conversions_total",
    "Assignments followed by an order within the attribution window, opened or not (one per assignment).",
    ["workspace", "campaign", "arm"],
)
ARM_REVENUE = Counter(
    "retarget_segmenter_experiment_revenue_total",
    "Revenue of orders within the attribution window after an assignment, by arm.",
    ["workspace", "campaign", "arm", "currency"],
)
ARM_REVENUE_SQUARED = Counter(
    "retarget_segmenter_experiment_revenue_squared_total",
    "Sum over assignments of (the assignment's revenue)², by arm: the revenue interval's variance.",
    ["workspace", "campaign", "arm", "currency"],
)
ERASED = Counter(
    "retarget_segmenter_erased_total",
    "Keys deleted by GDPR erasure requests (tombstoned in the changelog), by kind: profile, redirect.",
    ["kind"],
)
PROPENSITY = Counter(
    "retarget_segmenter_propensity_total",
    "Campaign conditions on propensity checked at fire time, by outcome: scored (the workspace's "
    "model scored the profile), no model (the condition passed unscored).",
    ["campaign", "outcome"],
)
PROPENSITY_MODELS = Gauge(
    "retarget_segmenter_propensity_models_loaded",
    "Workspaces whose propensity model the segmenter holds (reloaded from PostgreSQL; the loaded "
    "ones are kept while it is away).",
)
CONSENT_MODES = Gauge(
    "retarget_segmenter_consent_modes_known",
    "Workspaces whose consent mode the segmenter holds (reloaded from PostgreSQL; the last known are "
    "kept while it is away).",
)


class BatchCounts:
    """The metric updates of the batch in hand, applied once the batch was recorded.

    A batch that fails, or replays after a crash, is handled again: counted as it is handled,
    its conversions, revenue and triggers would be counted twice. Held per batch, they are
    also cheap: prometheus_client takes a lock per `inc` and per `observe` (which also walks
    the buckets), a few times per event on the hot path; a batch adds each counter's sum and
    each histogram's bucket counts once. `immediate` (unit tests of the rules, which have no
    batches) applies each at once.
    """

    def __init__(self, *, immediate: bool = False) -> None:
        self.immediate = immediate
        self._counted: dict[Any, float] = {}  # counter (or labelled child) -> amount
        self._observed: dict[Any, HeldObservations] = {}  # histogram (or child) -> observations

    def inc(self, counter: Any, amount: float = 1.0) -> None:
        """`counter`: a Counter, or a labelled child of one."""
        if self.immediate:
            counter.inc(amount)
        else:
            self._counted[counter] = self._counted.get(counter, 0.0) + amount

    def observe(self, histogram: Any, amount: float) -> None:
        """`histogram`: a Histogram without labels, or a labelled child of one."""
        if self.immediate:
            histogram.observe(amount)
            return
        held = self._observed.get(histogram)
        if held is None:
            held = self._observed[histogram] = HeldObservations(histogram)
        held.add(amount)

    def apply(self) -> None:
        counted, self._counted = self._counted, {}
        for counter, amount in counted.items():
            counter.inc(amount)
        observed, self._observed = self._observed, {}
        for held in observed.values():
            held.apply()

    def discard(self) -> None:
        self._counted.clear()
        self._observed.clear()


class HeldObservations:
    """One histogram's observations of a batch, as bucket counts and a sum, added at once.

    prometheus_client has no call that adds several observations; `apply` does what `observe`
    does for each of them (its sum, then one bucket per observation: the first bound at or
    above the amount) on the histogram's own values, private attributes of prometheus_client
    0.2x — tests/unit/segmenter/test_segmenter_metrics.py checks the result against `observe`,
    so an upgrade that changes them fails there.
    """

    def __init__(self, histogram: Any) -> None:
        self.histogram = histogram
        self.bounds: list[float] = histogram._upper_bounds  # ascending, the last one +Inf
        self.counts = [0] * len(self.bounds)
        self.total = 0.0

    def add(self, amount: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, amount)] += 1
        self.total += amount

    def apply(self) -> None:
        self.histogram._raise_if_not_observable()
        self.histogram._sum.inc(self.total)
        for bucket, count in zip(self.histogram._buckets, self.counts, strict=True):
            if count:
                bucket.inc(count)
