"""Each workspace's campaigns: the bundled defaults overridden by name by the workspace's own
`campaign` records from the change feed (docs/management.md).

A workspace without records shares the defaults' CampaignSet; one with records gets its own,
rebuilt only when one of its records changes, so the hot path's lookup is one dict access
whatever the number of workspaces. A record with `deleted: true`, or whose body says
`enabled: false`, hides the default of that name. Waits get the deployment's
RETARGET_WAIT_SCALE and RETARGET_CAMPAIGN_WAITS like the defaults (tests and the demo run a
4 h wait in seconds). A record that doesn't validate (the writer validates, so it should not
happen) is logged and ignored: the workspace keeps the previous version of that campaign.

`changed_since_sweep` names the workspaces whose waits got shorter or whose campaigns went
away while the worker ran: the timer re-checks their waiting profiles (live_changes.py).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Protocol

from pydantic import ValidationError

from retarget.config.schemas import PolicyBody
from retarget.segmenter.campaign_schema import CampaignFile, parse_duration
from retarget.segmenter.campaigns import Campaign, CampaignSet, invalid_field

log = logging.getLogger(__name__)


class CampaignRecord(Protocol):
    """What the registry reads of a feed record (retarget.config.records.ConfigChange)."""

    workspace_id: str
    kind: str
    name: str
    version: int
    deleted: bool
    body: Mapping[str, Any] | None
    changed_at: datetime


@dataclass(frozen=True)
class Hidden:
    """A workspace's record that hides the default of its name; `reason` labels the cancellations."""

    reason: str


class CampaignRegistry:
    def __init__(
        self,
        defaults: Iterable[Campaign],
        *,
        wait_scale: float = 1.0,
        waits: Mapping[str, str | float] | None = None,
    ) -> None:
        self._wait_scale = wait_scale
        self._waits = {name: parse_duration(w) for name, w in (waits or {}).items()}
        self.defaults = CampaignSet.of(self._scaled(c) for c in defaults if c.enabled)
        self._own: dict[str, dict[str, Campaign | Hidden]] = {}  # workspace -> name -> its record
        self._sets: dict[str, CampaignSet] = {}  # only workspaces with records of their own
        self._global: dict[str, float] = {}  # workspace -> its policy's global_holdout
        self.changed_since_sweep: set[str] = set()
        self.sweeping = False  # set once the feed was read to its end: changes are then live

    def campaigns_for(self, workspace_id: str) -> CampaignSet:
        return self._sets.get(workspace_id, self.defaults)

    def __call__(self, workspace_id: str) -> CampaignSet:
        return self.campaigns_for(workspace_id)

    def __len__(self) -> int:
        return len(self._sets)

    def on_change(self, record: CampaignRecord) -> None:
        """A follower's callback: one applied record (the newest version of its key)."""
        if record.kind == "policy":
            self._on_policy(record)
            return
        if record.kind != "campaign":
            return
        entry = self._parse(record)
        if entry is None:
            return  # logged; the previous version stays
        workspace = record.workspace_id
        self._own.setdefault(workspace, {})[record.name] = entry
        before = self.campaigns_for(workspace)
        after = self._build(workspace)
        self._sets[workspace] = after
        if self.sweeping and needs_sweep(before, after):
            self.changed_since_sweep.add(workspace)

    def _on_policy(self, record: CampaignRecord) -> None:
        """The workspace's global control group (its policy's `global_holdout`, 0 when deleted)."""
        try:
            policy = PolicyBody() if record.deleted else PolicyBody.model_validate(record.body or {})
        except ValidationError as exc:
            self._ignored(record, invalid_field(exc))
            return
        workspace = record.workspace_id
        self._global[workspace] = policy.global_holdout
        self._own.setdefault(workspace, {})
        self._sets[workspace] = self._build(workspace)

    def _parse(self, record: CampaignRecord) -> Campaign | Hidden | None:
        if record.deleted:
            return Hidden("campaign deleted")
        body = dict(record.body or {})
        body.setdefault("name", record.name)
        try:
            spec = CampaignFile.model_validate(body)
        except ValidationError as exc:
            self._ignored(record, invalid_field(exc))
            return None
        if spec.name != record.name:
            self._ignored(record, f"field name: {spec.name!r} is not the record's {record.name!r}")
            return None
        if not spec.enabled:
            return Hidden("campaign disabled")
        return replace(self._scaled(Campaign.from_file(spec)), changed_at=record.changed_at)

    def _ignored(self, record: CampaignRecord, reason: str) -> None:
        log.error(
            "ignored an invalid campaign record; the previous version stays",
            extra={
                "workspace": record.workspace_id,
                "campaign": record.name,
                "version": record.version,
                "reason": reason,
            },
        )

    def _build(self, workspace_id: str) -> CampaignSet:
        own = self._own[workspace_id]
        merged = {c.name: c for c in self.defaults}
        for name, entry in own.items():
            if isinstance(entry, Hidden):
                merged.pop(name, None)
            else:
                merged[name] = entry
        removed = {name: e.reason for name, e in own.items() if isinstance(e, Hidden)}
        return CampaignSet.of(
            merged.values(), removed=removed, global_holdout=self._global.get(workspace_id, 0.0)
        )

    def _scaled(self, campaign: Campaign) -> Campaign:
        wait = self._waits.get(campaign.name, campaign.wait * self._wait_scale)
        return replace(campaign, wait=wait)


def needs_sweep(before: CampaignSet, after: CampaignSet) -> bool:
    """Whether waiting profiles must be re-checked now: a wait got shorter (due earlier than the
    due index says) or a campaign went away (its waits are cancelled). A longer wait needs no
    sweep: the old due time comes first and the re-check then finds the later one."""
    for name, old in before.by_name.items():
        new = after.by_name.get(name)
        if new is None or new.wait < old.wait:
            return True
    return False
