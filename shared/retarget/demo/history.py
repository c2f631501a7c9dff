"""The weeks before the demo's visit: past sessions and orders, drawn from a per-visitor intent.

Without it every demo visitor arrives once and buys (or not) by a coin its behaviour fixed:
nothing before the purchase says who will buy, and a propensity model has nothing to learn
from. So each visitor gets an intent — higher for today's buyers, as real shops see — that
draws how often they came back over the past weeks and how often they bought; and an order,
past or today's, usually follows a few days of looking (sessions with product views).
Past sessions are page views and product views only (no cart adds), and past orders carry
no `order_id`, so the bundled campaigns do not mail anyone about the past weeks.

Opt-in (`visitors(..., history_days=N)`): the demo itself sends none; the propensity
benchmark (bench/bench_propensity.py) and the model's tests do.
"""

from __future__ import annotations

import math
import random
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from retarget.demo.traffic import Visitor

# mean intent by today's behaviour: a buyer was likelier a regular
INTENT = {"buyer": 1.6, "cart_abandoner": 0.8, "repeat_abandoner": 0.9, "browser": 0.6, "trialist": 0.5}
READER_INTENT = 0.3


def add_history(
    visitor: Visitor, *, days: int, seed: int, index: int, now: datetime, catalog: list[Any]
) -> None:
    rng = random.Random(f"{seed}-history-{index}")
    intent = rng.gammavariate(2.0, INTENT.get(visitor.behaviour, READER_INTENT) / 2.0)
    past: list[dict[str, Any]] = []
    # an order's looking-around starts up to 4 days before it: all of it within the `days`
    order_days = [rng.uniform(1, max(1, days - 4)) for _ in range(_poisson(rng, intent * days / 30))]
    for ago in order_days:
        past += _research(rng, visitor, now - timedelta(days=ago), catalog)
        past.append(
            _event(
                visitor,
                "track",
                now - timedelta(days=ago),
                event="Order Completed",
                properties=_order(rng, catalog),
            )
        )
    for _ in range(_poisson(rng, intent * days / 8)):  # visits that led nowhere
        past += _session(rng, visitor, now - timedelta(days=rng.uniform(0.1, days)), catalog)
    if visitor.behaviour == "buyer" or rng.random() < 0.3:  # today's order (or cart) was looked at first
        past += _research(rng, visitor, now, catalog)
    past.sort(key=lambda e: e["timestamp"])
    for n, body in enumerate(past):
        body["messageId"] = f"{visitor.anonymous_id}-h{n}"
    # one time order for the visitor's whole stream (stable: today's events keep theirs)
    visitor.events[:] = sorted([*past, *visitor.events], key=lambda e: datetime.fromisoformat(e["timestamp"]))


def _research(
    rng: random.Random, visitor: Visitor, before: datetime, catalog: list[Any]
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for _ in range(rng.randint(1, 3)):
        out += _session(rng, visitor, before - timedelta(days=rng.uniform(0.05, 4)), catalog)
    return out


def _session(rng: random.Random, visitor: Visitor, at: datetime, catalog: list[Any]) -> list[dict[str, Any]]:
    out = [_event(visitor, "page", at, name="Home")]
    for i in range(rng.randint(0, 4)):
        product_id, name, price = rng.choice(catalog)
        props = {"product_id": product_id, "name": name, "price": price, "currency": "USD"}
        out.append(
            _event(visitor, "track", at + timedelta(minutes=i + 1), event="Product Viewed", properties=props)
        )
    return out


def _order(rng: random.Random, catalog: list[Any]) -> dict[str, Any]:
    _, _, price = rng.choice(catalog)
    return {"revenue": price, "total": price, "currency": "USD"}  # no order_id: post_purchase stays quiet


def _event(visitor: Visitor, kind: str, at: datetime, **fields: Any) -> dict[str, Any]:
    return {"type": kind, "anonymousId": visitor.anonymous_id, "timestamp": at.isoformat(), **fields}


def _poisson(rng: random.Random, mean: float) -> int:
    # Knuth's method: the means here are small (< 20)
    limit, k, p = math.exp(-mean), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1
