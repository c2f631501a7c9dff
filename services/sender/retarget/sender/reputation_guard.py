"""The reputation guard in the sender: judges the rates, pauses, and holds a paused workspace's mail.

Every RETARGET_REPUTATION_CHECK_S it reads the window's counts of every workspace (PostgreSQL,
written by every sender process and ingest's mailbox), judges them
(retarget.common.reputation, pure) and pauses a workspace whose complaint or hard-bounce rate
reached its pause threshold; then it reads which workspaces are paused (by it, another sender
process or an operator). A marketing message of a paused workspace is **held**: postponed into
the retry queue with the reason `paused` (admission) or postponed again (retry loop) — never
sent, dropped or bounced, and its partition moves on, so other workspaces' mail is not stalled.
A resume (CLI, management API) makes the held messages due at once.

Before holding, the paused set is read again (one small query, only when a message of a
workspace believed paused is in hand), so a resume takes effect at once, not a check later.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from retarget.common.clock import Clock
from retarget.common.reputation import Level, Thresholds, describe, holds, judge, window_start
from retarget.common.reputation_store import Pause, pause, paused_workspaces, prune, window_counts
from retarget.common.schemas import OutboundMessage
from retarget.sender.metrics import WORKSPACE_PAUSED

log = logging.getLogger(__name__)


class ReputationGuard:
    def __init__(
        self,
        pool: Callable[[], Any],
        clock: Clock,
        thresholds: Thresholds,
        *,
        window_h: int = 24,
        check_s: float = 30.0,
        hold_s: float = 300.0,
        transactional: Iterable[str] = (),
    ) -> None:
        self._pool = pool  # a callable: the store's pool exists only after start()
        self.clock = clock
        self.thresholds = thresholds
        self.window = timedelta(hours=window_h)
        self.check_s = check_s
        self.hold = timedelta(seconds=hold_s)
        self.transactional = frozenset(transactional)
        self.paused: dict[str, Pause] = {}
        self._levels: dict[str, Level] = {}  # the last level logged per workspace: log changes only

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.check()
            except asyncio.CancelledError:
                raise
            except Exception:  # the last known pauses stay in force meanwhile
                log.exception("reputation check failed; trying again next check")
            try:
                await asyncio.wait_for(stop.wait(), self.check_s)
            except TimeoutError:
                pass

    async def check(self) -> None:
        """Judge every workspace's window, pause those over a threshold, read the paused set."""
        now = self.clock.now()
        counts = await window_counts(self._pool(), window_start(now, self.window))
        for workspace_id, per_domain in counts.items():
            verdict = judge(per_domain, self.thresholds)
            worst = verdict.worst
            if verdict.level == "pause" and worst is not None and workspace_id not in self.paused:
                if await pause(self._pool(), workspace_id, worst.kind, describe(worst), now):
                    log.warning(
                        "workspace paused: its marketing mail is held until an operator resumes it",
                        extra={"workspace_id": workspace_id, "reason": worst.kind, "detail": describe(worst)},
                    )
            elif verdict.level == "warn" and worst is not None and self._levels.get(workspace_id) != "warn":
                log.warning(
                    "workspace reputation near its pause threshold",
                    extra={"workspace_id": workspace_id, "reason": worst.kind, "detail": describe(worst)},
                )
            self._levels[workspace_id] = verdict.level
        await prune(self._pool(), now)  # the table stays bounded
        await self.refresh()

    async def refresh(self) -> None:
        paused = await paused_workspaces(self._pool())
        for gone in set(self.paused) - set(paused):
            WORKSPACE_PAUSED.remove(gone)
        for workspace_id in paused:
            WORKSPACE_PAUSED.labels(workspace_id).set(1)
        self.paused = paused

    async def held(self, messages: Sequence[OutboundMessage]) -> set[str]:
        """The message ids to hold: marketing mail of workspaces paused right now."""
        if not any(self._holds(m) for m in messages):
            return set()
        await self.refresh()  # a resume since the last check must release them, not hold them again
        return {m.message_id for m in messages if self._holds(m)}

    def until(self, now: datetime) -> datetime:
        return now + self.hold

    def _holds(self, message: OutboundMessage) -> bool:
        return message.workspace_id in self.paused and holds(message.campaign, self.transactional)
