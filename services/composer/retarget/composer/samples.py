"""A sample workspace and one sample trigger per shipped campaign.

`retarget preview` renders them when no profile is given (no Kafka or PostgreSQL needed),
the benchmark renders them, and tests use them: they follow the data shapes the segmenter
emits (schemas.TriggerFired), so they are also the contract's worked examples.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec

from retarget.common.identity import trigger_id
from retarget.common.schemas import CartLine, Recipient, TriggerFired
from retarget.common.workspaces import Workspace

SAMPLE_WORKSPACE = Workspace(
    id="sample",
    name="Boot Shop",
    from_name="Boot Shop",
    from_email="news@boots.example",
    reply_to="help@boots.example",
    postal_address="1 Main St, Springfield",
)
_AT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
_BOOT = {
    "product_id": "boot-1",
    "name": "Trail Boot",
    "price": 89.5,
    "currency": "EUR",
    "url": "https://boots.example/p/trail-boot",
    "image_url": "https://boots.example/img/trail-boot.jpg",
}
_SOCKS = {"product_id": "sock-2", "name": "Wool Socks", "price": 12.0, "currency": "EUR", "image_url": None}

SAMPLE_DATA: dict[str, dict[str, Any]] = {
    "abandoned_cart": {
        "cart": [{**_BOOT, "quantity": 1}, {**_SOCKS, "quantity": 2}],
        "incentive": {"kind": "percent_off", "value": 10},
    },
    "browse_abandonment": {"data": {"products": [_BOOT, {**_SOCKS, "url": None}]}},
    "trial_not_converted": {
        "data": {"trial": {"plan": "Pro", "started_at": "2026-02-15T09:30:00Z"}},
        "incentive": {"kind": "percent_off", "value": 20},
    },
    "post_purchase": {
        "data": {
            "order": {"order_id": "o-1001", "revenue": 113.5, "currency": "EUR", "products": [_BOOT, _SOCKS]}
        },
        "incentive": {"kind": "percent_off", "value": 15},
    },
    "repeat_abandoner_survey": {"data": {"survey_url": "https://boots.example/survey?src=email"}},
}
CAMPAIGNS = tuple(SAMPLE_DATA)


def _camel(fields: dict[str, Any]) -> dict[str, Any]:
    """snake_case keys to the camelCase the schemas use on the wire (camelCase kept as is)."""
    return {k.split("_")[0] + "".join(p.title() for p in k.split("_")[1:]): v for k, v in fields.items()}


def sample_trigger(campaign: str, profile: dict[str, Any] | None = None) -> TriggerFired:
    """A trigger for `campaign`: the built-in sample, with `profile`'s keys on top.

    `profile` is what `retarget preview --profile FILE` reads: any of recipient, cart,
    incentive and data (TriggerFired's fields, camelCase or snake_case).
    """
    merged: dict[str, Any] = {
        "recipient": {"email": "ann@example.com", "first_name": "Ann", "last_name": "Lee", "locale": "en"},
        **SAMPLE_DATA.get(campaign, {}),
        **(profile or {}),
    }
    recipient = msgspec.convert(_camel(merged.pop("recipient")), Recipient)
    cart = msgspec.convert([_camel(line) for line in merged.pop("cart", [])], list[CartLine])
    entry = f"sample-{campaign}"
    return TriggerFired(
        trigger_id=trigger_id(SAMPLE_WORKSPACE.id, campaign, "sample-profile", entry),
        workspace_id=SAMPLE_WORKSPACE.id,
        profile_id="sample-profile",
        campaign=campaign,
        template=merged.pop("template", campaign),
        reason="preview",
        entry_message_id=entry,
        due_at=_AT,
        fired_at=_AT,
        recipient=recipient,
        cart=cart,
        incentive=merged.pop("incentive", {}),
        data=merged.pop("data", {}),
    )
