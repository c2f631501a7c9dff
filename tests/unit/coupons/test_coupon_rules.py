"""The redemption rules: unknown (another workspace's too), expired, already redeemed, and
the same order redeemed again answered as the first time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from retarget.coupons.rules import Coupon, Refusal, check, is_code, redemption

NOW = datetime(2026, 3, 10, 12, tzinfo=UTC)


def coupon(**overrides: object) -> Coupon:
    fields: dict[str, object] = dict(
        workspace_id="ws",
        code="RT-ABC",
        campaign="abandoned_cart",
        trigger_id="t1",
        profile_id="p1",
        mode="unique",
        issued_at=NOW - timedelta(days=1),
        expires_at=NOW + timedelta(days=6),
    )
    fields.update(overrides)
    return Coupon(**fields)  # type: ignore[arg-type]


def test_a_fresh_code_of_the_workspace_redeems() -> None:
    assert check(coupon(), "ws", NOW) is None
    assert redemption(coupon(), "ws", "o-1", NOW).redeem


def test_no_row_or_another_workspaces_row_is_unknown() -> None:
    assert check(None, "ws", NOW) is Refusal.UNKNOWN
    assert check(coupon(workspace_id="other"), "ws", NOW) is Refusal.UNKNOWN
    refused = redemption(coupon(workspace_id="other"), "ws", "o-1", NOW)
    assert (refused.redeem, refused.refusal) == (False, Refusal.UNKNOWN)


def test_expiry_is_inclusive_of_its_instant() -> None:
    assert check(coupon(expires_at=NOW + timedelta(seconds=1)), "ws", NOW) is None
    assert check(coupon(expires_at=NOW), "ws", NOW) is Refusal.EXPIRED
    assert redemption(coupon(expires_at=NOW), "ws", "o-1", NOW).refusal is Refusal.EXPIRED
    assert check(coupon(expires_at=None), "ws", NOW + timedelta(days=999)) is None


def test_a_redeemed_code_answers_the_same_order_again_and_refuses_any_other() -> None:
    used = coupon(redeemed_at=NOW - timedelta(hours=1), order_id="o-1")
    assert check(used, "ws", NOW) is Refusal.ALREADY_REDEEMED
    again = redemption(used, "ws", "o-1", NOW)
    assert (again.redeem, again.refusal) == (False, None)
    assert redemption(used, "ws", "o-2", NOW).refusal is Refusal.ALREADY_REDEEMED
    assert redemption(used, "ws", None, NOW).refusal is Refusal.ALREADY_REDEEMED
    unnamed = coupon(redeemed_at=NOW - timedelta(hours=1), order_id=None)
    assert redemption(unnamed, "ws", None, NOW).refusal is Refusal.ALREADY_REDEEMED


def test_already_redeemed_wins_over_expired() -> None:
    used = coupon(redeemed_at=NOW - timedelta(days=2), order_id="o-1", expires_at=NOW - timedelta(days=1))
    assert check(used, "ws", NOW) is Refusal.ALREADY_REDEEMED
    assert redemption(used, "ws", "o-1", NOW).refusal is None  # the shop's retry still succeeds


def test_what_can_be_a_code() -> None:
    assert is_code("RT-0A1B2C3D4E") and is_code("SPRING.2026_x")
    assert not is_code("") and not is_code("-x") and not is_code("a b") and not is_code("x" * 65)
    assert not is_code("a/../b") and not is_code("ä")


def test_a_trailing_newline_is_no_code() -> None:
    """`$` matches before a final newline: 'RT-1\\n' passed as a code (atk17)."""
    assert is_code("RT-ABC") and not is_code("RT-ABC\n") and not is_code("RT-ABC\r\n")
