"""What a reader of the change feed knows: the highest version of each object.

Pure: the follower and its fake both keep one. Versions come from one PostgreSQL sequence,
so "larger is newer" holds across objects, and a republished older record (the relay, a
producer retry) can never undo a newer one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection

from retarget.config.records import ConfigChange, Kind

log = logging.getLogger(__name__)


class ConfigState:
    def __init__(self, kinds: Collection[Kind] | None = None) -> None:
        self._kinds = frozenset(kinds) if kinds is not None else None
        # kind -> workspace -> name -> newest change (deleted markers included)
        self._objects: dict[str, dict[str, dict[str, ConfigChange]]] = {}

    def wants(self, change: ConfigChange) -> bool:
        return self._kinds is None or change.kind in self._kinds

    def apply(self, change: ConfigChange) -> bool:
        """Keep `change` if it is newer than what is known of its object; True when kept."""
        if not self.wants(change):
            return False
        names = self._objects.setdefault(change.kind, {}).setdefault(change.workspace_id, {})
        known = names.get(change.name)
        if known is not None and known.version >= change.version:
            return False
        names[change.name] = change
        return True

    def current(self, workspace_id: str, kind: Kind, name: str = "") -> ConfigChange | None:
        return self._objects.get(kind, {}).get(workspace_id, {}).get(name)

    def of_workspace(self, workspace_id: str, kind: Kind) -> list[ConfigChange]:
        names = self._objects.get(kind, {}).get(workspace_id, {})
        return [names[name] for name in sorted(names)]

    def of_kind(self, kind: Kind) -> list[ConfigChange]:
        workspaces = self._objects.get(kind, {})
        return [change for ws in sorted(workspaces) for change in self.of_workspace(ws, kind)]


Subscriber = Callable[[ConfigChange], None]


def notify(subscribers: list[Subscriber], change: ConfigChange) -> None:
    """Call each subscriber; one that raises is logged and neither stops the others nor the feed."""
    for callback in subscribers:
        try:
            callback(change)
        except Exception:
            log.exception(
                "config subscriber failed",
                extra={
                    "workspace_id": change.workspace_id,
                    "kind": change.kind,
                    "config_name": change.name,
                    "version": change.version,
                },
            )
