"""The propensity features: counted on the profile, taken as of a cut-off, nothing from after it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from retarget.segmenter import rules
from retarget.segmenter.campaigns import CampaignSet
from retarget.segmenter.consent import stop_profiling
from retarget.segmenter.merging import merge_into
from retarget.segmenter.propensity.activity import merge_activity, note_activity
from retarget.segmenter.propensity.dataset import build_examples, training_cutoffs
from retarget.segmenter.propensity.features import FEATURES, RECENCY_CAP_H, features
from retarget.segmenter.state import Profile
from retarget.segmenter.testing import _event, from_links, track

T0 = datetime(2026, 3, 10, 12, tzinfo=UTC)
NONE = CampaignSet.of([])


def feature(profile: Profile, name: str, as_of: datetime) -> float:
    return dict(zip(FEATURES, features(profile, as_of), strict=True))[name]


def page(at: datetime, mid: str, anonymous_id: str = "anon-1"):
    return _event("page", at, mid, anonymous_id, None, "ws", name="Home")


def test_sessions_split_on_a_half_hour_gap_and_views_count():
    p = Profile(workspace_id="ws", profile_id="anon-1")
    for i, minutes in enumerate([0, 10, 25, 80, 85]):
        note_activity(p, page(T0 + timedelta(minutes=minutes), f"p{i}"))
    note_activity(p, track("Product Viewed", T0 + timedelta(minutes=86), mid="v", product_id="x"))
    day = p.activity.days[-1]  # type: ignore[union-attr]
    assert (day.events, day.sessions, day.views) == (6, 2, 1)


def test_machine_opens_and_clicks_are_not_engagement():
    p = Profile(workspace_id="ws", profile_id="anon-1")
    note_activity(p, from_links(track("Email Opened", T0, mid="o1", campaign="c", machine_open=True)))
    note_activity(p, from_links(track("Email Link Clicked", T0, mid="c1", campaign="c", machine_click=True)))
    note_activity(p, from_links(track("Email Opened", T0, mid="o2", campaign="c")))
    note_activity(p, track("Email Opened", T0, mid="o3", campaign="c"))  # a client's: not ours
    assert (p.activity.days[-1].opens, p.activity.days[-1].clicks) == (1, 0)  # type: ignore[union-attr]


def test_windows_count_only_days_up_to_the_cut_off():
    p = Profile(workspace_id="ws", profile_id="anon-1")
    note_activity(p, page(T0 - timedelta(days=10), "old"))
    note_activity(p, page(T0 - timedelta(days=2), "recent"))
    note_activity(p, page(T0 + timedelta(days=1), "after the cut-off"))  # on the profile, after as_of
    assert round(feature(p, "events_7d", T0), 6) == round(feature_log(1), 6)
    assert round(feature(p, "events_30d", T0), 6) == round(feature_log(2), 6)
    assert feature(p, "recency_h", T0) == 0.0  # a later last event is not "negative hours ago"
    assert feature(p, "recency_h", T0 + timedelta(days=400)) == RECENCY_CAP_H


def feature_log(n: int) -> float:
    import math

    return math.log1p(n)


def test_the_cart_counts_only_lines_added_by_the_cut_off():
    p = Profile(workspace_id="ws", profile_id="anon-1")
    rules.apply_event(
        p, track("Product Added", T0 - timedelta(hours=1), mid="a", product_id="x", price=100), NONE
    )
    rules.apply_event(
        p, track("Product Added", T0 + timedelta(hours=1), mid="b", product_id="y", price=50), NONE
    )
    assert round(feature(p, "cart_value", T0), 6) == round(feature_log(100), 6)


def history(with_future: bool) -> list:
    events = [
        page(T0 - timedelta(days=3), "b1", "buyer"),
        page(T0 - timedelta(days=1), "b2", "buyer"),
        track("Order Completed", T0 + timedelta(days=2), mid="b3", anonymous_id="buyer", revenue=30),
        page(T0 - timedelta(days=5), "q1", "quiet"),
    ]
    if with_future:  # a burst of activity after the cut-off: it must not reach the features
        events += [page(T0 + timedelta(hours=h), f"f{h}", "quiet") for h in range(1, 30)]
        events += [
            track("Product Viewed", T0 + timedelta(hours=2), mid="fv", anonymous_id="buyer", product_id="x")
        ]
    return events


def test_no_event_after_the_cut_off_leaks_into_its_features():
    without = build_examples(history(False), [T0], timedelta(days=7))
    with_future = build_examples(history(True), [T0], timedelta(days=7))
    assert {(e.profile_id, tuple(e.features)) for e in with_future} == {
        (e.profile_id, tuple(e.features)) for e in without
    }


def test_the_label_is_a_purchase_within_the_horizon_after_the_cut_off():
    labels = {e.profile_id: e.label for e in build_examples(history(False), [T0], timedelta(days=7))}
    assert labels == {"buyer": 1, "quiet": 0}
    short = {e.profile_id: e.label for e in build_examples(history(False), [T0], timedelta(days=1))}
    assert short == {"buyer": 0, "quiet": 0}
    # the same order is a feature, not a label, for a cut-off after it
    later = build_examples(history(False), [T0 + timedelta(days=3)], timedelta(days=7))
    assert {e.profile_id: e.label for e in later}["buyer"] == 0


def test_a_visitors_anonymous_and_known_ids_are_one_example():
    events = [
        page(T0 - timedelta(days=2), "a1", "anon-9"),
        _event(
            "identify",
            T0 - timedelta(days=1),
            "a2",
            "anon-9",
            "user-9",
            "ws",
            traits={"email": "a@b.example"},
        ),
        track("Order Completed", T0 + timedelta(days=1), mid="a3", anonymous_id=None, user_id="user-9"),
    ]
    examples = build_examples(events, [T0], timedelta(days=7))
    assert [(e.label, round(e.features[FEATURES.index("events_7d")], 6)) for e in examples] == [
        (1, round(feature_log(1), 6))  # the identify is no event of the visitor's behaviour
    ]


def test_training_cut_offs_end_a_horizon_before_until():
    cutoffs = training_cutoffs(T0, timedelta(days=7), timedelta(days=1), 3)
    assert max(cutoffs) == T0 - timedelta(days=7) and len(cutoffs) == 3


def test_a_campaigns_own_emitted_event_is_not_the_visitors_activity():
    p = Profile(workspace_id="ws", profile_id="anon-1")
    rules.apply_event(p, track("Cart Abandoned", T0, mid="x"), NONE, count_activity=False)
    assert p.activity is None


def test_an_objection_forgets_the_activity():
    p = Profile(workspace_id="ws", profile_id="anon-1")
    note_activity(p, page(T0, "p"))
    stop_profiling(p)
    assert p.activity is None


def test_a_merge_adds_the_anonymous_counts_once():
    known = Profile(workspace_id="ws", profile_id="user-1")
    anon = Profile(workspace_id="ws", profile_id="anon-1")
    note_activity(known, page(T0, "k"))
    note_activity(anon, page(T0 - timedelta(hours=2), "a"))
    merge_into(known, anon, NONE, window=64)
    merge_activity(known, anon)  # a replayed merge record: the source is among the aliases now
    day = known.activity.days[-1]  # type: ignore[union-attr]
    assert (day.events, day.sessions) == (2, 2)


def test_history_keeps_only_the_workspaces_own_events():
    from retarget.common.schemas import encode
    from retarget.segmenter.propensity.history import keep_record

    mine = encode(page(T0, "m"))
    theirs = encode(_event("page", T0, "t", "anon-1", None, "ws2", name="Home"))
    assert keep_record("ws", b"ws:anon-1", mine) is not None
    assert keep_record("ws", b"ws2:anon-1", mine) is None  # another workspace's key
    assert keep_record("ws", b"ws:anon-1", theirs) is None  # our key, another workspace's event
    assert keep_record("ws", b"ws:anon-1", b"not json") is None  # dead-lettered by the segmenter too
    assert keep_record("w", b"ws:anon-1", mine) is None  # a prefix of another workspace's id
