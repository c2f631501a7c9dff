"""`incentive.coupon` in a campaign file: validated, normalised to what the trigger carries,
and campaigns without it unchanged."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from retarget.config.campaign_schema import CampaignFile
from retarget.config.defaults import bundled_campaigns
from retarget.coupons.spec import coupon_spec


def campaign(incentive: dict[str, Any]) -> dict[str, Any]:
    return {**bundled_campaigns()["abandoned_cart"], "incentive": incentive}


def test_a_campaign_without_a_coupon_keeps_its_incentive_as_is() -> None:
    parsed = CampaignFile.model_validate(campaign({"kind": "percent_off", "value": 10}))
    assert parsed.incentive == {"kind": "percent_off", "value": 10}
    assert coupon_spec(parsed.incentive) is None and coupon_spec({}) is None


def test_unique_and_pool_are_normalised_to_json() -> None:
    unique = CampaignFile.model_validate(
        campaign({"kind": "percent_off", "value": 10, "coupon": {"mode": "unique", "expires_after": "3d"}})
    )
    assert unique.incentive["coupon"] == {"mode": "unique", "expires_after": 3 * 86400}
    pool = CampaignFile.model_validate(campaign({"kind": "x", "coupon": {"mode": "pool", "pool": "spring"}}))
    assert pool.incentive["coupon"] == {"mode": "pool", "expires_after": 7 * 86400, "pool": "spring"}
    spec = coupon_spec(pool.incentive)  # what the composer reads back from the trigger's JSON
    assert spec is not None and (spec.mode, spec.pool, spec.expires_after) == (
        "pool",
        "spring",
        timedelta(days=7),
    )
    assert yaml.safe_dump(pool.incentive)  # plain data: it crosses Kafka in the trigger


@pytest.mark.parametrize(
    ("coupon", "says"),
    [
        ({"mode": "pool"}, "mode pool needs `pool`"),
        ({"mode": "unique", "pool": "spring"}, "only goes with mode pool"),
        ({"mode": "lottery"}, "coupon.mode"),
        ({"mode": "unique", "expires_after": "0s"}, "more than 0"),
        ({"mode": "unique", "expires_after": "soon"}, "coupon.expires_after"),
        ({"mode": "pool", "pool": "Spring Sale"}, "coupon.pool"),
        ({"mode": "unique", "code": "FIXED"}, "coupon.code"),
        ("unique", "coupon"),
    ],
)
def test_a_bad_coupon_is_refused_naming_the_field(coupon: object, says: str) -> None:
    with pytest.raises(ValidationError) as refused:
        CampaignFile.model_validate(campaign({"kind": "percent_off", "value": 10, "coupon": coupon}))
    assert says in str(refused.value)


def test_a_malformed_spec_on_a_trigger_is_a_value_error() -> None:
    with pytest.raises(ValueError, match=r"coupon\.mode"):
        coupon_spec({"coupon": {"mode": 3}})
