"""The segmenter's decisions as pure functions: no Kafka, no faust, the clock passed in.

`apply_event` folds one event into a profile (traits, cart, pending campaigns);
`fire_due` turns the profile's due entries into triggers, re-checking each campaign's
conditions at fire time, because the visitor may have changed since the entry event.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from retarget.common.identity import trigger_id
from retarget.common.schemas import CartLine, Recipient, TrackedEvent, TriggerFired
from retarget.segmenter.campaigns import Campaign
from retarget.segmenter.state import Pending, Profile


class UnusableEvent(ValueError):
    """The event can't be applied (e.g. malformed properties): counted and skipped."""


def is_duplicate(profile: Profile, event: TrackedEvent, window: int) -> bool:
    """Remember the event's messageId; True if it was seen within the last `window` ids."""
    if event.message_id in profile.recent_message_ids:
        return True
    if window:
        profile.recent_message_ids = [*profile.recent_message_ids[-(window - 1) :], event.message_id]
    return False


def apply_event(profile: Profile, event: TrackedEvent, campaigns: list[Campaign]) -> None:
    if event.type == "identify":
        _apply_traits(profile, event.traits)
    elif event.type == "track":
        _apply_traits(profile, event.context.get("traits") or {})
        _apply_cart(profile, event)
        _apply_campaigns(profile, event, campaigns)


def fire_due(profile: Profile, campaigns: list[Campaign], now: datetime) -> list[TriggerFired]:
    """Triggers for every pending campaign due at `now`; due entries are removed either way."""
    by_name = {c.name: c for c in campaigns}
    fired: list[TriggerFired] = []
    for name, pending in list(profile.pending.items()):
        if pending.due_at > now:
            continue
        del profile.pending[name]
        campaign = by_name.get(name)
        if campaign is None or not _conditions_hold(profile, campaign):
            continue
        fired.append(_trigger(profile, campaign, pending, now))
    return fired


def next_due(profile: Profile) -> datetime | None:
    return min((p.due_at for p in profile.pending.values()), default=None)


def _apply_traits(profile: Profile, traits: dict[str, Any]) -> None:
    if not isinstance(traits, dict):
        raise UnusableEvent("traits is not an object")
    profile.traits.update(traits)
    email = traits.get("email")
    if isinstance(email, str) and "@" in email:
        profile.email = email.strip()
    for attr, key in (("first_name", "firstName"), ("last_name", "lastName"), ("timezone", "timezone")):
        value = traits.get(key) or traits.get(attr)
        if isinstance(value, str):
            setattr(profile, attr, value)
    if isinstance(traits.get("locale"), str):
        profile.locale = traits["locale"]


def _apply_cart(profile: Profile, event: TrackedEvent) -> None:
    props = event.properties
    if event.event == "Product Added":
        line = _cart_line(props)
        existing = profile.cart.get(line.product_id)
        if existing is not None:
            line.quantity += existing.quantity
        profile.cart[line.product_id] = line
    elif event.event == "Product Removed":
        profile.cart.pop(str(props.get("product_id", "")), None)
    elif event.event == "Order Completed":
        profile.cart.clear()


def _cart_line(props: dict[str, Any]) -> CartLine:
    try:
        return CartLine(
            product_id=str(props["product_id"]),
            name=str(props.get("name") or props["product_id"]),
            price=float(props.get("price", 0)),
            quantity=int(props.get("quantity", 1)),
            currency=str(props.get("currency", "USD")),
            url=props.get("url"),
            image_url=props.get("image_url"),
            sku=props.get("sku"),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise UnusableEvent(f"Product Added needs product_id and a numeric price/quantity ({exc!r})") from exc


def _apply_campaigns(profile: Profile, event: TrackedEvent, campaigns: list[Campaign]) -> None:
    for campaign in campaigns:
        if event.event in campaign.exit_events:
            profile.pending.pop(campaign.name, None)
        elif event.event == campaign.entry_event:
            if campaign.name in profile.pending and not campaign.restart_on_entry:
                continue
            # waits count from the event's own time, so a late-arriving event is not delayed twice
            profile.pending[campaign.name] = Pending(
                campaign=campaign.name,
                due_at=event.timestamp + campaign.wait,
                entry_message_id=event.message_id,
            )


def _conditions_hold(profile: Profile, campaign: Campaign) -> bool:
    if campaign.require_email and not profile.email:
        return False
    return not (campaign.require_cart and not profile.cart)


def _trigger(profile: Profile, campaign: Campaign, pending: Pending, now: datetime) -> TriggerFired:
    assert profile.email is not None or not campaign.require_email
    return TriggerFired(
        trigger_id=trigger_id(
            profile.workspace_id, campaign.name, profile.profile_id, pending.entry_message_id
        ),
        workspace_id=profile.workspace_id,
        profile_id=profile.profile_id,
        campaign=campaign.name,
        template=campaign.template,
        reason=f"{campaign.entry_event} and no {' / '.join(sorted(campaign.exit_events)) or 'exit'} "
        f"within {campaign.wait}",
        entry_message_id=pending.entry_message_id,
        due_at=pending.due_at,
        fired_at=now,
        recipient=Recipient(
            email=profile.email or "",
            first_name=profile.first_name,
            last_name=profile.last_name,
            locale=profile.locale,
            timezone=profile.timezone,
        ),
        cart=list(profile.cart.values()),
        incentive=dict(campaign.incentive),
    )
