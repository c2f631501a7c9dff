"""Each workspace's campaigns (campaign_registry.py): the bundled defaults overridden by name by
the workspace's own feed records, with the deployment's wait scale and overrides."""

from __future__ import annotations

import dataclasses
import logging
from datetime import timedelta
from typing import Any

import pytest

from retarget.segmenter.campaign_registry import CampaignRegistry, needs_sweep
from retarget.segmenter.campaigns import Campaign, read_campaign_files
from retarget.segmenter.settings import DEFAULT_CAMPAIGNS_DIR
from retarget.segmenter.testing import campaign_record, deleted_record

FILES = read_campaign_files(DEFAULT_CAMPAIGNS_DIR)
CART = next(c for c in FILES if c.name == "abandoned_cart")


def cart_body(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "entry": {"event": "Product Added"},
        "wait": "1h",
        "exit": [{"event": "Order Completed"}],
        "snapshot": ["cart"],
        "incentive": {"kind": "percent_off", "value": 10},
    }
    return body | changes


def test_a_workspace_without_records_shares_the_defaults_with_the_waits_scaled():
    registry = CampaignRegistry(FILES, wait_scale=0.5)
    assert registry.campaigns_for("ws-1") is registry.campaigns_for("ws-2") is registry.defaults
    assert registry.campaigns_for("ws-1").by_name["abandoned_cart"].wait == CART.wait / 2
    assert len(registry) == 0  # no copies for 1,000 workspaces that changed nothing


def test_a_record_overrides_the_default_of_its_name_for_its_workspace_only():
    registry = CampaignRegistry(FILES)
    registry.on_change(campaign_record("ws-1", "abandoned_cart", cart_body(template="cart_v2")))
    mine, theirs = registry.campaigns_for("ws-1"), registry.campaigns_for("ws-2")
    assert mine.by_name["abandoned_cart"].template == "cart_v2"
    assert mine.by_name["abandoned_cart"].wait == timedelta(hours=1)
    assert theirs.by_name["abandoned_cart"].template == "abandoned_cart"
    assert set(mine.by_name) == set(theirs.by_name)  # the other defaults are inherited
    assert mine.by_entry["Product Added"] == (mine.by_name["abandoned_cart"],)


def test_a_workspace_can_add_a_campaign_of_its_own():
    registry = CampaignRegistry(FILES)
    body = {"entry": {"event": "Signed Up"}, "wait": "2d", "template": "welcome"}
    registry.on_change(campaign_record("ws-1", "welcome_back", body))
    assert registry.campaigns_for("ws-1").by_entry["Signed Up"][0].name == "welcome_back"
    assert "welcome_back" not in registry.campaigns_for("ws-2").by_name


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        (deleted_record("ws-1", "abandoned_cart"), "campaign deleted"),
        (campaign_record("ws-1", "abandoned_cart", cart_body(enabled=False)), "campaign disabled"),
    ],
)
def test_a_deleted_or_disabled_record_hides_the_default_of_its_name(record: Any, reason: str):
    registry = CampaignRegistry(FILES)
    registry.on_change(record)
    mine = registry.campaigns_for("ws-1")
    assert "abandoned_cart" not in mine.by_name
    assert all(c.name != "abandoned_cart" for c in mine.by_entry.get("Product Added", ()))
    assert mine.removed == {"abandoned_cart": reason}
    assert "abandoned_cart" in registry.campaigns_for("ws-2").by_name


def test_re_applying_a_deleted_campaign_brings_it_back():
    registry = CampaignRegistry(FILES)
    registry.on_change(deleted_record("ws-1", "abandoned_cart"))
    registry.on_change(campaign_record("ws-1", "abandoned_cart", cart_body()))
    assert registry.campaigns_for("ws-1").by_name["abandoned_cart"].wait == timedelta(hours=1)
    assert registry.campaigns_for("ws-1").removed == {}


def test_the_deployment_s_wait_scale_and_overrides_apply_to_a_workspace_s_campaigns():
    registry = CampaignRegistry(FILES, wait_scale=0.001, waits={"post_purchase": "3s"})
    registry.on_change(campaign_record("ws-1", "abandoned_cart", cart_body(wait="1000s")))
    registry.on_change(
        campaign_record("ws-1", "post_purchase", {"entry": {"event": "Order Completed"}, "wait": "9h"})
    )
    mine = registry.campaigns_for("ws-1")
    assert mine.by_name["abandoned_cart"].wait == timedelta(seconds=1)
    assert mine.by_name["post_purchase"].wait == timedelta(seconds=3)


def test_an_invalid_record_is_logged_and_ignored_keeping_the_previous_version(caplog: Any):
    registry = CampaignRegistry(FILES)
    registry.on_change(campaign_record("ws-1", "abandoned_cart", cart_body(wait="2h")))
    before = registry.campaigns_for("ws-1")
    with caplog.at_level(logging.ERROR):
        registry.on_change(campaign_record("ws-1", "abandoned_cart", cart_body(wait="soon")))
        registry.on_change(campaign_record("ws-1", "abandoned_cart", cart_body(name="other_name")))
    assert registry.campaigns_for("ws-1") is before
    assert before.by_name["abandoned_cart"].wait == timedelta(hours=2)
    reasons = [r.reason for r in caplog.records]  # type: ignore[attr-defined]
    assert "wait" in reasons[0] and "other_name" in reasons[1]
    assert all(r.campaign == "abandoned_cart" and r.workspace == "ws-1" for r in caplog.records)  # type: ignore[attr-defined]


def test_records_of_other_kinds_are_not_campaigns():
    registry = CampaignRegistry(FILES)
    registry.on_change(campaign_record("ws-1", "abandoned_cart", {"subject": "Hi"}, kind="template"))
    assert registry.campaigns_for("ws-1") is registry.defaults


def test_a_change_rebuilds_only_its_workspace_s_set():
    registry = CampaignRegistry(FILES)
    registry.on_change(campaign_record("ws-1", "abandoned_cart", cart_body()))
    registry.on_change(campaign_record("ws-2", "abandoned_cart", cart_body()))
    other = registry.campaigns_for("ws-2")
    registry.on_change(campaign_record("ws-1", "abandoned_cart", cart_body(wait="5m")))
    assert registry.campaigns_for("ws-2") is other
    assert registry.campaigns_for("ws-1").by_name["abandoned_cart"].wait == timedelta(minutes=5)


def test_only_a_shorter_wait_or_a_removed_campaign_needs_the_waiting_profiles_re_checked():
    registry = CampaignRegistry(FILES)
    registry.on_change(campaign_record("ws-0", "abandoned_cart", cart_body(wait="1m")))
    assert registry.changed_since_sweep == set()  # read at start: nothing waits on the change yet
    registry.sweeping = True
    registry.on_change(campaign_record("ws-1", "abandoned_cart", cart_body(wait="9h")))
    assert registry.changed_since_sweep == set()  # longer: the old due time comes first
    registry.on_change(campaign_record("ws-1", "abandoned_cart", cart_body(wait="1m")))
    registry.on_change(deleted_record("ws-2", "post_purchase"))
    assert registry.changed_since_sweep == {"ws-1", "ws-2"}


def test_needs_sweep_compares_each_campaign_s_wait():
    defaults = CampaignRegistry(FILES).defaults
    registry = CampaignRegistry(FILES)
    registry.on_change(campaign_record("ws", "abandoned_cart", cart_body(wait="5h")))
    assert not needs_sweep(defaults, registry.campaigns_for("ws"))
    assert needs_sweep(registry.campaigns_for("ws"), defaults)


def test_a_deleted_record_of_another_kind_does_not_hide_the_campaign_of_its_name():
    """A template (or any other kind) named like a campaign, deleted: not the campaign's
    deletion (mutation check: the registry's kind guard survived every test)."""
    registry = CampaignRegistry(FILES)
    record = deleted_record("ws-1", "abandoned_cart")
    registry.on_change(dataclasses.replace(record, kind="template"))
    assert "abandoned_cart" in registry.campaigns_for("ws-1").by_name


def test_a_workspace_with_hundreds_of_campaigns_is_read_in_linear_time_per_record(
    monkeypatch: pytest.MonkeyPatch,
):
    """CampaignSet.of deduplicated exits with `c not in list` (deep dataclass equality with
    every campaign of that exit event): each record's rebuild was quadratic, the feed read
    cubic — 1,000 campaigns of one workspace sharing an exit took ~54 s of the worker's
    start (event loop blocked), 5,000 longer than 5 minutes. Counted, not timed: the deep
    comparisons themselves (~125,000 for these 500 records with the list test)."""
    comparisons = 0
    compare = Campaign.__eq__

    def counted(self: Campaign, other: object) -> bool:
        nonlocal comparisons
        comparisons += 1
        return compare(self, other)

    monkeypatch.setattr(Campaign, "__eq__", counted)
    registry = CampaignRegistry(FILES)
    for i in range(500):
        registry.on_change(campaign_record("ws-1", f"c{i}", cart_body(name=f"c{i}")))
    assert comparisons < 500, comparisons
    twice = cart_body(
        name="twice", exit=[{"event": "Order Completed"}, {"event": "Order Completed", "where": {"x": 1}}]
    )
    registry.on_change(campaign_record("ws-1", "twice", twice))
    by_exit = registry.campaigns_for("ws-1").by_exit["Order Completed"]
    names = [c.name for c in by_exit]
    assert names.count("twice") == 1 and len(names) == len(set(names)) == 501 + 4  # + 4 defaults
