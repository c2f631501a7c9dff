"""The propensity model's quality and scoring cost, offline: demo traffic and a public data set.

    .venv/bin/python bench/bench_propensity.py demo [--visitors 3000]
    .venv/bin/python bench/bench_propensity.py cdnow --file CDNOW_master.txt

Both go through the product's own code (dataset.build_examples → training.fit / evaluate,
model.score_row) on events built as ingest would accept them; `retarget model train` does
the same on the events topic. Each also fits scikit-learn's HistGradientBoostingClassifier on
the same examples and times one profile's scoring by both, which is what chose the
logistic model (bench/RESULTS.md, "Propensity").

demo: `retarget.demo.traffic.visitors(..., history_days=28)`. cdnow: the CDNOW master file
(23,570 customers of an online CD shop, 1997-01..1998-06, every purchase: customer, date,
CDs, dollars), as the `lifetimes` package ships it (lifetimes/datasets/CDNOW_master.txt in
its wheel); each purchase becomes an `Order Completed` — it has no views, carts or emails,
so only the recency, frequency and purchase features carry anything there.
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from retarget.common.schemas import TrackedEvent
from retarget.segmenter.propensity.dataset import LOOKBACK, Example, build_examples, training_cutoffs
from retarget.segmenter.propensity.features import FEATURES
from retarget.segmenter.propensity.training import evaluate, fit

WORKSPACE = "bench"


def demo_events(n: int, seed: int, now: datetime) -> list[TrackedEvent]:
    from retarget.demo.traffic import visitors

    out = []
    for person in visitors(n, seed=seed, now=now, history_days=28):
        for body in person.events:
            at = datetime.fromisoformat(body["timestamp"])
            out.append(
                TrackedEvent(
                    workspace_id=WORKSPACE,
                    type=body["type"],
                    message_id=body["messageId"],
                    timestamp=at,
                    received_at=at,
                    anonymous_id=body["anonymousId"],
                    event=body.get("event"),
                    name=body.get("name"),
                    properties=body.get("properties", {}),
                    traits=body.get("traits", {}),
                )
            )
    return out


def cdnow_events(path: str) -> list[TrackedEvent]:
    out = []
    with open(path) as lines:
        for n, line in enumerate(lines):
            customer, day, cds, dollars = line.split()
            if not day.isdigit():
                continue  # the header
            at = datetime.strptime(day, "%Y%m%d").replace(hour=12, tzinfo=UTC)
            out.append(
                TrackedEvent(
                    workspace_id=WORKSPACE,
                    type="track",
                    message_id=f"cdnow-{n}",
                    timestamp=at,
                    received_at=at,
                    user_id=customer,
                    event="Order Completed",
                    properties={"revenue": float(dollars), "quantity": int(cds)},
                )
            )
    return out


def compare(
    events: list[TrackedEvent],
    *,
    until: datetime,
    horizon: timedelta,
    step: timedelta,
    count: int,
    lookback: timedelta = LOOKBACK,
) -> dict[str, Any]:
    started = time.perf_counter()
    train_examples = build_examples(
        [e for e in events if e.timestamp <= until],
        training_cutoffs(until, horizon, step, count),
        horizon,
        lookback=lookback,
    )
    built_s = time.perf_counter() - started
    model = fit(train_examples)
    result = evaluate(model, events, cutoff=until, horizon=horizon, lookback=lookback)
    test_examples = build_examples(events, [until], horizon, lookback=lookback)
    result["hgb_auc"], hgb_us = _hist_gradient_boosting(train_examples, test_examples)
    result["train_examples"] = len(train_examples)
    result["train_positives"] = sum(e.label for e in train_examples)
    result["examples_built_s"] = round(built_s, 2)
    result["logistic_score_us"] = round(_per_call_us(lambda: model.score_row(test_examples[0].features)), 2)
    result["hgb_score_us"] = round(hgb_us, 1)
    result["coefficients"] = dict(zip(FEATURES, (round(c, 3) for c in model.coef), strict=True))
    return result


def _hist_gradient_boosting(train: list[Example], test: list[Example]) -> tuple[float, float]:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score

    hgb = HistGradientBoostingClassifier(max_iter=200, random_state=0)
    hgb.fit([e.features for e in train], [e.label for e in train])
    auc = roc_auc_score([e.label for e in test], hgb.predict_proba([e.features for e in test])[:, 1])
    one = [test[0].features]
    return round(float(auc), 4), _per_call_us(lambda: hgb.predict_proba(one), calls=300)


def _per_call_us(call: Any, calls: int = 20_000) -> float:
    call()
    started = time.perf_counter()
    for _ in range(calls):
        call()
    return (time.perf_counter() - started) / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("source", choices=["demo", "cdnow"])
    parser.add_argument("--visitors", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--file", help="CDNOW_master.txt (cdnow)")
    args = parser.parse_args()
    if args.source == "demo":
        now = datetime(2026, 6, 1, 12, tzinfo=UTC)
        events = demo_events(args.visitors, args.seed, now)
        # train on the first three weeks, judge on the last week, today's purchases included
        result = compare(
            events, until=now - timedelta(days=7), horizon=timedelta(days=7), step=timedelta(days=1), count=14
        )
    else:
        events = cdnow_events(args.file)
        # 1997-01..1998-06: train on 1997 (cut-offs a month apart, 90-day horizon), judge 1998-01-01 + 90 d
        result = compare(
            events,
            until=datetime(1998, 1, 1, tzinfo=UTC),
            horizon=timedelta(days=90),
            step=timedelta(days=30),
            count=6,
            lookback=timedelta(days=366),  # a CD buyer comes back a few times a year: all of them count
        )
    result["events"] = len(events)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
