"""Folding an anonymous profile into the known one it turned out to be — pure and idempotent.

The merge record may arrive before or after events the known profile got directly (a
server-side `Order Completed` keyed by userId, say), so every decision compares event
times: a wait entered before the known profile's latest exit is dropped, a cart line added
before its last purchase is dropped. Merging the same source twice (a replay) changes
nothing the second time.
"""

from __future__ import annotations

from datetime import datetime

from retarget.segmenter import consent, send_time
from retarget.segmenter.attribution import MAX_ORDERS, MAX_TOUCHES
from retarget.segmenter.campaigns import CampaignSet
from retarget.segmenter.experiments import merge_assignments
from retarget.segmenter.propensity.activity import merge_activity
from retarget.segmenter.rules import MAX_OCCURRENCES, MAX_VIEWED, Outcome
from retarget.segmenter.state import Pending, Profile
from retarget.segmenter.traits import MAX_ALIASES


def merge_into(target: Profile, source: Profile, campaigns: CampaignSet, *, window: int) -> list[Outcome]:
    outcomes: list[Outcome] = []
    _merge_traits(target, source)
    merge_activity(target, source)  # before _merge_lists names the source among the aliases
    _merge_lists(target, source)
    _merge_cart(target, source)
    target.viewed = sorted(
        {v.product_id: v for v in sorted([*target.viewed, *source.viewed], key=lambda v: v.at)}.values(),
        key=lambda v: v.at,
        reverse=True,
    )[:MAX_VIEWED]
    for name, items in source.occurrences.items():
        mine = target.occurrences.get(name, [])
        known = {o.message_id for o in mine}
        both = sorted([*mine, *(o for o in items if o.message_id not in known)], key=lambda o: o.at)
        target.occurrences[name] = both[-MAX_OCCURRENCES:]
    target.last_fired = _latest(target.last_fired, source.last_fired)
    merge_assignments(target, source)
    target.last_exit = _latest(target.last_exit, source.last_exit)
    for name, pending in list(target.pending.items()):
        exit_at = target.last_exit.get(name)
        if exit_at is not None and pending.entry_at <= exit_at:
            del target.pending[name]
            outcomes.append(Outcome("cancelled", name, "exit before merge"))
    for incoming in source.pending.values():
        outcomes.extend(_merge_pending(target, incoming, campaigns))
    ids = [m for m in source.recent_message_ids if m not in set(target.recent_message_ids)]
    target.recent_message_ids = [*ids, *target.recent_message_ids][-window:] if window else []
    if target.consent is False:
        outcomes.extend(consent.stop_profiling(target))  # an objection on either side stops it all
    return outcomes


def _merge_lists(target: Profile, source: Profile) -> None:
    """Ids redirected here, email touches, attributed orders and campaign unsubscribes: unions."""
    aliases = [a for a in [*target.aliases, source.profile_id, *source.aliases] if a != target.profile_id]
    target.aliases = list(dict.fromkeys(aliases))[-MAX_ALIASES:]
    touches = {(t.campaign, t.kind, t.at, t.message_id): t for t in [*target.touches, *source.touches]}
    target.touches = sorted(touches.values(), key=lambda t: t.at)[-MAX_TOUCHES:]
    orders = list(dict.fromkeys([*source.attributed_orders, *target.attributed_orders]))
    target.attributed_orders = orders[-MAX_ORDERS:]
    target.blocked_campaigns = list(dict.fromkeys([*target.blocked_campaigns, *source.blocked_campaigns]))
    target.engaged_hours = send_time.merge_histograms(target.engaged_hours, source.engaged_hours)


def _merge_traits(target: Profile, source: Profile) -> None:
    # the known profile's traits are the newer ones; the anonymous profile only fills gaps
    for attr in ("email", "first_name", "last_name", "locale", "timezone"):
        if getattr(target, attr) is None and getattr(source, attr) is not None:
            setattr(target, attr, getattr(source, attr))
    if source.consent is False:  # a refusal anywhere is a refusal
        target.consent = False
    elif target.consent is None:
        target.consent = source.consent


def _merge_cart(target: Profile, source: Profile) -> None:
    cleared = _max(target.cart_cleared_at, source.cart_cleared_at)
    lines = dict(target.cart)
    for product_id, item in source.cart.items():
        mine = lines.get(product_id)
        if mine is None or item.added_at > mine.added_at:
            lines[product_id] = item
    target.cart = {k: v for k, v in lines.items() if cleared is None or v.added_at > cleared}
    target.cart_cleared_at = cleared


def _merge_pending(target: Profile, incoming: Pending, campaigns: CampaignSet) -> list[Outcome]:
    name = incoming.campaign
    campaign = campaigns.by_name.get(name)
    exit_at = target.last_exit.get(name)
    if campaign is None or (exit_at is not None and incoming.entry_at <= exit_at):
        return [Outcome("cancelled", name, "exit before merge")]
    if name in target.blocked_campaigns:
        return [Outcome("cancelled", name, "unsubscribed from campaign")]
    fired = target.last_fired.get(name)
    if campaign.cooldown and fired is not None and incoming.entry_at - fired < campaign.cooldown:
        return [Outcome("cancelled", name, "cooldown")]
    mine = target.pending.get(name)
    if mine is None:
        target.pending[name] = incoming
        return [Outcome("scheduled", name, "merged")]
    started = min(mine.started_at, incoming.started_at)
    keep_incoming = (
        incoming.entry_at > mine.entry_at if campaign.restart_on_entry else incoming.entry_at < mine.entry_at
    )
    chosen = incoming if keep_incoming else mine
    chosen.started_at = started
    target.pending[name] = chosen
    return []


def _latest(a: dict[str, datetime], b: dict[str, datetime]) -> dict[str, datetime]:
    out = dict(a)
    for k, v in b.items():
        if k not in out or v > out[k]:
            out[k] = v
    return out


def _max(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None or b is None:
        return a or b
    return max(a, b)
