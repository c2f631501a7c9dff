"""The funnel adds up the right counters into the right columns."""

from __future__ import annotations

from retarget.common.funnel import funnel, revenue_text


def test_samples_land_in_their_stage_per_workspace_and_campaign():
    samples = [
        ("retarget_segmenter_triggers_fired_total", {"workspace": "w", "campaign": "cart"}, 10.0),
        (
            "retarget_sender_outcomes_total",
            {"workspace": "w", "campaign": "cart", "outcome": "sent", "reason": ""},
            7,
        ),
        (
            "retarget_sender_outcomes_total",
            {"workspace": "w", "campaign": "cart", "outcome": "sent", "reason": "x"},
            1,
        ),
        ("retarget_sender_outcomes_total", {"workspace": "w", "campaign": "cart", "outcome": "capped"}, 2),
        ("retarget_ingest_engagement_total", {"workspace": "w", "campaign": "cart", "action": "opened"}, 5),
        (
            "retarget_ingest_engagement_total",
            {"workspace": "w", "campaign": "cart", "action": "opened_machine"},
            3,
        ),
        ("retarget_segmenter_revenue_total", {"workspace": "w", "campaign": "cart", "currency": "USD"}, 99.5),
        ("retarget_segmenter_triggers_fired_total", {"workspace": "v", "campaign": "cart"}, 4),
        ("some_other_metric_total", {"workspace": "w", "campaign": "cart"}, 1000),
    ]
    rows = funnel(samples)
    assert list(rows) == [("v", "cart"), ("w", "cart")]
    w = rows[("w", "cart")]
    assert (w["triggered"], w["sent"], w["capped"], w["opened"], w["revenue"]) == (10, 8, 2, 5, 99.5)
    assert w["clicked"] == 0 and rows[("v", "cart")]["triggered"] == 4


def test_revenue_is_kept_per_currency_as_well():
    samples = [
        ("retarget_segmenter_revenue_total", {"workspace": "w", "campaign": "c", "currency": "USD"}, 10.0),
        ("retarget_segmenter_revenue_total", {"workspace": "w", "campaign": "c", "currency": "EUR"}, 5.0),
        ("retarget_segmenter_revenue_total", {"workspace": "w", "campaign": "c", "currency": "USD"}, 2.5),
    ]
    row = funnel(samples)[("w", "c")]
    assert (row["revenue"], row["revenue_USD"], row["revenue_EUR"]) == (17.5, 12.5, 5.0)
    assert revenue_text(row) == "EUR 5.00 + USD 12.50"
    assert revenue_text({"revenue": 0.0}) == "0.00"


def test_unique_opens_and_machine_opens_stand_next_to_the_totals():
    labels = {"workspace": "w", "campaign": "cart"}
    samples = [
        ("retarget_ingest_engagement_total", labels | {"action": "opened"}, 9),
        ("retarget_ingest_engagement_total", labels | {"action": "opened_machine"}, 4),
        ("retarget_ingest_engagement_total", labels | {"action": "clicked"}, 3),
        ("retarget_ingest_engagement_unique_total", labels | {"action": "opened"}, 6),
        ("retarget_ingest_engagement_unique_total", labels | {"action": "clicked"}, 2),
    ]
    row = funnel(samples)[("w", "cart")]
    assert {
        k: row[k] for k in ("opened", "opened_unique", "opened_machine", "clicked", "clicked_unique")
    } == {
        "opened": 9,
        "opened_unique": 6,
        "opened_machine": 4,
        "clicked": 3,
        "clicked_unique": 2,
    }


def test_coupon_redemptions_are_the_redeemed_column_of_the_campaign_that_issued_them():
    samples = [
        ("retarget_ingest_coupons_redeemed_total", {"workspace": "w", "campaign": "cart"}, 3.0),
        ("retarget_ingest_coupons_redeemed_total", {"workspace": "w", "campaign": "trial"}, 1.0),
        ("retarget_segmenter_conversions_total", {"workspace": "w", "campaign": "cart"}, 5.0),
    ]
    rows = funnel(samples)
    assert (rows[("w", "cart")]["redeemed"], rows[("w", "cart")]["converted"]) == (3, 5)
    assert rows[("w", "trial")]["redeemed"] == 1
