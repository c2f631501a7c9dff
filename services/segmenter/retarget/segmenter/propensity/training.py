"""Fitting and judging the propensity model (scikit-learn; imported only by `retarget model`).

Training: examples at `count` cut-offs a `step` apart, the last one a horizon before
`until`, so every label was known by `until`. Evaluation: the one later slice — cut-off at
the model's `until`, labels from the horizon after it — scored by the model and by the
recency-only baseline (a more recent visitor is likelier to buy), as ROC AUC; log loss and
a five-bin calibration table for the model.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from retarget.segmenter.propensity.dataset import LOOKBACK, Example, build_examples, training_cutoffs
from retarget.segmenter.propensity.model import LogisticModel, from_sklearn


class NotEnoughData(ValueError):
    """The history can't train or judge a model; the message says what is missing."""


def fit(examples: Sequence[Example]) -> LogisticModel:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    labels = [e.label for e in examples]
    if len(set(labels)) < 2:
        raise NotEnoughData(
            f"{len(examples)} examples, {sum(labels)} with a purchase: training needs both buyers and non-buyers"
        )
    pipeline = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=1000))
    pipeline.fit([e.features for e in examples], labels)
    return from_sklearn(pipeline)


def train(
    events: Sequence[Any], *, until: datetime, horizon: timedelta, step: timedelta, count: int
) -> tuple[LogisticModel, dict[str, Any]]:
    cutoffs = training_cutoffs(until, horizon, step, count)
    examples = build_examples([e for e in events if e.timestamp <= until], cutoffs, horizon)
    model = fit(examples)
    metrics = {
        "examples": len(examples),
        "positives": sum(e.label for e in examples),
        "cutoffs": len(cutoffs),
        "train_auc": _auc([e.label for e in examples], [model.score_row(e.features) for e in examples]),
    }
    return model, metrics


def evaluate(
    model: LogisticModel,
    events: Sequence[Any],
    *,
    cutoff: datetime,
    horizon: timedelta,
    lookback: timedelta = LOOKBACK,
) -> dict[str, Any]:
    latest = max((e.timestamp for e in events), default=None)
    if latest is None or latest < cutoff:
        raise NotEnoughData(
            f"no events after the model's cut-off {cutoff.isoformat()}: nothing to judge it on"
        )
    examples = build_examples(events, [cutoff], horizon, lookback=lookback)
    labels = [e.label for e in examples]
    if len(set(labels)) < 2:
        raise NotEnoughData(
            f"{len(examples)} profiles at {cutoff.isoformat()}, {sum(labels)} bought within {horizon}: "
            "the AUC needs both buyers and non-buyers"
        )
    scores = [model.score_row(e.features) for e in examples]
    return {
        "cutoff": cutoff.isoformat(),
        "horizon_s": horizon.total_seconds(),
        "observed_until": latest.isoformat(),
        "horizon_complete": latest >= cutoff + horizon,
        "examples": len(examples),
        "positives": sum(labels),
        "auc": _auc(labels, scores),
        "baseline_recency_auc": _auc(labels, [-e.recency_h for e in examples]),
        "log_loss": _log_loss(labels, scores),
        "base_rate_log_loss": _log_loss(labels, [sum(labels) / len(labels)] * len(labels)),
        "calibration": calibration(labels, scores),
    }


def calibration(labels: Sequence[int], scores: Sequence[float], bins: int = 5) -> list[dict[str, float]]:
    """Mean predicted against observed purchase rate, per score quantile bin."""
    ranked = sorted(zip(scores, labels, strict=True))
    size = max(1, len(ranked) // bins)
    rows = []
    for start in range(0, len(ranked), size):
        chunk = ranked[start : start + size]
        rows.append(
            {
                "n": len(chunk),
                "predicted": round(sum(s for s, _ in chunk) / len(chunk), 4),
                "observed": round(sum(y for _, y in chunk) / len(chunk), 4),
            }
        )
    return rows


def _auc(labels: Sequence[int], scores: Sequence[float]) -> float:
    from sklearn.metrics import roc_auc_score

    return round(float(roc_auc_score(labels, scores)), 4)


def _log_loss(labels: Sequence[int], scores: Sequence[float]) -> float:
    from sklearn.metrics import log_loss

    return round(float(log_loss(labels, [min(max(s, 1e-9), 1 - 1e-9) for s in scores], labels=[0, 1])), 4)
