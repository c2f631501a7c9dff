"""Labelled examples from a workspace's event history: features as of a cut-off, the label a
purchase within the horizon after it — pure, no I/O.

The events are replayed in time order through the segmenter's own rules (`apply_event`, no
campaigns), so a profile here is the profile the segmenter holds, and its features are
taken (features.py) before the first event after each cut-off is applied: nothing after a
cut-off reaches its features. The label looks at the orders after it only.

Identity: a visitor's anonymous and known ids are one profile, linked by any event that
carries both (an identify, a call after login) or an alias, anywhere in the history — as
the segmenter has merged them by the time a campaign fires for an identified visitor.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from retarget.common.schemas import TrackedEvent
from retarget.segmenter.campaigns import CampaignSet
from retarget.segmenter.propensity.features import features, recency_hours
from retarget.segmenter.rules import UnusableEvent, apply_event
from retarget.segmenter.state import Profile

NO_CAMPAIGNS = CampaignSet.of([])
LOOKBACK = timedelta(days=30)  # a profile quiet for longer is not an example at a cut-off


@dataclass(frozen=True)
class Example:
    profile_id: str
    cutoff: datetime
    features: list[float]
    recency_h: float  # the baseline's input
    label: int


class _Identities:
    """Union-find over a workspace's ids: the profile each id belongs to."""

    def __init__(self) -> None:
        self._parent: dict[str, str] = {}

    def root(self, key: str) -> str:
        parent = self._parent.setdefault(key, key)
        while parent != self._parent[parent]:
            parent = self._parent[parent]
        self._parent[key] = parent
        return parent

    def link(self, a: str, b: str) -> None:
        ra, rb = self.root(a), self.root(b)
        if ra != rb:
            self._parent[rb] = ra


def profile_of(identities: _Identities, event: TrackedEvent) -> str | None:
    key = event.user_id or event.anonymous_id
    return identities.root(key) if key else None


def build_examples(
    events: Iterable[TrackedEvent],
    cutoffs: Iterable[datetime],
    horizon: timedelta,
    *,
    lookback: timedelta = LOOKBACK,
) -> list[Example]:
    ordered = sorted(events, key=lambda e: e.timestamp)
    identities = _identities(ordered)
    orders: dict[str, list[datetime]] = {}
    for event in ordered:
        root = profile_of(identities, event)
        if root is not None and event.type == "track" and event.event == "Order Completed":
            orders.setdefault(root, []).append(event.timestamp)  # already in time order
    profiles: dict[str, Profile] = {}
    examples: list[Example] = []
    pending = sorted(cutoffs)
    for event in ordered:
        while pending and event.timestamp > pending[0]:  # features before any later event is applied
            examples += _snapshot(profiles, orders, pending.pop(0), horizon, lookback)
        root = profile_of(identities, event)
        if root is None:
            continue
        profile = profiles.setdefault(root, Profile(workspace_id=event.workspace_id, profile_id=root))
        try:
            apply_event(profile, event, NO_CAMPAIGNS)
        except UnusableEvent:
            continue  # skipped by the segmenter too
    for cutoff in pending:  # cut-offs after the last event
        examples += _snapshot(profiles, orders, cutoff, horizon, lookback)
    return examples


def _identities(events: list[TrackedEvent]) -> _Identities:
    identities = _Identities()
    for event in events:
        if event.user_id and event.anonymous_id:
            identities.link(event.user_id, event.anonymous_id)
        if event.type == "alias" and event.previous_id and event.user_id:
            identities.link(event.user_id, event.previous_id)
    return identities


def _snapshot(
    profiles: dict[str, Profile],
    orders: dict[str, list[datetime]],
    cutoff: datetime,
    horizon: timedelta,
    lookback: timedelta,
) -> list[Example]:
    out = []
    for root, profile in profiles.items():
        last = profile.activity.last_at if profile.activity else None
        if last is None or last <= cutoff - lookback:
            continue
        times = orders.get(root, [])
        first_after = bisect.bisect_right(times, cutoff)
        label = int(first_after < len(times) and times[first_after] <= cutoff + horizon)
        out.append(Example(root, cutoff, features(profile, cutoff), recency_hours(profile, cutoff), label))
    return out


def training_cutoffs(until: datetime, horizon: timedelta, step: timedelta, count: int) -> list[datetime]:
    """Cut-offs whose whole horizon ends by `until`: a model trained `--until T` saw nothing after T."""
    last = until - horizon
    return [last - i * step for i in range(count)]
