"""Where a workspace's templates come from: its own `template` records (the config feed)
over the bundled folder, and nothing of any other workspace.

A template record's body is {"subject", "html", "text"}; the files a campaign renders are
`NAME.subject.txt`, `NAME.html` and `NAME.txt`, so each file maps to one body field. A
workspace sees the bundled template of a name until it applies its own; a deleted record
(deleted=true) hides the bundled one. The layouts (`base.html`, `base.txt`, `_blocks.html`)
are always the bundled ones, shared by every workspace.

Isolation: inside Jinja a template is known by a *namespaced* name, `workspace␟version␟file`.
Every `{% extends %}`, `{% include %}` and `{% import %}` goes through `join_path`, which
puts the including template's workspace in front of the name asked for, so a template can
only ever reach its own workspace's files (or the layouts): a name naming another workspace
becomes a file name that does not exist. The version in the name keys Jinja's cache, so a
new version is compiled on first use and the old one ages out.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal, Protocol

import jinja2

LAYOUTS = frozenset({"base.html", "base.txt", "_blocks.html"})
FIELDS = {"subject.txt": "subject", "html": "html", "txt": "text"}  # file suffix -> body field
TEMPLATE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_FILE = re.compile(r"^([a-z0-9][a-z0-9_-]{0,63})\.(subject\.txt|html|txt)$")
_SEP = "\x1f"  # never in a workspace id (PostgreSQL text from the API) nor in a file name above
BUNDLED = 0  # the version of a bundled template; the feed's versions start at 1


class TemplateRecord(Protocol):
    """What the composer reads of a retarget.config.records.ConfigChange."""

    @property
    def version(self) -> int: ...
    @property
    def deleted(self) -> bool: ...
    @property
    def body(self) -> Mapping[str, Any] | None: ...


class TemplateRecords(Protocol):
    """The current records (retarget.config.follower.ConfigFollower has this method)."""

    def current(
        self, workspace_id: str, kind: Literal["template"], name: str = ""
    ) -> TemplateRecord | None: ...


def namespaced(workspace_id: str, version: int | None, file: str) -> str:
    return f"{workspace_id}{_SEP}{version}{_SEP}{file}"


class WorkspaceLoader(jinja2.BaseLoader):
    """Serves each workspace its own templates, the bundled ones it did not replace, and the
    bundled layouts; a name without a workspace gets the bundled files only."""

    def __init__(self, bundled: Path, records: TemplateRecords | None = None) -> None:
        self._bundled = jinja2.FileSystemLoader(str(bundled))
        self.records = records

    def version(self, workspace_id: str, name: str) -> int | None:
        """The version of template `name` a render uses now: BUNDLED, a record's, or None
        when the workspace deleted it."""
        record = self._record(workspace_id, name)
        if record is None:
            return BUNDLED
        return None if record.deleted else record.version

    def join_path(self, template: str, parent: str) -> str:
        """The name `template` means inside `parent`: in the parent's workspace, always."""
        if template in LAYOUTS:
            return template
        workspace_id, sep, _ = parent.partition(_SEP)
        if not sep:  # asked from a layout: the bundled files only
            return template
        match = _FILE.match(template)
        return namespaced(workspace_id, self.version(workspace_id, match[1]) if match else None, template)

    def get_source(
        self, environment: jinja2.Environment, template: str
    ) -> tuple[str, str | None, Callable[[], bool] | None]:
        if template in LAYOUTS:
            return self._bundled.get_source(environment, template)
        parts = template.split(_SEP)
        workspace_id, rest = (parts[0], parts[2]) if len(parts) == 3 else ("", parts[-1])
        match = _FILE.match(rest)
        if match is None or len(parts) not in (1, 3):
            raise jinja2.TemplateNotFound(rest)  # another workspace's name, a path, a layout's sibling
        record = self._record(workspace_id, match[1])
        if record is None:
            return self._bundled.get_source(environment, rest)
        source = (record.body or {}).get(FIELDS[match[2]]) if not record.deleted else None
        if not source:
            raise jinja2.TemplateNotFound(rest)
        return source, rest, _always_current  # a new version gets a new name, never a reload

    def _record(self, workspace_id: str, name: str) -> TemplateRecord | None:
        if not workspace_id or self.records is None:
            return None
        return self.records.current(workspace_id, "template", name)


def _always_current() -> bool:
    return True
