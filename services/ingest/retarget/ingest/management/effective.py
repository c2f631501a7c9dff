"""What a workspace sees: the bundled defaults, overridden by its own versions of the same
name, hidden by its deletions (docs/management.md, "defaults inherited"). Pure rules."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from retarget.config.records import ConfigChange


def change_view(change: ConfigChange) -> dict[str, Any]:
    return {
        "name": change.name,
        "kind": change.kind,
        "source": "workspace",
        "version": change.version,
        "deleted": change.deleted,
        "body": change.body,
        "author": change.author,
        "changed_at": change.changed_at.isoformat(),
    }


def default_view(kind: str, name: str, body: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "kind": kind,
        "source": "default",
        "version": None,
        "deleted": False,
        "body": dict(body),
    }


def effective(
    kind: str, own: Iterable[ConfigChange], bundled: Mapping[str, Mapping[str, Any]]
) -> dict[str, dict[str, Any]]:
    """name -> view of each object the workspace has now (deleted ones left out)."""
    mine = {change.name: change for change in own}
    views: dict[str, dict[str, Any]] = {}
    for name in sorted(set(mine) | set(bundled)):
        change = mine.get(name)
        if change is None:
            views[name] = default_view(kind, name, bundled[name])
        elif not change.deleted:
            views[name] = change_view(change)
    if kind == "campaign":
        for view in views.values():
            view["enabled"] = (view["body"] or {}).get("enabled", True) is not False
    return views
