"""The composer's shared test data and fakes: a template every spam filter should refuse, so a test can
prove the spam scorer scores (a scorer that always answered 0 would pass every clean one)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from retarget.common.schemas import CartLine, Recipient, TriggerFired
from retarget.coupons.rules import Coupon
from retarget.coupons.store import CodeTaken, Issue, PoolEmpty

# What spam looks like to SpamAssassin's local rules (~14 points with Debian's 4.0 rules,
# the threshold is 5): "Dear Friend", 100% guaranteed, millions of dollars, a wire transfer,
# drugs, an all-caps subject, huge red fonts and little HTML around an image.
SPAMMY_TEMPLATE = {
    "subject": "FREE!!! YOU HAVE WON $1,000,000 - ACT NOW, LIMITED TIME!!!",
    "html": (
        '<html><body><p><font color="#ff0000" size="7"><b>CONGRATULATIONS!!! YOU ARE A WINNER!!!</b></font></p>'
        "<p>Dear Friend, this is not spam. You have been selected to receive a cash prize of "
        "$1,000,000 USD. 100% GUARANTEED, risk free, no credit check, no purchase necessary. "
        "Click here to claim your prize now. Buy Viagra and Cialis at the lowest price, lose weight "
        "fast, earn extra cash from home, double your income. Act now while supplies last!!! "
        "Send us your bank account details to receive the wire transfer.</p>"
        '<p><a href="{{ links.shop }}">CLICK HERE TO CLAIM</a></p>'
        '<p><a href="{{ links.unsubscribe }}">unsubscribe</a></p>'
        '<img src="{{ links.open_pixel }}" width="1" height="1"></body></html>'
    ),
    "text": None,
}


class FakeCoupons:
    """retarget.coupons.store.CouponStore in memory, for the composer's unit tests: issues are
    idempotent on trigger_id; pools are lists of free codes."""

    def __init__(self, pools: dict[tuple[str, str], list[str]] | None = None) -> None:
        self.pools = pools or {}
        self.issued: dict[tuple[str, str], Coupon] = {}  # (workspace, trigger_id) -> coupon

    async def issue_unique_batch(self, wanted: Sequence[tuple[Issue, str]]) -> list[Coupon | CodeTaken]:
        return [self._store(issue, code, "unique") for issue, code in wanted]

    async def claim_from_pool(self, issue: Issue, pool: str) -> Coupon:
        if (issue.workspace_id, issue.trigger_id) in self.issued:
            return self.issued[issue.workspace_id, issue.trigger_id]
        free = self.pools.get((issue.workspace_id, pool))
        if not free:
            raise PoolEmpty(pool)
        return self._store(issue, free.pop(0), "pool")

    async def pool_free(self, workspace_id: str, pool: str) -> int:
        return len(self.pools.get((workspace_id, pool), []))

    def _store(self, issue: Issue, code: str, mode: str) -> Coupon:
        coupon = Coupon(
            issue.workspace_id,
            code,
            issue.campaign,
            issue.trigger_id,
            issue.profile_id,
            mode,
            issue.issued_at,
            issue.issued_at + issue.expires_after,
        )
        return self.issued.setdefault((issue.workspace_id, issue.trigger_id), coupon)


def cart_trigger(
    incentive: dict[str, Any],
    *,
    trigger_id: str = "t" * 32,
    workspace_id: str = "ws",
    fired: datetime | None = None,
) -> TriggerFired:
    """An abandoned-cart trigger for Ann (one pair of boots) with this incentive: the coupon tests' input."""
    at = fired or datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    return TriggerFired(
        trigger_id=trigger_id,
        workspace_id=workspace_id,
        profile_id="anon-1",
        campaign="abandoned_cart",
        template="abandoned_cart",
        reason="test",
        entry_message_id="m1",
        due_at=at,
        fired_at=at,
        recipient=Recipient(email="ann@example.com", first_name="Ann"),
        cart=[CartLine(product_id="p1", name="Boots", price=80, currency="EUR")],
        incentive=incentive,
    )
