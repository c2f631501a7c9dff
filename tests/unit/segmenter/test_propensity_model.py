"""The stored model's format, its hot-loading cache and the campaign condition that uses it."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import msgspec
import pytest
from pydantic import ValidationError

from retarget.config.campaign_schema import CampaignFile
from retarget.segmenter.campaigns import Campaign, CampaignSet
from retarget.segmenter.firing import fire_due
from retarget.segmenter.propensity.dataset import Example
from retarget.segmenter.propensity.features import FEATURES
from retarget.segmenter.propensity.model import KIND, LogisticModel, ModelError, dumps, loads
from retarget.segmenter.propensity.serving import PropensityModels, Score
from retarget.segmenter.propensity.store import StoredModel
from retarget.segmenter.propensity.training import NotEnoughData, fit
from retarget.segmenter.state import Pending, Profile

T0 = datetime(2026, 3, 10, 12, tzinfo=UTC)
N = len(FEATURES)


def model(intercept: float = 0.0, **changes: object) -> LogisticModel:
    base = LogisticModel(
        kind=KIND,
        features=list(FEATURES),
        mean=[0.0] * N,
        scale=[1.0] * N,
        coef=[0.0] * N,
        intercept=intercept,
    )
    return msgspec.structs.replace(base, **changes)


def test_a_model_round_trips_through_its_json():
    m = model(0.3, coef=[0.1 * i for i in range(N)], mean=[0.5] * N, scale=[2.0] * N)
    row = [float(i) for i in range(N)]
    assert loads(dumps(m)).score_row(row) == m.score_row(row)
    z = 0.3 + sum(0.1 * i * (i - 0.5) / 2.0 for i in range(N))
    assert m.score_row(row) == pytest.approx(1 / (1 + math.exp(-z)))


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"\x80\x04pickle", "not a propensity model"),
        (dumps(model(kind="pickle")), "model kind"),
        (dumps(model(features=[*FEATURES[1:], FEATURES[0]])), "features are not this build's"),
        (dumps(model(coef=[0.0] * (N - 1))), "means, scales and coefficients"),
        (dumps(model(scale=[0.0] * N)), "scale that is not positive"),
        (dumps(model(intercept=7.0)).replace(b'"intercept":7.0', b'"intercept":1e999'), "out of range"),
        # finite but hostile: +1e308 and -1e308 terms make z NaN, which scored 0.0 (everyone
        # "unlikely to buy", so every discount passed); a subnormal scale overflows the same way
        (dumps(model(coef=[1e308, -1e308] + [0.0] * (N - 2))), "out of bounds"),
        (dumps(model(scale=[5e-324] * N, coef=[1.0] * N)), "out of bounds"),
        (dumps(model(intercept=1e300)), "out of bounds"),
        (dumps(model(mean=[-1e300] * N)), "out of bounds"),
    ],
)
def test_a_model_this_build_cant_use_is_refused_with_the_reason(body: bytes, reason: str):
    with pytest.raises(ModelError, match=reason):
        loads(body)


def test_a_model_within_bounds_never_scores_nan():
    m = loads(dumps(model(1e6, coef=[1e6, -1e6] * (N // 2) + [1e6], mean=[1e15] * N, scale=[1e-6] * N)))
    for row in ([0.0] * N, [1e12] * N, [-1e12] * N):
        value = m.score_row(row)
        assert 0.0 <= value <= 1.0


def test_fit_needs_buyers_and_non_buyers():
    with pytest.raises(NotEnoughData, match="both buyers and non-buyers"):
        fit([Example("p", T0, [0.0] * N, 0.0, 0) for _ in range(5)])


def test_fit_learns_which_way_a_feature_points():
    examples = [Example(f"p{i}", T0, [float(i % 2)] + [0.0] * (N - 1), 0.0, i % 2) for i in range(40)]
    fitted = fit(examples)
    assert fitted.score_row([1.0] + [0.0] * (N - 1)) > 0.5 > fitted.score_row([0.0] * N)


def stored(version: int, m: LogisticModel | bytes, workspace: str = "ws") -> StoredModel:
    body = m if isinstance(m, bytes) else dumps(m)
    return StoredModel(workspace, version, KIND, body, {}, T0, timedelta(days=7), T0)


async def test_the_newest_version_replaces_the_loaded_one_and_an_outage_keeps_it():
    rows: dict[str, StoredModel] = {"ws": stored(1, model(-5.0))}
    failing = False

    async def fetch() -> dict[str, StoredModel]:
        if failing:
            raise OSError("PostgreSQL away")
        return rows

    models = PropensityModels(fetch)
    profile = Profile(workspace_id="ws", profile_id="p")
    assert models(profile, T0) is None and not models.attempted  # nothing loaded yet
    assert await models.refresh()
    assert models(profile, T0) == Score(pytest.approx(1 / (1 + math.exp(5))), 1)
    rows["ws"] = stored(2, model(5.0))
    await models.refresh()
    assert models(profile, T0).version == 2  # type: ignore[union-attr]
    failing = True
    fresh = PropensityModels(fetch)
    assert not await fresh.refresh() and fresh.attempted  # tried: the timer need not wait for PostgreSQL
    assert not await models.refresh()
    assert models(profile, T0).version == 2  # type: ignore[union-attr]
    assert models(Profile(workspace_id="other", profile_id="p"), T0) is None


async def test_an_unusable_new_version_keeps_the_previous_model():
    rows = {"ws": stored(1, model(1.0))}

    async def fetch() -> dict[str, StoredModel]:
        return rows

    models = PropensityModels(fetch)
    await models.refresh()
    rows["ws"] = stored(2, b'{"kind": "something else"}')
    await models.refresh()
    assert models.version("ws") == 1


def campaign(threshold: float | None) -> Campaign:
    spec = CampaignFile.model_validate(
        {
            "name": "abandoned_cart",
            "entry": {"event": "Product Added"},
            "wait": "1h",
            "conditions": {"propensity_below": threshold} if threshold is not None else {},
            "incentive": {"kind": "percent_off", "value": 10},
        }
    )
    return Campaign.from_file(spec)


def due_profile() -> Profile:
    pending = Pending(campaign="abandoned_cart", due_at=T0, entry_message_id="m", entry_at=T0, started_at=T0)
    return Profile(
        workspace_id="ws", profile_id="p", email="a@b.example", pending={"abandoned_cart": pending}
    )


@pytest.mark.parametrize(("score", "fires"), [(Score(0.59, 3), True), (Score(0.6, 3), False), (None, True)])
def test_propensity_below_fires_only_under_the_threshold_and_without_a_model(
    score: Score | None, fires: bool
):
    fired = fire_due(due_profile(), CampaignSet.of([campaign(0.6)]), T0, propensity=lambda p, at: score)
    assert bool(fired.triggers) is fires
    if score is None:
        assert ("propensity", "no model") in [(o.kind, o.reason) for o in fired.outcomes]
    elif fires:
        assert (
            fired.triggers[0].data["propensity"] == 0.59 and fired.triggers[0].data["propensity_model"] == 3
        )
    else:
        assert ("cancelled", "propensity at or above threshold") in [
            (o.kind, o.reason) for o in fired.outcomes
        ]


def test_a_campaign_without_the_condition_never_scores():
    def scorer(p: Profile, at: datetime) -> Score:
        raise AssertionError("scored without a condition")

    fired = fire_due(due_profile(), CampaignSet.of([campaign(None)]), T0, propensity=scorer)
    assert fired.triggers and "propensity" not in fired.triggers[0].data


@pytest.mark.parametrize("threshold", [0, -0.1, 1.5, "high"])
def test_the_threshold_is_a_probability(threshold: object):
    with pytest.raises(ValidationError, match="propensity_below"):
        campaign(threshold)  # type: ignore[arg-type]


def cart_events(visitor: str, at: datetime) -> list:
    from retarget.segmenter.testing import identify, track

    return [
        identify(at, mid=f"{visitor}-i", anonymous_id=visitor, email=f"{visitor}@b.example"),
        track("Product Added", at, mid=f"{visitor}-a", anonymous_id=visitor, product_id="x", price=10.0),
    ]


@pytest.mark.parametrize("path", ["timer", "a later event"])
async def test_the_worker_scores_at_fire_time_whichever_path_fires(path: str):
    from retarget.common.testing import FakeClock
    from retarget.segmenter.testing import Harness, track

    clock = FakeClock(T0)
    harness = Harness(CampaignSet.of([campaign(0.6)]), clock=clock)
    harness.propensity = lambda p, at: Score(0.9 if p.profile_id == "likely" else 0.1, 4)
    for visitor in ("likely", "unlikely"):
        for event in cart_events(visitor, T0):
            await harness.send(event)
    clock.advance(hours=2)
    if path == "timer":
        await harness.run_timer()
    else:  # an event stamped after the due time fires the wait before it is applied
        for visitor in ("likely", "unlikely"):
            await harness.send(track("Page Thing", clock.now(), mid=f"{visitor}-late", anonymous_id=visitor))
    assert [(t.profile_id, t.data["propensity"], t.data["propensity_model"]) for t in harness.triggers] == [
        ("unlikely", 0.1, 4)
    ]
