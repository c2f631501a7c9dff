"""Admission rules, pure: caps across campaigns and per campaign, quiet hours in the right zone."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest

from retarget.sender.admission import Postpone, cap_refusal, decide, quiet_until, zone
from retarget.sender.policy import (
    CapRule,
    QuietHours,
    Rate,
    SendingPolicy,
    parse_caps,
    parse_domain_rates,
    parse_quiet_hours,
    parse_rate,
    parse_selectors,
)
from retarget.sender.rules import Verdict

NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
DEFAULT_CAPS = parse_caps("1/16h,3/7d")


def _policy(**fields: object) -> SendingPolicy:
    return SendingPolicy("ws1", **fields)  # type: ignore[arg-type]


def test_short_forms_parse_into_rules() -> None:
    assert DEFAULT_CAPS == (CapRule(1, 16 * 3600), CapRule(3, 7 * 86400))
    assert parse_quiet_hours("21:00-08:00") == QuietHours(time(21), time(8))
    assert parse_quiet_hours(None) is None and parse_quiet_hours("08:00-08:00") is None
    assert parse_rate("50/100") == Rate(50, 100) and parse_rate("0/0").unlimited
    assert parse_domain_rates("Gmail.com=20/40, yahoo.com=5/5") == {
        "gmail.com": Rate(20, 40),
        "yahoo.com": Rate(5, 5),
    }
    assert parse_selectors(" s1, s2 ,") == ("s1", "s2") and parse_selectors(None) == ()
    for bad in ("3/7w", "x"):
        with pytest.raises(ValueError, match="MAX/WINDOW"):
            parse_caps(bad)
    with pytest.raises(ValueError, match="burst"):
        parse_rate("10/0")


def test_one_message_per_16_hours_across_campaigns() -> None:
    policy = _policy(caps=DEFAULT_CAPS)
    assert cap_refusal(policy, "browse", [("cart", NOW - timedelta(hours=15))], NOW) == Verdict(
        "capped", "recipient_cap"
    )
    assert cap_refusal(policy, "browse", [("cart", NOW - timedelta(hours=17))], NOW) is None


def test_three_per_seven_days() -> None:
    policy = _policy(caps=DEFAULT_CAPS)
    history = [("cart", NOW - timedelta(days=d)) for d in (1, 2, 3)]
    assert cap_refusal(policy, "cart", history, NOW) == Verdict("capped", "recipient_cap")
    assert cap_refusal(policy, "cart", history[:2], NOW) is None
    assert cap_refusal(policy, "cart", [*history[:2], ("cart", NOW - timedelta(days=8))], NOW) is None


def test_a_campaign_cap_counts_only_that_campaign() -> None:
    policy = _policy(caps=(CapRule(1, 30 * 86400, "survey"),))
    assert cap_refusal(policy, "survey", [("survey", NOW - timedelta(days=10))], NOW) == Verdict(
        "capped", "campaign_cap"
    )
    assert cap_refusal(policy, "cart", [("survey", NOW - timedelta(days=10))], NOW) is None
    assert cap_refusal(policy, "survey", [("cart", NOW - timedelta(days=10))], NOW) is None


def test_quiet_hours_wrapping_midnight_end_next_morning_in_the_recipients_zone() -> None:
    quiet = QuietHours(time(21), time(8))
    paris = zone("Europe/Paris")  # UTC+1 in January
    at_23_paris = datetime(2026, 1, 5, 22, 0, tzinfo=UTC)
    assert quiet_until(quiet, paris, at_23_paris) == datetime(2026, 1, 6, 7, 0, tzinfo=UTC)
    at_3_paris = datetime(2026, 1, 6, 2, 0, tzinfo=UTC)
    assert quiet_until(quiet, paris, at_3_paris) == datetime(2026, 1, 6, 7, 0, tzinfo=UTC)
    assert quiet_until(quiet, paris, NOW) is None  # 13:00 in Paris
    assert quiet_until(quiet, zone("America/New_York"), NOW - timedelta(hours=5)) is not None  # 02:00 there


def test_quiet_hours_within_one_day_and_across_a_dst_change() -> None:
    lunch = QuietHours(time(12), time(14))
    assert quiet_until(lunch, zone("UTC"), NOW) == NOW.replace(hour=14)
    night = QuietHours(time(1), time(3))  # 02:00-03:00 does not exist in Paris on 2026-03-29
    paris = zone("Europe/Paris")
    at = datetime(2026, 3, 29, 0, 30, tzinfo=UTC)  # 01:30 local, quiet
    until = quiet_until(night, paris, at)
    assert until is not None and until > at and until.astimezone(paris).hour == 3


def test_an_unknown_timezone_falls_back_to_the_workspace_one() -> None:
    assert str(zone("Mars/Olympus", "Europe/Paris")) == "Europe/Paris"
    assert str(zone(None, "Nope/Nope")) == "UTC"


def test_decide_checks_suppression_then_caps_then_quiet_hours() -> None:
    policy = _policy(caps=DEFAULT_CAPS, quiet_hours=QuietHours(time(11), time(13)), timezone="UTC")
    recent = [("cart", NOW - timedelta(hours=1))]
    common = {"policy": policy, "campaign": "cart", "recipient_timezone": None, "now": NOW}
    assert decide(suppression_reason="unsubscribed", history=recent, **common) == Verdict(  # type: ignore[arg-type]
        "suppressed", "unsubscribed"
    )
    assert decide(suppression_reason=None, history=recent, **common) == Verdict("capped", "recipient_cap")  # type: ignore[arg-type]
    assert decide(suppression_reason=None, history=[], **common) == Postpone(NOW.replace(hour=13))  # type: ignore[arg-type]
    # the recipient's own zone wins over the workspace's: 12:00 UTC is 07:00 in New York
    ny = {**common, "recipient_timezone": "America/New_York"}
    assert decide(suppression_reason=None, history=[], **ny) is None  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("mode", "consent", "expected"),
    [
        ("opt_out", None, None),
        ("opt_out", True, None),
        ("opt_out", False, Verdict("suppressed", "objected")),
        ("opt_in", None, Verdict("suppressed", "no_consent")),
        ("opt_in", False, Verdict("suppressed", "objected")),
        ("opt_in", True, None),
    ],
)
def test_consent_mode_decides_before_caps(mode: str, consent: bool | None, expected: Verdict | None) -> None:
    policy = _policy(consent_mode=mode)
    decision = decide(
        suppression_reason=None,
        policy=policy,
        campaign="cart",
        history=[],
        recipient_timezone=None,
        now=NOW,
        consent=consent,
    )
    assert decision == expected
