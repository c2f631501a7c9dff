"""What a shop may do with a code: pure rules, no I/O (store.py reads and writes the rows).

A code is looked up within one workspace only, so another workspace's code is `unknown`, the
same answer as a code that never existed: nothing leaks across workspaces. Redemption is
idempotent on the order: the same code redeemed again for the same order_id answers as the
first time did; any other second redemption (another order, or none named) is refused as
`already_redeemed`, and the refusal names when and for which order it was redeemed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

# what a code may look like: the derived ones (RT-…) and what shops' systems generate;
# anything else can't be a code of ours and is `unknown` without a lookup
CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
MAX_ORDER_ID_CHARS = 128


class Refusal(StrEnum):
    UNKNOWN = "unknown"
    EXPIRED = "expired"
    ALREADY_REDEEMED = "already_redeemed"


@dataclass(frozen=True)
class Coupon:
    workspace_id: str
    code: str
    campaign: str
    trigger_id: str
    profile_id: str
    mode: str
    issued_at: datetime
    expires_at: datetime | None
    redeemed_at: datetime | None = None
    order_id: str | None = None

    def view(self) -> dict[str, object]:
        """The JSON a shop sees (no profile id: the shop has its own customer ids)."""
        return {
            "code": self.code,
            "campaign": self.campaign,
            "issued_at": self.issued_at.isoformat(),
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
            "redeemed_at": self.redeemed_at.isoformat() if self.redeemed_at else None,
            "order_id": self.order_id,
        }


def is_code(text: str) -> bool:
    return bool(CODE.fullmatch(text))  # fullmatch: `$` alone lets a trailing newline through


def check(coupon: Coupon | None, workspace_id: str, now: datetime) -> Refusal | None:
    """None when the code can be redeemed now, else why not."""
    if coupon is None or coupon.workspace_id != workspace_id:
        return Refusal.UNKNOWN
    if coupon.redeemed_at is not None:
        return Refusal.ALREADY_REDEEMED
    if coupon.expires_at is not None and now >= coupon.expires_at:
        return Refusal.EXPIRED
    return None


@dataclass(frozen=True)
class Redemption:
    """The answer to a redemption: `redeem` when the store must mark it now, `refusal` when refused."""

    redeem: bool
    refusal: Refusal | None = None


def redemption(coupon: Coupon | None, workspace_id: str, order_id: str | None, now: datetime) -> Redemption:
    """Redeem, answer again as before (same order), or refuse with the reason."""
    refusal = check(coupon, workspace_id, now)
    if refusal is Refusal.ALREADY_REDEEMED:
        assert coupon is not None
        if order_id is not None and coupon.order_id == order_id:
            return Redemption(redeem=False)  # the shop retried the same order: the same success
        return Redemption(redeem=False, refusal=refusal)
    if refusal is not None:
        return Redemption(redeem=False, refusal=refusal)
    return Redemption(redeem=True)
