"""The campaign file's `variants` and `holdout`: what validates and what is refused, by field."""

from __future__ import annotations

from typing import Any

import pytest

from retarget.config.defaults import bundled_campaigns
from retarget.config.validation import ConfigInvalid, validate

CART = bundled_campaigns()["abandoned_cart"]


def campaign(**fields: Any) -> dict[str, Any]:
    return {**CART, **fields}


def test_variants_and_a_holdout_validate():
    body = campaign(
        variants=[
            {"name": "a", "weight": 1, "subject": "Still thinking, {{ recipient.first_name }}?"},
            {"name": "b", "weight": 2.5, "template": "browse_abandonment", "incentive": {"kind": "none"}},
        ],
        holdout="10%",
    )
    assert validate("campaign", "abandoned_cart", body) == body


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"variants": [{"name": "a", "weight": 0}]},
            "field variants.0.weight: Input should be greater than 0",
        ),
        ({"variants": [{"name": "a", "weight": -1}]}, "greater than 0"),
        ({"variants": [{"name": "a", "weight": 1}, {"name": "a", "weight": 2}]}, "'a' is used twice"),
        ({"variants": [{"name": "holdout", "weight": 1}]}, "'holdout' is reserved"),
        ({"variants": [{"name": "A b", "weight": 1}]}, "field variants.0.name"),
        ({"variants": [{"name": "a", "weight": 1, "template": "../x"}]}, "field variants.0.template"),
        ({"variants": [{"name": "a", "weight": 1, "subject": "two\nlines"}]}, "subject is one line"),
        ({"variants": [{"name": "a", "weight": 1, "colour": "red"}]}, "field variants.0.colour"),
        ({"variants": [{"name": f"v{i}", "weight": 1} for i in range(9)]}, "at most 8"),
        # a string that parses to infinity (JSON has no infinity; "inf" passed the finite check,
        # which saw the string before pydantic turned it into a float)
        ({"variants": [{"name": "a", "weight": "inf"}]}, "field variants.0.weight"),
        ({"variants": [{"name": "a", "weight": "Infinity"}]}, "field variants.0.weight"),
        ({"variants": [{"name": "a", "weight": "1e999"}]}, "field variants.0.weight"),
        # a subject that is not a template: every message of the arm would be dead-lettered
        (
            {"variants": [{"name": "a", "weight": 1, "subject": "Hi {{ recipient.first_name"}]},
            "field variants.0.subject",
        ),
        ({"holdout": 0.1}, "write e.g. 10%"),
        ({"holdout": "60%"}, "from 0% to 50%"),
        ({"holdout": "ten%"}, "not a percentage"),
    ],
)
def test_a_bad_experiment_is_refused_naming_the_field(fields: dict[str, Any], message: str):
    with pytest.raises(ConfigInvalid) as refused:
        validate("campaign", "abandoned_cart", campaign(**fields))
    assert message in str(refused.value)


def test_no_holdout_is_zero():
    from retarget.config.campaign_schema import CampaignFile

    assert CampaignFile.model_validate(campaign(holdout=0)).holdout == 0.0
    assert CampaignFile.model_validate(campaign(holdout="12.5%")).holdout == 0.125


def test_a_workspace_policy_takes_a_global_holdout_as_a_percentage():
    from retarget.config.schemas import PolicyBody

    body = validate("policy", "", {"global_holdout": "5%"})  # kept as written, like the windows
    assert PolicyBody.model_validate(body).global_holdout == 0.05
    with pytest.raises(ConfigInvalid, match=r"write e\.g\. 10%"):
        validate("policy", "", {"global_holdout": 0.05})


def test_a_variants_coupon_is_checked_like_the_campaigns():
    coupon = {"kind": "percent_off", "value": 20, "coupon": {"mode": "pool"}}  # a pool needs its name
    with pytest.raises(ConfigInvalid, match="pool"):
        validate(
            "campaign", "abandoned_cart", campaign(variants=[{"name": "a", "weight": 1, "incentive": coupon}])
        )
