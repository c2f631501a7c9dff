"""Workspace sending policies from PostgreSQL, cached for a few seconds.

One query loads every workspace of a batch that is not cached: its timezone and DKIM
selectors (workspaces), quiet hours and rate (sending_policies) and caps (frequency_caps).
Anything a workspace does not set takes the sender's defaults. A change is picked up at once when
its `policy` or `identity` record arrives on the configuration feed (`drop`), and within
RETARGET_POLICY_CACHE_S otherwise (the fallback, e.g. a table edited by hand).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

import orjson

from retarget.sender.policy import (
    ANY_CAMPAIGN,
    CapRule,
    QuietHours,
    Rate,
    SendingPolicy,
    parse_selectors,
)

_LOAD = """
SELECT k.id, w.id IS NOT NULL AS known, w.timezone, w.dkim_selector, w.consent_mode,
       p.quiet_start, p.quiet_end, p.rate_per_s, p.rate_burst,
       (SELECT json_agg(json_build_array(c.campaign, c.max_messages, c.window_s))
        FROM frequency_caps c WHERE c.workspace_id = k.id) AS caps
FROM unnest($1::text[]) AS k (id)
LEFT JOIN workspaces w ON w.id = k.id
LEFT JOIN sending_policies p ON p.workspace_id = k.id
"""


class PolicySource(Protocol):
    async def load(self, workspace_ids: Sequence[str]) -> dict[str, SendingPolicy]: ...


@dataclass(frozen=True)
class PolicyDefaults:
    caps: tuple[CapRule, ...]
    quiet_hours: QuietHours | None


def policy_from_row(row: Any, defaults: PolicyDefaults) -> SendingPolicy:
    caps = [CapRule(int(m), float(w), c) for c, m, w in orjson.loads(row["caps"] or "[]")]
    # A workspace's own recipient-wide caps replace the defaults; campaign caps add to them.
    if not any(c.campaign == ANY_CAMPAIGN for c in caps):
        caps = list(defaults.caps) + caps
    quiet = defaults.quiet_hours
    if row["quiet_start"] is not None:
        start, end = row["quiet_start"], row["quiet_end"]
        quiet = None if start == end else QuietHours(start, end)
    rate = Rate(float(row["rate_per_s"]), int(row["rate_burst"])) if row["rate_per_s"] is not None else None
    return SendingPolicy(
        workspace_id=row["id"],
        timezone=row["timezone"] or "UTC",
        caps=tuple(caps),
        quiet_hours=quiet,
        rate=rate,
        dkim_selectors=parse_selectors(row["dkim_selector"]),
        known=bool(row["known"]),
        consent_mode=row["consent_mode"] or "opt_out",
    )


class PostgresPolicySource:
    def __init__(self, pool: Callable[[], Any], defaults: PolicyDefaults) -> None:
        self._pool = pool  # a callable, because the store's pool exists only after start()
        self.defaults = defaults

    async def load(self, workspace_ids: Sequence[str]) -> dict[str, SendingPolicy]:
        rows = await self._pool().fetch(_LOAD, list(workspace_ids))
        return {r["id"]: policy_from_row(r, self.defaults) for r in rows}


class StaticPolicySource:
    """Every workspace gets `policy` (tests, benchmarks); `overrides` by workspace id."""

    def __init__(self, policy: SendingPolicy, overrides: dict[str, SendingPolicy] | None = None) -> None:
        self.policy = policy
        self.overrides = overrides or {}
        self.loads = 0

    async def load(self, workspace_ids: Sequence[str]) -> dict[str, SendingPolicy]:
        self.loads += 1
        return {ws: self.overrides.get(ws) or replace(self.policy, workspace_id=ws) for ws in workspace_ids}


class PolicyCache:
    def __init__(self, source: PolicySource, ttl_s: float, monotonic: Callable[[], float] = time.monotonic):
        self.source = source
        self.ttl_s = ttl_s
        self.monotonic = monotonic
        self._cached: dict[str, tuple[float, SendingPolicy]] = {}
        self._dropped: Counter[str] = Counter()  # drop() calls per workspace

    async def get_many(self, workspace_ids: Sequence[str]) -> dict[str, SendingPolicy]:
        now = self.monotonic()
        wanted = set(workspace_ids)
        stale = [ws for ws in wanted if ws not in self._cached or now - self._cached[ws][0] >= self.ttl_s]
        if stale:
            dropped = {ws: self._dropped[ws] for ws in stale}
            loaded = await self.source.load(stale)
            for ws, policy in loaded.items():
                # a change that arrived while the query ran may be newer than its answer: use it, don't keep it
                if self._dropped[ws] == dropped.get(ws, self._dropped[ws]):
                    self._cached[ws] = (now, policy)
            return {ws: loaded[ws] if ws in loaded else self._cached[ws][1] for ws in wanted}
        return {ws: self._cached[ws][1] for ws in wanted}

    def drop(self, workspace_id: str) -> None:
        """Forget a workspace's policy: its next message loads it again (it changed)."""
        self._cached.pop(workspace_id, None)
        self._dropped[workspace_id] += 1
