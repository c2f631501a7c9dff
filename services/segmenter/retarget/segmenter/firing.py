"""Turning a profile's due waits into triggers, re-checking each campaign's conditions at fire time.

Pure: the wall-clock `now` and the workspace's consent mode are passed in. Two callers: the
timer (everything due by `now`) and an event about to change the profile (everything due by
the event's own timestamp, `due_before_event`), so a wait that was over before the event
happened fires first whichever of the two gets there first. An opt-in
workspace fires only for profiles with recorded consent (the sender checks again at send
time); an objection, or an unsubscribe from the campaign, never fires. A due wait is
removed whether it fires or not;
`emit_on_due` records a synthetic event (e.g. `Cart Abandoned`) when the visitor's
behaviour qualified, even if we may not email them, so other campaigns can count it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from retarget.common.identity import trigger_id
from retarget.common.schemas import Recipient, TrackedEvent, TriggerFired
from retarget.common.workspaces import ConsentMode
from retarget.config.experiment_schema import GLOBAL_HOLDOUT_ARM, HOLDOUT_ARM
from retarget.segmenter import experiments, send_time, snapshots
from retarget.segmenter.campaigns import Campaign, CampaignSet
from retarget.segmenter.outcomes import Outcome
from retarget.segmenter.propensity.serving import Score, Scorer
from retarget.segmenter.rules import apply_event
from retarget.segmenter.send_time import SendWindow
from retarget.segmenter.state import Pending, Profile
from retarget.segmenter.traits import UnusableEvent

log = logging.getLogger(__name__)


@dataclass
class Fired:
    triggers: list[TriggerFired] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)


def next_due(profile: Profile) -> datetime | None:
    return min((p.due_at for p in profile.pending.values()), default=None)


def due_before_event(profile: Profile, event: TrackedEvent, now: Callable[[], datetime]) -> datetime | None:
    """The cut-off for the waits an event must let fire before it changes the profile, or None.

    Decisions go by event time: a wait due at or before the event's own timestamp was over
    before the event happened, so it fires (re-checked against what the profile knew) whether
    the timer got there first or the event did — an idle worker, one behind a backlog and one
    restarting decide alike. Never later than `now()`: an event stamped in the future (a skewed
    client clock) must not fire a wait early. On every event of the hot path, so one plain pass
    over the profile's pending waits, and the clock is read only when one is due.
    """
    at = event.timestamp
    for pending in profile.pending.values():
        if pending.due_at <= at:
            cutoff = min(at, now())
            due = next_due(profile)
            return cutoff if due is not None and due <= cutoff else None
    return None


def fire_due(
    profile: Profile,
    campaigns: CampaignSet,
    now: datetime,
    consent_mode: ConsentMode = "opt_out",
    *,
    until: datetime | None = None,
    window: SendWindow = SendWindow(),
    propensity: Scorer = lambda profile, at: None,
) -> Fired:
    """Triggers for every pending campaign due at or before `until` (default `now`, the timer's
    case); due entries are removed either way, but for a wait held for the person's best hour
    (`hold_for_send_time`). `now` is only the firing's wall-clock time; `propensity` scores a
    profile for campaigns whose condition needs it (None: no model)."""
    result = Fired()
    cutoff = now if until is None else until
    for _ in range(4):  # an emitted event or a held wait may leave more due at once (bounded)
        due = sorted((p for p in profile.pending.values() if p.due_at <= cutoff), key=lambda p: p.due_at)
        if not due:
            break
        for pending in due:
            campaign = campaigns.by_name.get(pending.campaign)
            if campaign is not None and hold_for_send_time(profile, campaign, pending, window):
                result.outcomes.append(Outcome("held", campaign.name))
                continue
            del profile.pending[pending.campaign]
            if campaign is None:
                result.outcomes.append(Outcome("cancelled", pending.campaign, "campaign removed"))
                continue
            _fire_one(profile, campaign, pending, now, campaigns, result, consent_mode, propensity)
    return result


def hold_for_send_time(profile: Profile, campaign: Campaign, pending: Pending, window: SendWindow) -> bool:
    """A `send_time: optimal` wait that is over gets its send time once (send_time.py): its
    due time moves there and the wait stays pending, so the due table holds the chosen time,
    an exit event until then still cancels it, and a replay or restart chooses the same time
    (it depends on the wait's end and the profile, never on when the timer got there). True
    when the wait is held for later."""
    if campaign.max_delay is None or pending.send_time_chosen:
        return False
    tz = send_time.zone(profile.timezone, window.timezone)
    at = send_time.choose_send_time(profile.engaged_hours, pending.due_at, campaign.max_delay, tz, window)
    pending.send_time_chosen = True
    if at <= pending.due_at:
        return False
    pending.due_at = at
    return True


def _fire_one(
    profile: Profile,
    campaign: Campaign,
    pending: Pending,
    now: datetime,
    campaigns: CampaignSet,
    result: Fired,
    consent_mode: ConsentMode,
    propensity: Scorer,
) -> None:
    behaviour = behaviour_refusal(profile, campaign)
    if behaviour is None and campaign.emit_on_due:
        synthetic = TrackedEvent(
            workspace_id=profile.workspace_id,
            type="track",
            message_id=f"{campaign.name}:{pending.entry_message_id}",
            timestamp=pending.due_at,
            received_at=now,
            event=campaign.emit_on_due,
        )
        try:
            result.outcomes.extend(apply_event(profile, synthetic, campaigns, count_activity=False).outcomes)
        except UnusableEvent as exc:  # a workspace's emit_on_due naming an event that needs properties
            log.warning(
                "skipped an unusable emit_on_due event",
                extra={"campaign": campaign.name, "event": campaign.emit_on_due, "reason": str(exc)},
            )
    refusal = behaviour or recipient_refusal(profile, campaign, pending, consent_mode)
    score = None
    if refusal is None and campaign.conditions.propensity_below is not None:
        # scored only when the condition needs it, as of the due time (what the profile knew then)
        score = propensity(profile, pending.due_at)
        result.outcomes.append(
            Outcome("propensity", campaign.name, "no model" if score is None else "scored")
        )
        refusal = propensity_refusal(campaign, score)
    if refusal is not None:
        result.outcomes.append(Outcome("cancelled", campaign.name, refusal))
        return
    # a held-out firing is a firing in every other respect (cooldown, window aggregates), so
    # the control group is assigned exactly as often as the treated arms
    profile.last_fired[campaign.name] = pending.due_at
    profile.occurrences.pop(campaign.name, None)  # a window aggregate counts afresh after it fired
    arm = experiments.assign(profile, campaign, pending.due_at, campaigns.global_holdout)
    result.outcomes.append(Outcome("assigned", campaign.name, arm))
    if arm in (HOLDOUT_ARM, GLOBAL_HOLDOUT_ARM):
        return  # the control group: recorded and counted, never composed or sent
    result.triggers.append(build_trigger(profile, campaign, pending, now, arm, score))
    result.outcomes.append(Outcome("fired", campaign.name))


def behaviour_refusal(profile: Profile, campaign: Campaign) -> str | None:
    """Whether the visitor still qualifies (the cart), whatever we may send them."""
    cond = campaign.conditions
    if cond.cart_not_empty and not profile.cart:
        return "cart empty"
    if cond.cart_value_at_least is not None:
        value = sum(i.line.price * i.line.quantity for i in profile.cart.values())
        if value < cond.cart_value_at_least:
            return "cart value below minimum"
    return None


def propensity_refusal(campaign: Campaign, score: Score | None) -> str | None:
    """`propensity_below`: a visitor likely to buy anyway gets no incentive email. No model: passes."""
    threshold = campaign.conditions.propensity_below
    if threshold is None or score is None:
        return None
    return "propensity at or above threshold" if score.value >= threshold else None


def recipient_refusal(
    profile: Profile, campaign: Campaign, pending: Pending, consent_mode: ConsentMode = "opt_out"
) -> str | None:
    """Whether we may email the visitor: an address, consent, the re-entry cooldown."""
    cond = campaign.conditions
    if cond.has_email and not profile.email:
        return "no email"
    if profile.consent is False:
        return "consent refused"  # an objection wins over any campaign setting
    if consent_mode == "opt_in" and profile.consent is not True:
        return "no consent (opt-in workspace)"
    if campaign.name in profile.blocked_campaigns:
        return "unsubscribed from campaign"
    if cond.consent == "opt_in" and profile.consent is not True:
        return "no consent"
    if cond.consent == "not_denied" and profile.consent is False:
        return "consent refused"
    last = profile.last_fired.get(campaign.name)
    if campaign.cooldown and last is not None and pending.due_at - last < campaign.cooldown:
        return "cooldown"
    return None


def build_trigger(
    profile: Profile,
    campaign: Campaign,
    pending: Pending,
    now: datetime,
    arm: str = "",
    score: Score | None = None,
) -> TriggerFired:
    cart, data = snapshots.at_fire(profile, campaign, pending)
    if score is not None:  # for the template and for analysis (which model said what)
        data = {**data, "propensity": round(score.value, 4), "propensity_model": score.version}
    chosen = experiments.variant(campaign, arm)
    template = chosen.template if chosen and chosen.template else campaign.template
    incentive = chosen.incentive if chosen and chosen.incentive is not None else campaign.incentive
    return TriggerFired(
        trigger_id=trigger_id(
            profile.workspace_id, campaign.name, profile.profile_id, pending.entry_message_id
        ),
        workspace_id=profile.workspace_id,
        profile_id=profile.profile_id,
        campaign=campaign.name,
        template=template,
        reason=reason(campaign),
        entry_message_id=pending.entry_message_id,
        due_at=pending.due_at,
        fired_at=now,
        recipient=Recipient(
            email=profile.email or "",
            first_name=profile.first_name,
            last_name=profile.last_name,
            locale=profile.locale or "en",
            timezone=profile.timezone,
            consent=profile.consent,
        ),
        cart=cart,
        incentive=dict(incentive),
        data=data,
        arm=arm,
        subject=chosen.subject if chosen else None,
    )


def reason(campaign: Campaign) -> str:
    entry = campaign.entry.event
    if campaign.count is not None:
        entry = f"{entry} {campaign.count.at_least}x within {_span(campaign.count.within)}"
    exits = " / ".join(sorted({e.event for e in campaign.exits}))
    tail = f" and no {exits}" if exits else ""
    return f"{entry}{tail}, waited {_span(campaign.wait)}"


def _span(delta: object) -> str:
    seconds = delta.total_seconds()  # type: ignore[attr-defined]
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"
