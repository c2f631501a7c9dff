"""A trained propensity model as data: a standardised logistic regression, scored in pure Python.

Stored as JSON (features, means, scales, coefficients, intercept), not as a pickle: the
models table is written by whoever holds the database, and unpickling runs code. JSON scores
in ~2 µs here without importing scikit-learn or numpy into the segmenter (bench/RESULTS.md,
"Propensity"), and a linear model lost nothing measurable against gradient boosting on
these features (same section). A model whose feature list is not this build's FEATURES is
refused when loaded (`ModelError`), so a model trained by another version never scores
profiles with its columns shifted.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

import msgspec

from retarget.segmenter.propensity.features import FEATURES, features
from retarget.segmenter.state import Profile

KIND = "logistic-v1"
MAX_COEFFICIENT = 1e6  # of standardised features: a fitted (regularised) model is far below
MAX_MEAN = 1e15
MIN_SCALE = 1e-6  # a feature's standard deviation; a constant feature's is stored as 1.0


class ModelError(ValueError):
    """A stored model this build can't use; the message says why."""


class LogisticModel(msgspec.Struct, kw_only=True, frozen=True):
    kind: str
    features: list[str]
    mean: list[float]
    scale: list[float]
    coef: list[float]
    intercept: float

    def score_row(self, row: list[float]) -> float:
        z = self.intercept
        for x, m, s, c in zip(row, self.mean, self.scale, self.coef, strict=True):
            z += c * (x - m) / s
        return 1.0 / (1.0 + math.exp(-z)) if z > -700 else 0.0

    def score(self, profile: Profile, as_of: datetime) -> float:
        return self.score_row(features(profile, as_of))


def loads(body: bytes) -> LogisticModel:
    """The model in `body` (JSON), checked against this build's features; ModelError if not usable."""
    try:
        model = msgspec.json.decode(body, type=LogisticModel)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise ModelError(f"not a propensity model: {exc}") from exc
    if model.kind != KIND:
        raise ModelError(f"model kind {model.kind!r}; this build scores {KIND!r}")
    if tuple(model.features) != FEATURES:
        raise ModelError("the model's features are not this build's: retrain it (`retarget model train`)")
    n = len(FEATURES)
    if not (len(model.mean) == len(model.scale) == len(model.coef) == n):
        raise ModelError(f"the model needs {n} means, scales and coefficients")
    if any(s <= 0 for s in model.scale):  # (JSON holds no NaN or infinity: msgspec refuses 1e999)
        raise ModelError("the model holds a scale that is not positive")
    # finite is not enough: +1e308 and -1e308 terms (or a subnormal scale) make z NaN, which
    # would score 0.0 and pass every profile as unlikely to buy. Within these bounds z is finite.
    if (
        any(abs(c) > MAX_COEFFICIENT for c in [*model.coef, model.intercept])
        or any(abs(m) > MAX_MEAN for m in model.mean)
        or any(not MIN_SCALE <= s <= MAX_MEAN for s in model.scale)
    ):
        raise ModelError(
            f"the model holds a value out of bounds (|coefficient| at most {MAX_COEFFICIENT:g}, "
            f"|mean| at most {MAX_MEAN:g}, scale from {MIN_SCALE:g} to {MAX_MEAN:g})"
        )
    return model


def dumps(model: LogisticModel) -> bytes:
    return msgspec.json.encode(model)


def from_sklearn(pipeline: Any) -> LogisticModel:
    """The JSON form of a fitted Pipeline(StandardScaler, LogisticRegression) on FEATURES."""
    scaler, regression = pipeline[0], pipeline[-1]
    return LogisticModel(
        kind=KIND,
        features=list(FEATURES),
        mean=[float(v) for v in scaler.mean_],
        scale=[float(v) if v > 0 else 1.0 for v in scaler.scale_],
        coef=[float(v) for v in regression.coef_[0]],
        intercept=float(regression.intercept_[0]),
    )
