"""Campaigns: loaded from YAML files at start, validated, and indexed by event name.

A file that doesn't validate stops the start with the file, the field and the reason
(`CampaignError`), so a typo never becomes a campaign that silently never fires. Waits
come from the file, then `wait_scale`, then a per-campaign override, so tests and the demo
run a 4 h wait in seconds without editing the product's files.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from retarget.config.experiment_schema import Variant
from retarget.segmenter.campaign_schema import (
    CampaignFile,
    Conditions,
    Count,
    EventMatch,
    PropertyTest,
    parse_duration,
)


class CampaignError(ValueError):
    """A campaign file is wrong; the message says which file, which field and why."""


@dataclass(frozen=True)
class Campaign:
    name: str
    template: str
    entry: EventMatch
    wait: timedelta
    count: Count | None = None
    restart_on_entry: bool = True
    exits: tuple[EventMatch, ...] = ()
    conditions: Conditions = field(default_factory=Conditions)
    cooldown: timedelta = timedelta(0)
    snapshot: frozenset[str] = frozenset()
    incentive: Mapping[str, Any] = field(default_factory=dict)
    data: Mapping[str, Any] = field(default_factory=dict)
    emit_on_due: str | None = None
    description: str = ""
    enabled: bool = True
    changed_at: datetime | None = None  # when the workspace's version was written (None: bundled)
    max_delay: timedelta | None = None  # set: send at the person's best hour within it (send_time.py)
    variants: tuple[Variant, ...] = ()  # A/B arms; none: one arm, "default"
    holdout: float = 0.0  # the share held out as the control group (0.1 for "10%")

    @classmethod
    def from_file(cls, spec: CampaignFile) -> Campaign:
        return cls(
            name=spec.name,
            template=spec.template or spec.name,
            entry=EventMatch(event=spec.entry.event, where=spec.entry.where),
            wait=spec.wait,
            count=spec.entry.count,
            restart_on_entry=spec.restart_wait_on_entry,
            exits=tuple(spec.exit),
            conditions=spec.conditions,
            cooldown=spec.cooldown,
            snapshot=frozenset(spec.snapshot),
            incentive=dict(spec.incentive),
            data=dict(spec.data),
            emit_on_due=spec.emit_on_due,
            description=spec.description,
            enabled=spec.enabled,
            max_delay=spec.max_delay,  # set only with send_time: optimal (the file says so)
            variants=tuple(spec.variants),
            holdout=spec.holdout,
        )


@dataclass(frozen=True)
class CampaignSet:
    """All campaigns, with the lookups the hot path needs (by event name, by campaign name)."""

    campaigns: tuple[Campaign, ...]
    by_name: Mapping[str, Campaign]
    by_entry: Mapping[str, tuple[Campaign, ...]]
    by_exit: Mapping[str, tuple[Campaign, ...]]
    # names a workspace deleted or disabled -> the reason its pending waits are cancelled with
    removed: Mapping[str, str] = field(default_factory=dict)
    global_holdout: float = 0.0  # the workspace's policy: share held out of every campaign

    @classmethod
    def of(
        cls,
        campaigns: Iterable[Campaign],
        *,
        removed: Mapping[str, str] | None = None,
        global_holdout: float = 0.0,
    ) -> CampaignSet:
        items = tuple(campaigns)
        by_entry: dict[str, list[Campaign]] = {}
        by_exit: dict[str, list[Campaign]] = {}
        for c in items:
            by_entry.setdefault(c.entry.event, []).append(c)
            # once per exit event: a set of the events, not `c not in` a list (deep equality
            # with every campaign of that event: cubic over a workspace's records at start)
            for event in dict.fromkeys(e.event for e in c.exits):
                by_exit.setdefault(event, []).append(c)
        return cls(
            campaigns=items,
            by_name={c.name: c for c in items},
            by_entry={k: tuple(v) for k, v in by_entry.items()},
            by_exit={k: tuple(v) for k, v in by_exit.items()},
            removed=dict(removed or {}),
            global_holdout=global_holdout,
        )

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.campaigns)


def load_campaign_file(path: Path) -> Campaign:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise CampaignError(f"{path}: not readable YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise CampaignError(f"{path}: the file must hold one mapping (name, entry, wait, ...)")
    try:
        spec = CampaignFile.model_validate(raw)
    except ValidationError as exc:
        raise CampaignError(f"{path}: {invalid_field(exc)}") from exc
    if spec.name != path.stem:
        raise CampaignError(f"{path}: field name: {spec.name!r} must match the file name {path.stem!r}")
    return Campaign.from_file(spec)


def invalid_field(exc: ValidationError) -> str:
    """'field entry.count.within: <why>': the first error, and how many more."""
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "(file)"
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"field {where}: {first['msg']}{more}"


def load_campaigns(
    folder: Path, *, wait_scale: float = 1.0, waits: Mapping[str, str | float] | None = None
) -> CampaignSet:
    """Every enabled *.yaml in `folder`, with the waits scaled and overridden."""
    return with_waits(read_campaign_files(folder), wait_scale=wait_scale, waits=waits or {})


def read_campaign_files(folder: Path) -> list[Campaign]:
    """Every enabled *.yaml in `folder`, as written (waits not scaled)."""
    if not folder.is_dir():
        raise CampaignError(f"{folder}: campaigns folder not found; set RETARGET_CAMPAIGNS_DIR")
    campaigns = (load_campaign_file(path) for path in sorted(folder.glob("*.yaml")))
    return [c for c in campaigns if c.enabled]


def with_waits(
    campaigns: Iterable[Campaign], *, wait_scale: float, waits: Mapping[str, str | float]
) -> CampaignSet:
    items = [replace(c, wait=c.wait * wait_scale) for c in campaigns]
    names = {c.name for c in items}
    unknown = sorted(set(waits) - names)
    if unknown:
        raise CampaignError(f"wait override for unknown campaign(s) {unknown}; known: {sorted(names)}")
    try:
        items = [replace(c, wait=parse_duration(waits[c.name])) if c.name in waits else c for c in items]
    except ValueError as exc:
        raise CampaignError(f"RETARGET_CAMPAIGN_WAITS: {exc}") from exc
    return CampaignSet.of(items)


def matches(match: EventMatch, properties: Mapping[str, Any]) -> bool:
    """Whether an event's properties pass every test in `where` (dotted names reach into objects)."""
    return all(_passes(test, _lookup(properties, name)) for name, test in match.where.items())


_MISSING = object()


def _lookup(properties: Mapping[str, Any], name: str) -> Any:
    value: Any = properties
    for part in name.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return _MISSING
        value = value[part]
    return value


def _passes(test: PropertyTest, value: Any) -> bool:
    present = value is not _MISSING and value is not None
    if test.exists is not None and present != test.exists:
        return False
    if not present:  # only "not equal" kinds of tests pass on a missing property
        return all(t is None for t in (test.eq, test.in_, test.gt, test.gte, test.lt, test.lte))
    if test.eq is not None and value != test.eq:
        return False
    if test.ne is not None and value == test.ne:
        return False
    if test.in_ is not None and value not in test.in_:
        return False
    if test.not_in is not None and value in test.not_in:
        return False
    bounds = [
        (test.gt, float.__gt__),
        (test.gte, float.__ge__),
        (test.lt, float.__lt__),
        (test.lte, float.__le__),
    ]
    if any(b is not None for b, _ in bounds):
        number = _number(value)
        if number is None:
            return False
        return all(op(number, b) for b, op in bounds if b is not None)
    return True


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None
