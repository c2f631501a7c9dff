"""The reputation guard's pure rules: rates, minimum volume, levels, per-domain scope, window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from retarget.common.reputation import (
    ALL_DOMAINS,
    Counts,
    Thresholds,
    describe,
    holds,
    judge,
    level_of,
    sending_domain,
    window_start,
)

T = Thresholds()  # the defaults: complaints 0.1% warn / 0.3% pause, hard bounces 1% / 2%, 1,000 sent


def test_the_defaults_are_the_providers_published_limits():
    assert (T.complaint_warn, T.complaint_pause) == (0.001, 0.003)
    assert (T.hard_bounce_warn, T.hard_bounce_pause, T.min_sent) == (0.01, 0.02, 1000)


def test_a_complaint_rate_at_the_threshold_pauses_and_just_under_it_warns():
    assert judge({"shop.example": Counts(sent=1000, complaints=3)}, T).level == "pause"
    assert judge({"shop.example": Counts(sent=1001, complaints=3)}, T).level == "warn"
    assert judge({"shop.example": Counts(sent=1000, complaints=1)}, T).level == "warn"
    assert judge({"shop.example": Counts(sent=1001, complaints=1)}, T).level == "ok"


def test_a_hard_bounce_rate_at_the_threshold_pauses():
    verdict = judge({"shop.example": Counts(sent=1000, hard_bounces=20)}, T)
    assert verdict.level == "pause"
    assert verdict.worst is not None and verdict.worst.kind == "hard_bounce_rate"
    assert judge({"shop.example": Counts(sent=1000, hard_bounces=19)}, T).level == "warn"
    assert judge({"shop.example": Counts(sent=1000, hard_bounces=9)}, T).level == "ok"


def test_below_the_minimum_volume_no_rate_is_judged():
    """One complaint in 999 is 0.1%; ten in 999 are 1% — still nothing below 1,000 sent."""
    assert judge({"shop.example": Counts(sent=999, complaints=10, hard_bounces=500)}, T).level == "ok"
    assert level_of(5, 0, 0.001, 0.003, 1) == "ok"  # nothing sent: no rate, no division by zero


def test_one_bad_domain_pauses_the_workspace_though_its_sum_is_fine():
    counts = {
        "good.example": Counts(sent=100_000, complaints=10),
        "bad.example": Counts(sent=1000, complaints=5),
    }
    verdict = judge(counts, T)
    assert verdict.level == "pause"
    assert verdict.worst is not None and verdict.worst.domain == "bad.example"
    total = next(r for r in verdict.rates if r.domain == ALL_DOMAINS and r.kind == "complaint_rate")
    assert (total.events, total.sent, total.level) == (15, 101_000, "ok")


def test_small_domains_add_up_to_a_workspace_rate():
    counts = {"a.example": Counts(sent=600, complaints=2), "b.example": Counts(sent=600, complaints=2)}
    verdict = judge(counts, T)  # each domain under the minimum, together 4 in 1,200
    assert verdict.level == "pause"
    assert verdict.worst is not None and verdict.worst.domain == ALL_DOMAINS


def test_the_worst_rate_is_the_one_described():
    counts = {"shop.example": Counts(sent=1000, complaints=4, hard_bounces=50)}
    verdict = judge(counts, T)
    assert verdict.worst is not None and verdict.worst.kind == "hard_bounce_rate"
    assert describe(verdict.worst) == "hard-bounce rate 5.00% (50 of 1000 sent, all domains)"


def test_thresholds_are_configurable():
    strict = Thresholds(complaint_warn=0.0001, complaint_pause=0.0005, min_sent=10)
    assert judge({"shop.example": Counts(sent=2000, complaints=1)}, strict).level == "pause"


def test_the_window_is_whole_hourly_buckets_ending_with_the_current_one():
    now = datetime(2026, 11, 29, 21, 17, 5, tzinfo=UTC)
    assert window_start(now, timedelta(hours=24)) == datetime(2026, 11, 28, 22, 0, tzinfo=UTC)
    assert window_start(now, timedelta(hours=1)) == datetime(2026, 11, 29, 21, 0, tzinfo=UTC)


def test_every_campaign_is_held_unless_listed_as_transactional():
    assert holds("abandoned_cart", ())
    assert holds("abandoned_cart", ("receipt",))
    assert not holds("receipt", ("receipt",))


def test_the_sending_domain_is_bounded_and_holds_no_nul():
    assert sending_domain("bounces+m-1.abc@Shop.Example") == "shop.example"
    assert sending_domain("<bounces+m-1.abc@shop.example>") == "shop.example"
    assert sending_domain("x@sh\x00op.example") == "shop.example"
    assert len(sending_domain("x@" + "a" * 5000)) == 253
