"""Folding one event into a profile, as pure functions: no Kafka, no faust, no clock.

`apply_event` updates traits, consent, cart and viewed products, then lets the event exit
or enter campaigns. Every time compared is the event's own timestamp, so a late or
replayed event can't cancel a newer wait or restart an older one. Firing is in firing.py;
the caller fires the waits due by the event's timestamp before applying it
(`firing.due_before_event`), so an exit or entry here never undoes a wait that was over.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from retarget.common.schemas import CartLine, TrackedEvent
from retarget.segmenter import consent, send_time, snapshots
from retarget.segmenter.attribution import Conversion, Windows, attribute_order, record_touch
from retarget.segmenter.campaigns import Campaign, CampaignSet, matches
from retarget.segmenter.outcomes import Outcome
from retarget.segmenter.propensity.activity import note_activity
from retarget.segmenter.state import CartItem, Occurrence, Pending, Profile, Viewed
from retarget.segmenter.traits import (
    MAX_ALIASES,
    UnusableEvent,
    apply_traits,
    consent_from_traits,
    note_alias,
)

__all__ = [
    "MAX_ALIASES",
    "Applied",
    "Outcome",
    "UnusableEvent",
    "apply_event",
    "apply_traits",
    "consent_from_traits",
]

#: how far after its receipt an event's own time may be: ingest's bound at the door
#: (`check_corrected_time`, one day), enforced again here for records that reached the events
#: topic without passing ingest
MAX_EVENT_AHEAD = timedelta(days=1)
#: the earliest time an event may carry: ingest's lower bound at the door (limits.EARLIEST);
#: before it, the rules' windows (`at - within`) reach past year 1 and overflow
EARLIEST_EVENT = datetime(2000, 1, 1, tzinfo=UTC)
MAX_CART_LINES = 100
MAX_VIEWED = 20
MAX_OCCURRENCES = 200
DEFAULT_WINDOWS = Windows()


@dataclass
class Applied:
    changed: bool = False
    outcomes: list[Outcome] = field(default_factory=list)
    conversions: list[Conversion] = field(default_factory=list)


def event_time_problem(event: TrackedEvent, now: datetime) -> str | None:
    """Why the event's own time can't be decided by, or None.

    Decisions go by event time, so one far-future time would rule a profile for as long: an
    order stamped next year makes every cart add before then "a late add" (the carts voided).
    Ingest refuses such an event with a 400; a record produced to the topic directly is held
    to the same bound here. Its receipt is `received_at`, never later than the worker's clock
    (such a record may claim any `received_at`); for an event that came through ingest that is
    `received_at` itself, so a replay decides the same.
    """
    at, received = event.timestamp, event.received_at
    if at.tzinfo is None or received.tzinfo is None:
        return "timestamp and receivedAt must carry a time zone"
    if at < EARLIEST_EVENT:
        return f"timestamp {at.isoformat()} is before {EARLIEST_EVENT.date().isoformat()}; ingest refuses such events"
    if at > min(received, now) + MAX_EVENT_AHEAD:
        return (
            f"timestamp {at.isoformat()} is more than {MAX_EVENT_AHEAD.total_seconds() / 3600:g} h after the event was received "
            f"({min(received, now).isoformat()}); ingest refuses such events"
        )
    return None


def is_duplicate(profile: Profile, message_id: str) -> bool:
    return message_id in profile.recent_message_ids


def remember(profile: Profile, message_id: str, window: int) -> None:
    if window:
        profile.recent_message_ids = [*profile.recent_message_ids[-(window - 1) :], message_id]


def apply_event(
    profile: Profile,
    event: TrackedEvent,
    campaigns: CampaignSet,
    windows: Windows = DEFAULT_WINDOWS,
    *,
    home_zone: str = "UTC",  # the workspace's time zone: the local hour of an open (send_time.py)
    count_activity: bool = True,  # False for a campaign's own emit_on_due event: not the visitor's
) -> Applied:
    result = Applied()
    consent_before = profile.consent
    result.changed |= note_alias(profile, event)
    if event.type == "identify":
        result.changed |= apply_traits(profile, event.traits)
    elif event.type == "track":
        context_traits = event.context.get("traits") if isinstance(event.context, dict) else None
        result.changed |= apply_traits(profile, context_traits or {})
    said = consent.consent_from_context(event.context) if isinstance(event.context, dict) else None
    if said is not None and said != profile.consent:
        profile.consent, result.changed = said, True
    if event.type == "track" and event.event == "Unsubscribed":
        changed, outcomes = consent.apply_unsubscribe(profile, event)
        result.changed |= changed
        result.outcomes.extend(outcomes)
    if consent_before is not False and profile.consent is False:
        result.outcomes.extend(consent.stop_profiling(profile))
    if count_activity and consent.may_profile(profile):
        result.changed |= note_activity(profile, event)
    if event.type == "track":
        if consent.may_profile(profile):
            result.changed |= _apply_behaviour(profile, event)
            if record_touch(profile, event):  # a human open or click, counted once
                result.changed = True
                zone = send_time.zone(profile.timezone, home_zone)
                profile.engaged_hours = send_time.note_engagement(
                    profile.engaged_hours, event.timestamp, zone
                )
        elif event.event == "Order Completed":
            result.changed |= _apply_behaviour(profile, event)  # clears the cart; records nothing
        _apply_campaigns(profile, event, campaigns, result)
        conversion = attribute_order(profile, event, windows)
        if conversion is not None:
            result.changed = True
            result.conversions.append(conversion)
    return result


def _apply_behaviour(profile: Profile, event: TrackedEvent) -> bool:
    props = event.properties
    name = event.event
    if name == "Product Added":
        line = cart_line(props)
        if profile.cart_cleared_at and event.timestamp <= profile.cart_cleared_at:
            return False  # a late add from before the last purchase
        existing = profile.cart.get(line.product_id)
        if existing is not None:
            line.quantity += existing.line.quantity
        profile.cart[line.product_id] = CartItem(line=line, added_at=event.timestamp)
        if len(profile.cart) > MAX_CART_LINES:
            oldest = min(profile.cart, key=lambda k: profile.cart[k].added_at)
            del profile.cart[oldest]
        return True
    if name == "Product Removed":
        return profile.cart.pop(str(props.get("product_id", props.get("sku", ""))), None) is not None
    if name == "Order Completed":
        profile.cart = {k: v for k, v in profile.cart.items() if v.added_at > event.timestamp}
        if profile.cart_cleared_at is None or event.timestamp > profile.cart_cleared_at:
            profile.cart_cleared_at = event.timestamp
        return True
    if name == "Product Viewed":
        add_viewed(profile, viewed_product(props, event))
        return True
    return False


def cart_line(props: dict[str, Any]) -> CartLine:
    try:
        return CartLine(
            product_id=str(props.get("product_id") or props["sku"]),
            name=str(props.get("name") or props.get("product_id") or props["sku"]),
            price=float(props.get("price", 0)),
            quantity=int(props.get("quantity", 1)),
            currency=str(props.get("currency") or "USD"),
            url=_str_or_none(props.get("url")),
            image_url=_str_or_none(props.get("image_url")),
            sku=_str_or_none(props.get("sku")),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise UnusableEvent(f"Product Added needs product_id and a numeric price/quantity ({exc!r})") from exc


def viewed_product(props: dict[str, Any], event: TrackedEvent) -> Viewed:
    product_id = props.get("product_id") or props.get("sku")
    if not isinstance(product_id, str | int) or isinstance(product_id, bool):
        raise UnusableEvent("Product Viewed needs product_id (or sku)")
    return Viewed(
        product_id=str(product_id),
        at=event.timestamp,
        name=_str_or_none(props.get("name")),
        price=snapshots.number_or_none(props.get("price")),
        currency=_str_or_none(props.get("currency")),
        url=_str_or_none(props.get("url")),
        image_url=_str_or_none(props.get("image_url")),
    )


def add_viewed(profile: Profile, viewed: Viewed) -> None:
    others = [v for v in profile.viewed if v.product_id != viewed.product_id]
    profile.viewed = sorted([viewed, *others], key=lambda v: v.at, reverse=True)[:MAX_VIEWED]


def _apply_campaigns(profile: Profile, event: TrackedEvent, campaigns: CampaignSet, result: Applied) -> None:
    name = event.event or ""
    for campaign in campaigns.by_exit.get(name, ()):
        if any(e.event == name and matches(e, event.properties) for e in campaign.exits):
            result.changed = True
            _exit(profile, campaign, event, result)
    if not consent.may_profile(profile):
        return  # an objection: no new waits, no window counts
    for campaign in campaigns.by_entry.get(name, ()):
        if campaign.name in profile.blocked_campaigns:
            continue
        if matches(campaign.entry, event.properties):
            result.changed |= _enter(profile, campaign, event, result)


def _exit(profile: Profile, campaign: Campaign, event: TrackedEvent, result: Applied) -> None:
    last = profile.last_exit.get(campaign.name)
    if last is None or event.timestamp > last:
        profile.last_exit[campaign.name] = event.timestamp
    pending = profile.pending.get(campaign.name)
    # ties go to the exit: a cart add and the order stamped the same instant are one purchase.
    # A wait due by this exit's time never gets here: it fired first (processor, firing.py)
    if pending is not None and pending.entry_at <= event.timestamp:
        del profile.pending[campaign.name]
        result.outcomes.append(Outcome("cancelled", campaign.name, f"exit: {event.event}"))


def _enter(profile: Profile, campaign: Campaign, event: TrackedEvent, result: Applied) -> bool:
    at = event.timestamp
    last_exit = profile.last_exit.get(campaign.name)
    if last_exit is not None and last_exit >= at:
        return False  # a late entry from before the visitor left the campaign
    changed = False
    if campaign.count is not None:
        changed = True
        if not _counted_enough(profile, campaign, event):
            return changed
    last_fired = profile.last_fired.get(campaign.name)
    if campaign.cooldown and last_fired is not None and at - last_fired < campaign.cooldown:
        result.outcomes.append(Outcome("cancelled", campaign.name, "cooldown"))
        return changed
    pending = profile.pending.get(campaign.name)
    if pending is not None:
        if not campaign.restart_on_entry or at <= pending.entry_at:
            return changed
        pending.due_at = at + campaign.wait
        pending.entry_message_id = event.message_id
        pending.entry_at = at
        pending.snapshot = snapshots.at_entry(campaign, event)
        result.outcomes.append(Outcome("restarted", campaign.name))
        return True
    profile.pending[campaign.name] = Pending(
        campaign=campaign.name,
        due_at=at + campaign.wait,  # from the event's own time: a late event is not delayed twice
        entry_message_id=event.message_id,
        entry_at=at,
        started_at=at,
        snapshot=snapshots.at_entry(campaign, event),
    )
    result.outcomes.append(Outcome("scheduled", campaign.name))
    return True


def _counted_enough(profile: Profile, campaign: Campaign, event: TrackedEvent) -> bool:
    count = campaign.count
    assert count is not None
    group = ""
    if count.same:
        value = event.properties.get(count.same)
        if value is None:
            return False
        group = str(value)
    seen = profile.occurrences.setdefault(campaign.name, [])
    if all(o.message_id != event.message_id for o in seen):
        seen.append(Occurrence(event.timestamp, event.message_id, group))
    newest = max(o.at for o in seen)
    kept = sorted((o for o in seen if o.at > newest - count.within), key=lambda o: o.at)
    profile.occurrences[campaign.name] = kept[-MAX_OCCURRENCES:]
    start = event.timestamp - count.within
    hits = sum(1 for o in kept if o.group == group and start < o.at <= event.timestamp)
    return hits >= count.at_least


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
