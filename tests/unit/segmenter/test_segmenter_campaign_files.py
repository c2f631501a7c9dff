"""Campaign files: the samples load; a bad file names the file, the field and the reason."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from retarget.segmenter import rules
from retarget.segmenter.campaign_schema import EventMatch, parse_duration
from retarget.segmenter.campaigns import CampaignError, load_campaigns, matches
from retarget.segmenter.firing import fire_due
from retarget.segmenter.settings import DEFAULT_CAMPAIGNS_DIR
from retarget.segmenter.state import Profile
from retarget.segmenter.testing import identify, track

SAMPLES = {
    "abandoned_cart",
    "browse_abandonment",
    "trial_not_converted",
    "post_purchase",
    "repeat_abandoner_survey",
}
T0 = datetime(2026, 3, 1, tzinfo=UTC)


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(text)
    return path


def test_the_shipped_samples_load_with_template_names_equal_to_campaign_names():
    campaigns = load_campaigns(DEFAULT_CAMPAIGNS_DIR)
    assert {c.name for c in campaigns} == SAMPLES
    assert all(c.template == c.name for c in campaigns)
    assert campaigns.by_name["abandoned_cart"].wait == timedelta(hours=4)
    assert campaigns.by_name["trial_not_converted"].wait == timedelta(days=7)


def test_waits_scale_and_per_campaign_overrides_apply():
    campaigns = load_campaigns(DEFAULT_CAMPAIGNS_DIR, wait_scale=0.001, waits={"abandoned_cart": "2s"})
    assert campaigns.by_name["abandoned_cart"].wait == timedelta(seconds=2)
    assert campaigns.by_name["browse_abandonment"].wait == timedelta(seconds=7.2)
    with pytest.raises(CampaignError, match="unknown campaign"):
        load_campaigns(DEFAULT_CAMPAIGNS_DIR, waits={"no_such_campaign": 1})


@pytest.mark.parametrize(
    ("body", "field", "reason"),
    [
        ("name: x\nentry: {event: A}\nwait: soon\n", "wait", "not a duration"),
        ("name: x\nwait: 1h\n", "entry", "Field required"),
        (
            "name: x\nentry: {event: A}\nwait: 1h\nconditions: {consent: maybe}\n",
            "conditions.consent",
            "Input should be",
        ),
        (
            "name: x\nentry: {event: A, count: {at_least: 0, within: 1d}}\nwait: 1h\n",
            "entry.count.at_least",
            "greater than",
        ),
        ("name: x\nentry: {event: A}\nwait: 1h\nsnapshot: [basket]\n", "snapshot.0", "Input should be"),
        ("name: x\nentry: {event: A}\nwait: 1h\ncolour: blue\n", "colour", "Extra inputs"),
        (
            "name: x\nentry: {event: A}\nwait: 1h\nexit: [{event: A}]\n",
            "exit",
            "both the entry and an unconditional exit",
        ),
    ],
)
def test_a_bad_file_stops_the_start_naming_file_field_and_reason(
    tmp_path: Path, body: str, field: str, reason: str
):
    path = write(tmp_path, "x", body)
    with pytest.raises(CampaignError) as caught:
        load_campaigns(tmp_path)
    message = str(caught.value)
    assert str(path) in message and f"field {field}:" in message and reason in message


def test_name_must_match_the_file_and_yaml_must_parse(tmp_path: Path):
    write(tmp_path, "y", "name: other\nentry: {event: A}\nwait: 1h\n")
    with pytest.raises(CampaignError, match="must match the file name"):
        load_campaigns(tmp_path)
    write(tmp_path, "y", "name: [unclosed\n")
    with pytest.raises(CampaignError, match="not readable YAML"):
        load_campaigns(tmp_path)
    with pytest.raises(CampaignError, match="RETARGET_CAMPAIGNS_DIR"):
        load_campaigns(tmp_path / "missing")


def test_disabled_files_are_validated_but_not_run(tmp_path: Path):
    write(tmp_path, "paused", "name: paused\nenabled: false\nentry: {event: A}\nwait: 1h\n")
    assert list(load_campaigns(tmp_path)) == []


@pytest.mark.parametrize(
    ("where", "props", "expected"),
    [
        ({"category": "shoes"}, {"category": "shoes"}, True),
        ({"category": "shoes"}, {"category": "hats"}, False),
        ({"price": {"gte": 50}}, {"price": "60"}, True),
        ({"price": {"gte": 50}}, {"price": 40}, False),
        ({"price": {"gte": 50}}, {"price": "n/a"}, False),
        ({"price": {"gte": 50}}, {}, False),
        ({"currency": {"in": ["EUR", "USD"]}}, {"currency": "EUR"}, True),
        ({"coupon": {"exists": False}}, {}, True),
        ({"coupon": {"exists": False}}, {"coupon": "X"}, False),
        ({"coupon": {"ne": "STAFF"}}, {}, True),
        ({"order.total": {"gt": 10}}, {"order": {"total": 11}}, True),
    ],
)
def test_property_filters(where: dict, props: dict, expected: bool):
    assert matches(EventMatch.model_validate({"event": "E", "where": where}), props) is expected


def test_a_window_aggregate_counts_the_same_product_within_24_hours(tmp_path: Path):
    write(
        tmp_path,
        "keen_viewer",
        "name: keen_viewer\nentry:\n  event: Product Viewed\n  where: {price: {gte: 10}}\n"
        "  count: {at_least: 3, within: 24h, same: product_id}\nwait: 30m\n",
    )
    campaigns = load_campaigns(tmp_path)
    p = Profile(workspace_id="ws", profile_id="a")
    rules.apply_event(p, identify(T0, mid="i", email="a@b.example"), campaigns)

    def view(hours: float, product: str, mid: str, price: float = 20) -> None:
        event = track("Product Viewed", T0 + timedelta(hours=hours), mid=mid, product_id=product, price=price)
        rules.apply_event(p, event, campaigns)

    view(0, "p1", "v1")
    view(1, "p2", "v2")
    view(2, "p1", "v3")
    view(3, "p1", "v4", price=5)  # filtered out: not counted
    view(3, "p1", "v3")  # a replay of v3: counted once
    assert "keen_viewer" not in p.pending
    view(25.5, "p1", "v5")  # v1 is outside the 24 h window now
    assert "keen_viewer" not in p.pending
    view(25.75, "p1", "v6")  # v3, v5, v6
    assert p.pending["keen_viewer"].due_at == T0 + timedelta(hours=26, minutes=15)
    (t,) = fire_due(p, campaigns, T0 + timedelta(hours=27)).triggers
    assert "3x within 1d" in t.reason


@pytest.mark.parametrize(
    ("text", "seconds"), [("90s", 90), ("30m", 1800), ("4h", 14400), ("7d", 604800), (1.5, 1.5)]
)
def test_durations(text, seconds):
    assert parse_duration(text).total_seconds() == seconds
