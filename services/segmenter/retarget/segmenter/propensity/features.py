"""The propensity model's features of a profile as of a cut-off time — pure, one definition.

Training (dataset.py) computes them on profiles rebuilt from the event history as of each
cut-off; the segmenter computes them on the live profile as of the firing. Same function, so
the two never drift; a stored model names its FEATURES and one whose list differs from this
one is not used (model.py).

Only what happened at or before `as_of` counts: a day's tally after the cut-off's day is
skipped, and a time after it is treated as the cut-off itself. (Training also never applies
an event after the cut-off; this is the second guard.) Counts enter as log1p, so a few very
busy visitors do not dominate a linear model.
"""

from __future__ import annotations

import math
from datetime import datetime

from retarget.segmenter.propensity.activity import utc_day
from retarget.segmenter.state import Activity, Profile

RECENCY_CAP_H = 24 * 60.0  # "never" and "two months ago" mean the same to a 30-day window
WINDOWS_D = (1, 7, 30)
_NO_ACTIVITY = Activity()

FEATURES: tuple[str, ...] = (
    "recency_h",
    "view_recency_h",
    "order_recency_h",
    *(f"events_{d}d" for d in WINDOWS_D),
    *(f"sessions_{d}d" for d in WINDOWS_D),
    *(f"views_{d}d" for d in WINDOWS_D),
    "adds_7d",
    "cart_value",
    "cart_items",
    "viewed_products",
    "opens_30d",
    "clicks_30d",
    "orders_30d",
    "revenue_30d",
    "orders_total",
)


def features(profile: Profile, as_of: datetime) -> list[float]:
    """The FEATURES of `profile` as of `as_of`, in that order. On the hot path (a campaign
    with a propensity condition firing): one pass over the days kept."""
    activity = profile.activity or _NO_ACTIVITY
    today = utc_day(as_of)
    w1, w7, w30 = [0.0] * 8, [0.0] * 8, [0.0] * 8  # events sessions views adds orders opens clicks revenue
    for t in activity.days:
        age = today - t.day
        if age < 0 or age >= 30:  # a tally after the cut-off's day never counts
            continue
        counts = (t.events, t.sessions, t.views, t.adds, t.orders, t.opens, t.clicks, t.revenue)
        windows = (w1, w7, w30) if age < 1 else (w7, w30) if age < 7 else (w30,)
        for window in windows:
            for i, value in enumerate(counts):
                window[i] += value
    cart = [i.line for i in profile.cart.values() if i.added_at <= as_of]
    viewed = [v.at for v in profile.viewed if v.at <= as_of]
    log = _log
    return [
        _hours_since(activity.last_at, as_of),
        _hours_since(max(viewed, default=None), as_of),
        _hours_since(activity.last_order_at, as_of),
        log(w1[0]), log(w7[0]), log(w30[0]),
        log(w1[1]), log(w7[1]), log(w30[1]),
        log(w1[2]), log(w7[2]), log(w30[2]),
        log(w7[3]),
        log(sum(line.price * line.quantity for line in cart)),
        log(sum(line.quantity for line in cart)),
        log(len(viewed)),
        log(w30[5]),
        log(w30[6]),
        log(w30[4]),
        log(w30[7]),
        log(activity.orders),
    ]  # fmt: skip


def recency_hours(profile: Profile, as_of: datetime) -> float:
    """The recency-only baseline's score (negated: more recent, likelier)."""
    return _hours_since((profile.activity or Activity()).last_at, as_of)


def _hours_since(when: datetime | None, as_of: datetime) -> float:
    if when is None:
        return RECENCY_CAP_H
    return min(RECENCY_CAP_H, max(0.0, (as_of - when).total_seconds() / 3600))


def _log(value: float) -> float:
    return math.log1p(max(0.0, value))
