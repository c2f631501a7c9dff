"""The demo workspace's own configuration: its abandoned-cart campaign with 15% off instead of the
bundled 10% (an A/B test against 10% off, with a 10% holdout), and that campaign's subject line of its own — applied through the same
ConfigService as `retarget campaigns apply` / `retarget templates apply` (a version in
PostgreSQL, a record on the change feed), while the other four campaigns stay the bundled
defaults every workspace inherits.

Applying the same bodies again stores nothing new, so every demo run after the first reuses
version it made.
"""

from __future__ import annotations

from dataclasses import dataclass

from retarget.cli._config import config_service
from retarget.common.settings import CommonSettings
from retarget.config.defaults import bundled_campaigns, bundled_templates

CAMPAIGN = "abandoned_cart"
PERCENT_OFF = 15
SUBJECT = '{{ recipient.first_name or "Hi" }}, your cart is waiting, with 15% off'
# an A/B test with a control group (docs/experiments.md): the workspace's own 15% off and
# subject against the bundled 10% with a plainer subject; 10% of eligible carts get nothing
EXPERIMENT = {
    "variants": [
        {"name": "fifteen_off", "weight": 1},
        {
            "name": "ten_off",
            "weight": 1,
            "subject": '{{ recipient.first_name or "Hi" }}, you left something behind',
            "incentive": {"kind": "percent_off", "value": 10},
        },
    ],
    "holdout": "10%",
}


@dataclass(frozen=True)
class OwnCampaign:
    name: str
    campaign_version: int
    template_version: int
    percent_off: int
    subject: str


async def ensure_demo_campaign(workspace_id: str, settings: CommonSettings) -> OwnCampaign | None:
    """The demo workspace's own abandoned_cart (campaign and template); None when the stack is away."""
    campaign = {
        **bundled_campaigns()[CAMPAIGN],
        # a code per recipient, stored and redeemable for a week (the demo's buyers redeem theirs)
        "incentive": {
            "kind": "percent_off",
            "value": PERCENT_OFF,
            "coupon": {"mode": "unique", "expires_after": "7d"},
        },
        "description": f"The demo shop's own cart reminder: {PERCENT_OFF}% off (the bundled one gives 10%).",
        **EXPERIMENT,
    }
    template = {**bundled_templates()[CAMPAIGN], "subject": SUBJECT}
    async with config_service(settings) as service:
        if service is None:
            return None
        applied = await service.apply(workspace_id, "campaign", CAMPAIGN, campaign, author="demo")
        styled = await service.apply(workspace_id, "template", CAMPAIGN, template, author="demo")
    return OwnCampaign(CAMPAIGN, applied.version, styled.version, PERCENT_OFF, SUBJECT)
