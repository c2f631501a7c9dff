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
from retarget.segmenter.state import Activity, DayTally, Profile

RECENCY_CAP_H = 24 * 60.0  # "never" and "two months ago" mean the same to a 30-day window
WINDOWS_D = (1, 7, 30)

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
    """The FEATURES of `profile` as of `as_of`, in that order."""
    activity = profile.activity or Activity()
    today = utc_day(as_of)
    days = [t for t in activity.days if t.day <= today]  # a tally after the cut-off never counts
    values: dict[str, float] = {
        "recency_h": _hours_since(activity.last_at, as_of),
        "view_recency_h": _hours_since(
            max((v.at for v in profile.viewed if v.at <= as_of), default=None), as_of
        ),
        "order_recency_h": _hours_since(activity.last_order_at, as_of),
        "adds_7d": _log(_sum(days, today, 7, "adds")),
        "cart_value": _log(
            sum(i.line.price * i.line.quantity for i in profile.cart.values() if i.added_at <= as_of)
        ),
        "cart_items": _log(sum(i.line.quantity for i in profile.cart.values() if i.added_at <= as_of)),
        "viewed_products": _log(sum(1 for v in profile.viewed if v.at <= as_of)),
        "opens_30d": _log(_sum(days, today, 30, "opens")),
        "clicks_30d": _log(_sum(days, today, 30, "clicks")),
        "orders_30d": _log(_sum(days, today, 30, "orders")),
        "revenue_30d": _log(_sum(days, today, 30, "revenue")),
        "orders_total": _log(activity.orders),
    }
    for d in WINDOWS_D:
        for name in ("events", "sessions", "views"):
            values[f"{name}_{d}d"] = _log(_sum(days, today, d, name))
    return [values[name] for name in FEATURES]


def recency_hours(profile: Profile, as_of: datetime) -> float:
    """The recency-only baseline's score (negated: more recent, likelier)."""
    return _hours_since((profile.activity or Activity()).last_at, as_of)


def _hours_since(when: datetime | None, as_of: datetime) -> float:
    if when is None:
        return RECENCY_CAP_H
    return min(RECENCY_CAP_H, max(0.0, (as_of - when).total_seconds() / 3600))


def _sum(days: list[DayTally], today: int, window: int, name: str) -> float:
    return float(sum(getattr(t, name) for t in days if t.day > today - window))


def _log(value: float) -> float:
    return math.log1p(max(0.0, value))
