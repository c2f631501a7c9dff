"""What the sender takes from the configuration feed (retarget.config.follower.ConfigFollower).

* `dkim` records: the workspaces' DKIM keys (dkim_feed.py reads them at signing time);
* `policy` and `identity` records: the workspace's policy is dropped from the PolicyCache at
  once, so the next message loads the new one (the service wrote the tables the cache reads
  before it published the record); the cache's TTL stays as the fallback.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

from retarget.config.records import ConfigChange, Kind
from retarget.sender.policies import PolicyCache

log = logging.getLogger(__name__)

FEED_KINDS: tuple[Kind, ...] = ("dkim", "policy", "identity")


class ConfigFeed(Protocol):
    """retarget.config.follower.ConfigFollower, or its fake (retarget.config.testing)."""

    ready: bool
    applied_offset: int

    def subscribe(self, callback: Callable[[ConfigChange], None]) -> None: ...
    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    def of_workspace(self, workspace_id: str, kind: Kind) -> list[ConfigChange]: ...
    def of_kind(self, kind: Kind) -> list[ConfigChange]: ...


def policy_invalidator(cache: PolicyCache) -> Callable[[ConfigChange], None]:
    def on_change(change: ConfigChange) -> None:
        if change.kind in ("policy", "identity"):
            cache.drop(change.workspace_id)

    return on_change


def warn_if_keys_stay_sealed(feed: ConfigFeed, seal_key: bytes | None, problem: str) -> None:
    """At start: workspaces with DKIM keys and no seal key get their mail deferred; say so once, and why."""
    if seal_key is not None:
        return
    workspaces = sorted({c.workspace_id for c in feed.of_kind("dkim") if not c.deleted})
    if workspaces:
        log.error(
            "DKIM keys on the config feed can't be opened: their workspaces' mail is deferred until "
            "the seal key is given",
            extra={"workspaces": workspaces[:20], "problem": problem},
        )
