"""The coupon store on the real PostgreSQL: issuing is idempotent on trigger_id, racing
composers never hand one pool code out twice, redemptions are single-use (idempotent for the
same order), expiry follows the injected time, and another workspace's code is unknown."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from retarget.common.poison import is_data_error
from retarget.common.settings import CommonSettings
from retarget.coupons.rules import Coupon, Refusal
from retarget.coupons.store import CodeTaken, CouponStore, Issue, PoolEmpty

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)


@pytest.fixture
async def pool(stack: dict[str, str]) -> AsyncIterator[asyncpg.Pool]:
    db = await asyncpg.create_pool(CommonSettings().database_url, min_size=1, max_size=8)
    yield db
    await db.close()


def issue(workspace_id: str, trigger_id: str | None = None, days: int = 7) -> Issue:
    return Issue(
        workspace_id, "abandoned_cart", trigger_id or uuid.uuid4().hex, "p1", T0, timedelta(days=days)
    )


async def test_a_unique_code_is_stored_once_and_a_replay_finds_it(pool, workspace_id) -> None:
    store = CouponStore(pool)
    first = await store.issue_unique(issue(workspace_id, "trig-1"), "RT-AAAA")
    replay = await store.issue_unique(issue(workspace_id, "trig-1"), "RT-AAAA")
    assert first == replay and first.expires_at == T0 + timedelta(days=7)
    assert await pool.fetchval("SELECT count(*) FROM coupons WHERE workspace_id = $1", workspace_id) == 1
    with pytest.raises(CodeTaken):  # the same code for another trigger is never shown twice
        await store.issue_unique(issue(workspace_id, "trig-2"), "RT-AAAA")


async def test_a_batch_of_unique_codes_gives_each_its_own_outcome_in_order(pool, workspace_id) -> None:
    """One INSERT and one SELECT for the batch: a replay finds its row, a code another trigger
    holds is CodeTaken in its place, a trigger twice in the batch is stored once."""
    store = CouponStore(pool)
    earlier = await store.issue_unique(issue(workspace_id, "trig-old"), "RT-OLD")
    wanted = [
        (issue(workspace_id, "trig-a"), "RT-A"),
        (issue(workspace_id, "trig-old"), "RT-OLD"),  # a replay
        (issue(workspace_id, "trig-b"), "RT-OLD"),  # another trigger's code
        (issue(workspace_id, "trig-a"), "RT-A"),  # the same trigger again
        (issue(workspace_id, "trig-c", days=1), "RT-C"),
    ]
    a, old, taken, again, c = await store.issue_unique_batch(wanted)
    assert isinstance(a, Coupon) and (a.code, a.trigger_id) == ("RT-A", "trig-a") and again == a
    assert old == earlier and isinstance(taken, CodeTaken)
    assert isinstance(c, Coupon) and c.code == "RT-C" and c.expires_at == T0 + timedelta(days=1)
    codes = await pool.fetch("SELECT code FROM coupons WHERE workspace_id = $1 ORDER BY code", workspace_id)
    assert [r["code"] for r in codes] == ["RT-A", "RT-C", "RT-OLD"]
    assert await store.issue_unique_batch([]) == []


async def test_a_batch_gives_each_workspace_its_own_row_for_the_same_trigger_id(pool, workspace_id) -> None:
    # a batch holds several workspaces' triggers: a row is found by (workspace, trigger), never
    # by the trigger id alone, or one shop's email could show another shop's code
    store = CouponStore(pool)
    other = f"{workspace_id}-b"
    try:
        mine, theirs = await store.issue_unique_batch(
            [(issue(workspace_id, "trig-same"), "RT-MINE"), (issue(other, "trig-same"), "RT-THEIRS")]
        )
        assert isinstance(mine, Coupon) and (mine.workspace_id, mine.code) == (workspace_id, "RT-MINE")
        assert isinstance(theirs, Coupon) and (theirs.workspace_id, theirs.code) == (other, "RT-THEIRS")
    finally:
        await pool.execute("DELETE FROM coupons WHERE workspace_id = $1", other)


@pytest.mark.parametrize("bad", ["trig\x00nul", "trig\ud800"])
async def test_a_batch_postgresql_refuses_fails_whole_as_a_data_error_and_stores_nothing(
    pool, workspace_id, bad: str
) -> None:
    # the composer stores such a batch one by one only on a data error (retarget.common.poison):
    # what the real server answers must be one, or a NUL byte stalls the partition
    store = CouponStore(pool)
    with pytest.raises(Exception) as refused:
        await store.issue_unique_batch(
            [(issue(workspace_id, "trig-good"), "RT-GOOD"), (issue(workspace_id, bad), "RT-BAD")]
        )
    assert is_data_error(refused.value)
    assert await pool.fetchval("SELECT count(*) FROM coupons WHERE workspace_id = $1", workspace_id) == 0


async def test_racing_composers_never_share_a_pool_code(pool, workspace_id) -> None:
    codes = [f"SPRING-{n:03d}" for n in range(30)]
    uploaded = await CouponStore(pool).upload(workspace_id, "spring", [*codes, codes[0], "  ", ""])
    assert (uploaded.added, uploaded.duplicates) == (30, 1)
    triggers = [f"trig-{n}" for n in range(40)]

    async def claim(store: CouponStore, trigger_id: str) -> str | None:
        try:
            return (await store.claim_from_pool(issue(workspace_id, trigger_id), "spring")).code
        except PoolEmpty:
            return None

    # two composers (a store each, on the shared pool of connections), every trigger twice:
    # once by each, as after a rebalance that replays what the other was composing
    a, b = CouponStore(pool), CouponStore(pool)
    results = await asyncio.gather(*(claim(s, t) for t in triggers for s in (a, b)))
    by_trigger: dict[str, set[str | None]] = {}
    for (trigger_id, _), code in zip(((t, s) for t in triggers for s in "ab"), results, strict=True):
        by_trigger.setdefault(trigger_id, set()).add(code)
    handed_out = [code for found in by_trigger.values() for code in found if code is not None]
    assert sorted(handed_out) == sorted(codes)  # each code to exactly one trigger
    # a trigger that got a code got it on both tries; the rest found the pool empty
    assert sum(1 for found in by_trigger.values() if found == {None}) == 10
    assert all(len(found) == 1 for found in by_trigger.values()), by_trigger
    assert await CouponStore(pool).pool_free(workspace_id, "spring") == 0
    stored = await pool.fetchval(
        "SELECT count(*) FROM coupons WHERE workspace_id = $1 AND mode = 'pool'", workspace_id
    )
    assert stored == 30


async def test_redeem_once_then_same_order_again_then_refuse_another(pool, workspace_id) -> None:
    store = CouponStore(pool)
    await store.issue_unique(issue(workspace_id, "trig-r"), "RT-REDEEM")
    first = await store.redeem(workspace_id, "RT-REDEEM", "order-1", T0 + timedelta(days=1))
    assert first.outcome.redeem and first.coupon is not None and first.coupon.order_id == "order-1"
    again = await store.redeem(workspace_id, "RT-REDEEM", "order-1", T0 + timedelta(days=2))
    assert (again.outcome.redeem, again.outcome.refusal) == (False, None)
    assert again.coupon is not None and again.coupon.redeemed_at == T0 + timedelta(days=1)
    other = await store.redeem(workspace_id, "RT-REDEEM", "order-2", T0 + timedelta(days=2))
    assert other.outcome.refusal is Refusal.ALREADY_REDEEMED


async def test_concurrent_redemptions_for_different_orders_let_one_win(pool, workspace_id) -> None:
    store = CouponStore(pool)
    await store.issue_unique(issue(workspace_id, "trig-c"), "RT-RACE")
    done = await asyncio.gather(*(store.redeem(workspace_id, "RT-RACE", f"order-{n}", T0) for n in range(6)))
    assert sum(d.outcome.redeem for d in done) == 1
    assert sum(d.outcome.refusal is Refusal.ALREADY_REDEEMED for d in done) == 5


async def test_expiry_follows_the_time_given(pool, workspace_id) -> None:
    store = CouponStore(pool)
    await store.issue_unique(issue(workspace_id, "trig-e", days=1), "RT-EXPIRES")
    late = await store.redeem(workspace_id, "RT-EXPIRES", "o", T0 + timedelta(days=1))
    assert late.outcome.refusal is Refusal.EXPIRED
    assert (await store.find(workspace_id, "RT-EXPIRES")).redeemed_at is None  # type: ignore[union-attr]
    in_time = await store.redeem(workspace_id, "RT-EXPIRES", "o", T0 + timedelta(hours=23))
    assert in_time.outcome.redeem


async def test_another_workspaces_code_is_unknown(pool, workspace_id) -> None:
    store = CouponStore(pool)
    await store.issue_unique(issue(workspace_id, "trig-x"), "RT-MINE")
    stranger = f"ws-{uuid.uuid4().hex[:8]}"
    assert await store.find(stranger, "RT-MINE") is None
    refused = await store.redeem(stranger, "RT-MINE", "o", T0)
    assert (refused.coupon, refused.outcome.refusal) == (None, Refusal.UNKNOWN)
    assert (await store.find(workspace_id, "RT-MINE")).redeemed_at is None  # type: ignore[union-attr]
    assert (await store.redeem(workspace_id, "no such/code", None, T0)).outcome.refusal is Refusal.UNKNOWN


async def test_a_pool_code_some_email_already_shows_is_skipped(pool, workspace_id) -> None:
    store = CouponStore(pool)
    await store.issue_unique(issue(workspace_id, "trig-u"), "SHARED-1")
    await store.upload(workspace_id, "mixed", ["SHARED-1", "FREE-1"])
    claimed = await store.claim_from_pool(issue(workspace_id, "trig-p"), "mixed")
    assert claimed.code == "FREE-1"  # not a second owner for SHARED-1 (a stuck batch, forever)
    with pytest.raises(PoolEmpty):
        await store.claim_from_pool(issue(workspace_id, "trig-q"), "mixed")


async def test_a_claim_takes_only_its_own_pools_codes(pool, workspace_id) -> None:
    """A campaign's pool is the one it names: another pool of the workspace (other terms, other
    discount) is never drawn from, not even when its own pool is dry (atk17)."""
    store = CouponStore(pool)
    await store.upload(workspace_id, "vip", ["VIP-0001", "VIP-0002"])
    await store.upload(workspace_id, "spring", ["SPRING-ONLY"])
    assert (await store.claim_from_pool(issue(workspace_id), "spring")).code == "SPRING-ONLY"
    with pytest.raises(PoolEmpty):
        await store.claim_from_pool(issue(workspace_id), "spring")
    assert await store.pool_free(workspace_id, "vip") == 2
