"""Issue the coupon a trigger's email shows, before the email exists (so before it is published).

A campaign whose incentive has a `coupon` (retarget.coupons.spec) gets its code stored: the
trigger's derived code (`unique`) or a code claimed from the shop's pool (`pool`), both
idempotent on trigger_id, so a replay after a crash renders the code the first try stored.
A campaign without one renders its derived code as it always did, storing nothing.

An empty pool does not hold or drop the reminder: the email goes out without the incentive
(the bundled templates leave the offer out when there is none), counted in
retarget_composer_coupon_pool_empty_total, so the shop sees it and uploads more codes.

A batch's unique codes are stored together, in two statements (issue_unique_batch): a round
trip and a pool checkout per code cost the composer more CPU than rendering the email
(bench/bench_composer_process.py). Should PostgreSQL refuse the batch's data (a NUL byte), each
code is stored alone, so only the bad trigger fails. Pool claims stay one after the other, so
a pool's codes go out in the batch's order.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import msgspec

from retarget.common.poison import is_data_error
from retarget.common.schemas import TriggerFired
from retarget.composer.metrics import COUPON_POOL_EMPTY, COUPON_POOL_REMAINING, COUPONS_ISSUED
from retarget.coupons.rules import Coupon
from retarget.coupons.spec import CouponSpec, coupon_spec
from retarget.coupons.store import CodeTaken, Issue, PoolEmpty

log = logging.getLogger(__name__)


class Coupons(Protocol):
    """What issuing needs of retarget.coupons.store.CouponStore (a fake in unit tests)."""

    async def issue_unique_batch(self, wanted: Sequence[tuple[Issue, str]]) -> list[Coupon | CodeTaken]: ...
    async def claim_from_pool(self, issue: Issue, pool: str) -> Coupon: ...
    async def pool_free(self, workspace_id: str, pool: str) -> int: ...


@dataclass(frozen=True)
class Offer:
    """The trigger to render (without its incentive when the pool ran dry) and the code to show."""

    trigger: TriggerFired
    code: str | None  # None: the composer's derived code, shown but not stored (no coupon spec)


class CouponIssuer:
    def __init__(self, store: Coupons) -> None:
        self._store = store

    async def offers(self, wanted: Sequence[tuple[TriggerFired, str]]) -> list[Offer | BaseException]:
        """The offer for each (trigger, derived code), in order; each failure in its place: a
        ValueError for a malformed coupon spec, a database error (the caller decides: retry)."""
        results: list[Offer | BaseException | None] = [None] * len(wanted)
        unique: list[tuple[int, Issue]] = []
        pooled: list[tuple[int, CouponSpec]] = []
        for i, (trigger, _) in enumerate(wanted):
            try:
                spec = coupon_spec(trigger.incentive)
            except ValueError as exc:
                results[i] = exc
                continue
            if spec is None:
                results[i] = Offer(trigger, None)
            elif spec.mode == "unique":
                unique.append((i, _issue(trigger, spec)))
            else:
                pooled.append((i, spec))
        stored = await self._issue_unique([(wanted[i][0], issue, wanted[i][1]) for i, issue in unique])
        for (i, _), outcome in zip(unique, stored, strict=True):
            results[i] = outcome
        for i, spec in pooled:  # one after the other, so a pool's codes go out in the batch's order
            try:
                results[i] = await self._claim_from_pool(wanted[i][0], spec)
            except Exception as exc:
                results[i] = exc
        assert all(r is not None for r in results)
        return results  # type: ignore[return-value]  # every slot filled above

    async def _issue_unique(
        self, wanted: Sequence[tuple[TriggerFired, Issue, str]]
    ) -> list[Offer | BaseException]:
        """Store the unique codes together; on a data error, each alone, so only the bad one fails."""
        try:
            stored = await self._store.issue_unique_batch([(issue, code) for _, issue, code in wanted])
        except Exception as exc:
            if len(wanted) == 1 or not is_data_error(exc):
                return [exc] * len(wanted)
            return [outcome for one in wanted for outcome in await self._issue_unique([one])]
        offers: list[Offer | BaseException] = []
        for (trigger, _, _), coupon in zip(wanted, stored, strict=True):
            if isinstance(coupon, CodeTaken):
                offers.append(coupon)
            else:
                COUPONS_ISSUED.labels(trigger.campaign, "unique").inc()
                offers.append(Offer(trigger, coupon.code))
        return offers

    async def _claim_from_pool(self, trigger: TriggerFired, spec: CouponSpec) -> Offer:
        """The trigger's code from its pool; without the incentive when the pool is empty."""
        assert spec.pool is not None  # CouponSpec requires it in pool mode
        try:
            coupon = await self._store.claim_from_pool(_issue(trigger, spec), spec.pool)
        except PoolEmpty:
            COUPON_POOL_EMPTY.labels(trigger.campaign).inc()
            COUPON_POOL_REMAINING.labels(trigger.workspace_id, spec.pool).set(0)
            log.warning(
                "coupon pool empty: email sent without its incentive",
                extra={"campaign": trigger.campaign, "pool": spec.pool},
            )
            return Offer(msgspec.structs.replace(trigger, incentive={}), None)
        COUPON_POOL_REMAINING.labels(trigger.workspace_id, spec.pool).set(
            await self._store.pool_free(trigger.workspace_id, spec.pool)
        )
        COUPONS_ISSUED.labels(trigger.campaign, spec.mode).inc()
        return Offer(trigger, coupon.code)


def _issue(trigger: TriggerFired, spec: CouponSpec) -> Issue:
    """Who the trigger's code is for."""
    return Issue(
        trigger.workspace_id,
        trigger.campaign,
        trigger.trigger_id,
        trigger.profile_id,
        trigger.fired_at,  # not the clock: a replay computes the same expiry
        spec.expires_after,
    )
