"""Experiments where they meet the other fire-time features: the propensity condition, the
send-time hold and the conditions that refuse a firing. A firing refused for any reason is
no assignment (nothing counted, no arm recorded, its orders count for no arm), and a scorer
is asked only about a firing the other conditions let through."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from retarget.config.experiment_schema import Variant
from retarget.segmenter.campaigns import CampaignSet
from retarget.segmenter.firing import fire_due
from retarget.segmenter.propensity.serving import Score
from retarget.segmenter.state import Profile
from tests.unit.segmenter.test_propensity_model import T0, campaign, due_profile

EXPERIMENT = replace(
    campaign(0.6),
    variants=(Variant(name="a", weight=1), Variant(name="b", weight=1)),
    holdout=0.5,
)


def kinds(fired) -> list[tuple[str, str]]:
    return [(o.kind, o.reason) for o in fired.outcomes]


def test_a_firing_the_propensity_condition_refuses_is_not_assigned():
    # assigned there, a likely buyer would hold an arm (and count its orders for it) without
    # ever being counted as assigned: conversions above assignments in that arm
    profile = due_profile()
    fired = fire_due(profile, CampaignSet.of([EXPERIMENT]), T0, propensity=lambda p, at: Score(0.9, 1))
    assert not fired.triggers
    assert ("cancelled", "propensity at or above threshold") in kinds(fired)
    assert "assigned" not in [k for k, _ in kinds(fired)]
    assert profile.assignments == {}
    assert "abandoned_cart" not in profile.last_fired  # no cooldown either: it did not fire


def test_a_firing_refused_before_scoring_is_never_scored():
    def scorer(p: Profile, at: datetime) -> Score:
        raise AssertionError("scored a firing that had already been refused")

    profile = due_profile()
    profile.email = None  # no address: refused by the recipient's conditions first
    fired = fire_due(profile, CampaignSet.of([EXPERIMENT]), T0, propensity=scorer)
    assert ("cancelled", "no email") in kinds(fired)
    assert "propensity" not in [k for k, _ in kinds(fired)] and profile.assignments == {}


def test_an_unlikely_buyer_is_assigned_once_at_the_chosen_send_time():
    # the hold comes before any condition or assignment: one assignment, at the time it fires
    held = replace(EXPERIMENT, max_delay=timedelta(hours=24))
    profile = due_profile()
    profile.engaged_hours = [0] * 24
    profile.engaged_hours[(T0 + timedelta(hours=5)).hour] = 10  # they read mail five hours later
    campaigns = CampaignSet.of([held])
    first = fire_due(profile, campaigns, T0, propensity=lambda p, at: Score(0.1, 1))
    assert [k for k, _ in kinds(first)] == ["held"] and profile.assignments == {}
    chosen = profile.pending["abandoned_cart"].due_at
    assert chosen == T0 + timedelta(hours=5)
    scored_at: list[datetime] = []

    def scorer(p: Profile, at: datetime) -> Score:
        scored_at.append(at)
        return Score(0.1, 1)

    second = fire_due(profile, campaigns, chosen, propensity=scorer)
    assert scored_at == [chosen]  # as of the send time, what the profile knew then
    assert [k for k, _ in kinds(second)].count("assigned") == 1
    assert profile.assignments["abandoned_cart"].at == chosen
    assert len(second.triggers) == (profile.assignments["abandoned_cart"].arm != "holdout")
    again = fire_due(profile, campaigns, chosen + timedelta(hours=1), propensity=scorer)
    assert not again.triggers and not again.outcomes  # never fired twice


def test_a_wait_whose_best_time_is_its_end_is_not_reported_held():
    held = replace(EXPERIMENT, max_delay=timedelta(hours=24))
    profile = due_profile()
    profile.engaged_hours = [0] * 24
    profile.engaged_hours[T0.hour] = 10  # their hour is now
    fired = fire_due(profile, CampaignSet.of([held]), T0, propensity=lambda p, at: Score(0.1, 1))
    assert "held" not in [k for k, _ in kinds(fired)]
    assert [k for k, _ in kinds(fired)].count("assigned") == 1


def test_a_recorded_arm_the_campaign_no_longer_has_is_drawn_again():
    # a variant removed (or the holdout set to 0%) while profiles hold it: their next firing
    # is assigned one of the campaign's current arms, never the removed one
    from retarget.segmenter import experiments
    from retarget.segmenter.state import Assignment

    for gone in ("removed_variant", "holdout"):
        profile = due_profile()
        profile.assignments = {"abandoned_cart": Assignment(arm=gone, at=T0 - timedelta(days=30))}
        now_plain = replace(EXPERIMENT, holdout=0.0)
        fired = fire_due(profile, CampaignSet.of([now_plain]), T0, propensity=lambda p, at: Score(0.1, 1))
        arm = profile.assignments["abandoned_cart"].arm
        assert arm in experiments.arms(now_plain) and arm != gone
        assert [t.arm for t in fired.triggers] == [arm]


def test_the_workspace_global_holdout_wins_over_a_recorded_arm():
    # a profile assigned a treated arm before the workspace set its global holdout gets no
    # mail from then on: the global group is drawn first, whatever the profile recorded
    from retarget.segmenter import experiments
    from retarget.segmenter.state import Assignment

    share = 0.5
    profile_id = next(f"p{i}" for i in range(100) if experiments.in_global_holdout("ws", f"p{i}", share))
    profile = due_profile()
    profile.profile_id = profile_id
    profile.assignments = {"abandoned_cart": Assignment(arm="a", at=T0 - timedelta(days=30))}
    campaigns = replace(CampaignSet.of([EXPERIMENT]), global_holdout=share)
    fired = fire_due(profile, campaigns, T0, propensity=lambda p, at: Score(0.1, 1))
    assert not fired.triggers
    assert profile.assignments["abandoned_cart"].arm == "global_holdout"


def test_an_order_stamped_before_the_assignment_counts_for_no_arm():
    # a late-arriving (or replayed) order placed before the firing did not follow it
    from retarget.common.schemas import TrackedEvent
    from retarget.segmenter import experiments
    from retarget.segmenter.state import Assignment

    profile = due_profile()
    profile.assignments = {"abandoned_cart": Assignment(arm="a", at=T0)}

    def order(at: datetime, order_id: str) -> TrackedEvent:
        return TrackedEvent(
            workspace_id="ws", type="track", message_id=order_id, timestamp=at, received_at=T0,
            anonymous_id="p", event="Order Completed", properties={"order_id": order_id, "revenue": 5},
        )  # fmt: skip

    assert (
        experiments.record_order(profile, order(T0 - timedelta(minutes=1), "early"), timedelta(days=5)) == []
    )
    counted = experiments.record_order(profile, order(T0 + timedelta(minutes=1), "late"), timedelta(days=5))
    assert [(o.arm, o.converted) for o in counted] == [("a", True)]


def test_the_global_draw_is_independent_of_every_campaigns_draw():
    # keyed like a campaign, the global group would be exactly that campaign's holdout (and its
    # first variant), and the global and campaign control groups would not be comparable
    from retarget.segmenter import experiments

    ids = [f"p{i}" for i in range(4000)]
    globally = {p for p in ids if experiments.in_global_holdout("ws", p, 0.2)}
    for name in ("abandoned_cart", "browse_abandonment", ""):
        low_draw = {p for p in ids if experiments.unit_draw("ws", name, p) < 0.2}
        overlap = len(globally & low_draw) / len(globally)
        assert 0.1 < overlap < 0.3, (name, overlap)  # about 20% when independent


def test_quiet_hours_that_start_where_they_end_are_no_quiet_hours():
    from datetime import time

    from retarget.segmenter.send_time import SendWindow, in_quiet_hours

    window = SendWindow("UTC", time(9), time(9))
    assert not any(in_quiet_hours(time(h, 30), window) for h in range(24))


def test_the_profiles_own_time_zone_wins_over_the_workspaces_in_the_hold():
    from zoneinfo import ZoneInfo

    from retarget.segmenter.send_time import SendWindow

    held = replace(EXPERIMENT, max_delay=timedelta(hours=24))
    profile = due_profile()
    profile.timezone = "Asia/Tokyo"
    profile.engaged_hours = [0] * 24
    profile.engaged_hours[20] = 10  # 20:00 in Tokyo
    fire_due(
        profile,
        CampaignSet.of([held]),
        T0,
        window=SendWindow("America/New_York"),
        propensity=lambda p, at: Score(0.1, 1),
    )
    chosen = profile.pending["abandoned_cart"].due_at
    assert chosen.astimezone(ZoneInfo("Asia/Tokyo")).hour == 20 and chosen.minute == 0


def test_a_held_wait_follows_an_edit_that_shortens_or_ends_the_hold():
    # a campaign edited from `send_time: optimal, max_delay: 7d` to a 1h bound (or to sending
    # at once) while a reminder is held days ahead: the held reminder keeps to the new bound
    from retarget.segmenter.live_changes import follow_current_versions

    held = replace(EXPERIMENT, max_delay=timedelta(days=7))
    profile = due_profile()
    profile.engaged_hours = [0] * 24
    profile.engaged_hours[(T0 + timedelta(hours=5)).hour] = 10
    fire_due(profile, CampaignSet.of([held]), T0, propensity=lambda p, at: Score(0.1, 1))
    assert profile.pending["abandoned_cart"].due_at == T0 + timedelta(hours=5)
    wait_end = profile.pending["abandoned_cart"].entry_at + held.wait
    edited_at = T0 + timedelta(minutes=10)
    for max_delay in (timedelta(hours=1), None):
        edited = replace(held, max_delay=max_delay, changed_at=edited_at)
        follow_current_versions(profile, CampaignSet.of([edited]))
        bound = wait_end + (max_delay or timedelta(0))
        assert profile.pending["abandoned_cart"].due_at <= max(bound, edited_at)
    due = profile.pending["abandoned_cart"].due_at
    fired = fire_due(profile, CampaignSet.of([edited]), due, propensity=lambda p, at: Score(0.1, 1))
    assert [k for k, _ in kinds(fired)].count("assigned") == 1 and not profile.pending
