"""The sender's reputation guard over a fake database: it pauses a workspace over a threshold
(once: the database says who paused it first), reads the pauses again before holding, so a
resume releases at once, and never holds a transactional campaign."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from prometheus_client import REGISTRY

from retarget.common import reputation_store as sql
from retarget.common.reputation import Thresholds
from retarget.common.testing import FakeClock
from retarget.sender.reputation_guard import ReputationGuard
from retarget.sender.testing import outbound


class FakeDb:
    """Answers the guard's statements: the window's counts, PRUNE, PAUSE, and the paused set."""

    def __init__(self, counts: list[dict[str, Any]] | None = None) -> None:
        self.counts = counts or []
        self.paused: dict[str, dict[str, Any]] = {}
        self.window_since: list[datetime] = []
        self.pruned_before: list[datetime] = []

    async def fetch(self, query: str, *args: Any) -> list[dict[str, Any]]:
        if query == sql.WINDOW:
            self.window_since.append(args[0])
            return self.counts
        assert query == sql.PAUSED
        return list(self.paused.values())

    async def execute(self, query: str, *args: Any) -> None:
        assert query == sql.PRUNE
        self.pruned_before.append(args[0])

    async def fetchval(self, query: str, *args: Any) -> Any:
        assert query == sql.PAUSE
        workspace_id, reason, detail, at = args
        if workspace_id in self.paused:
            return None
        self.paused[workspace_id] = {
            "workspace_id": workspace_id,
            "reason": reason,
            "detail": detail,
            "changed_at": at,
        }
        return workspace_id


def guard(db: FakeDb, **options: Any) -> ReputationGuard:
    clock = FakeClock(datetime(2026, 11, 29, 21, 30, tzinfo=UTC))
    return ReputationGuard(lambda: db, clock, Thresholds(min_sent=10), **options)


def counts(workspace_id: str, sent: int, complaints: int) -> dict[str, Any]:
    return {
        "workspace_id": workspace_id,
        "domain": "shop.example",
        "sent": sent,
        "hard_bounces": 0,
        "complaints": complaints,
    }


async def test_a_workspace_over_its_complaint_threshold_is_paused_and_its_mail_held(caplog: Any) -> None:
    db = FakeDb([counts("w-bad", 100, 1), counts("w-ok", 1000, 0)])
    g = guard(db)
    await g.check()
    assert db.window_since == [datetime(2026, 11, 28, 22, 0, tzinfo=UTC)]  # 24 hourly buckets
    assert db.pruned_before == [datetime(2026, 10, 29, 21, 30, tzinfo=UTC)]  # older than any window
    assert set(db.paused) == {"w-bad"} and db.paused["w-bad"]["reason"] == "complaint_rate"
    assert db.paused["w-bad"]["detail"] == "complaint rate 1.00% (1 of 100 sent, all domains)"
    assert REGISTRY.get_sample_value("retarget_workspace_paused", {"workspace": "w-bad"}) == 1
    assert [r.message for r in caplog.records].count(
        "workspace paused: its marketing mail is held until an operator resumes it"
    ) == 1
    bad, ok = outbound(workspace_id="w-bad"), outbound(workspace_id="w-ok")
    assert await g.held([bad, ok]) == {bad.message_id}


async def test_a_resume_elsewhere_releases_at_once_not_a_check_later() -> None:
    db = FakeDb()
    g = guard(db)
    db.paused["w-1"] = {
        "workspace_id": "w-1",
        "reason": "operator",
        "detail": "",
        "changed_at": datetime.now(UTC),
    }
    await g.refresh()
    message = outbound(workspace_id="w-1")
    assert await g.held([message]) == {message.message_id}
    del db.paused["w-1"]  # resumed by the CLI: this guard's own check is not due yet
    assert await g.held([message]) == set()
    assert REGISTRY.get_sample_value("retarget_workspace_paused", {"workspace": "w-1"}) is None


async def test_a_transactional_campaign_is_not_held() -> None:
    db = FakeDb()
    db.paused["w-1"] = {
        "workspace_id": "w-1",
        "reason": "operator",
        "detail": "",
        "changed_at": datetime.now(UTC),
    }
    g = guard(db, transactional=("receipt",))
    await g.refresh()
    receipt, cart = outbound(workspace_id="w-1", campaign="receipt"), outbound(workspace_id="w-1")
    assert await g.held([receipt, cart]) == {cart.message_id}
