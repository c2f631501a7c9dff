"""The check a template body passes before it is stored (the management API and the CLI call
it through retarget.config.validation), so a broken template is refused at the door instead
of dead-lettering every trigger that needs it.

`check(name, body)` returns the normalised body {"subject", "html", "text"} or raises
ValueError naming the field and, for template errors, the line: "field html: line 3: …".
Checked: the shape (subject required, one line; html or text required; no other field; size
limits), then a compile in the composer's own sandboxed environment (a syntax error, an
unknown filter or test), then a render of the whole message for a sample profile through the
real compose path, so StrictUndefined catches a misspelt variable. A template that reads a
trigger field the sample does not have (custom `data`) must guard it with `is defined`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

import msgspec

from retarget.common.clock import SystemClock
from retarget.common.workspaces import Workspace
from retarget.composer.compose import Composed, ComposeFailed, Composer
from retarget.composer.environment import make_environment
from retarget.composer.render import CampaignTemplates, TemplateFailed
from retarget.composer.samples import SAMPLE_DATA, SAMPLE_WORKSPACE, sample_trigger
from retarget.composer.template_source import FIELDS, LAYOUTS, TEMPLATE_NAME, TemplateRecord, TemplateRecords

MAX_SUBJECT = 1_000  # characters of template source
MAX_BODY = 100_000  # characters of template source, for html and for text
PREVIEW_KEY = b"preview-only-not-a-real-key"  # no service holds it: a preview's links never verify
PREVIEW_URL = "https://preview.invalid"  # RFC 2606: a preview's tracked links lead nowhere
_RESERVED = {name.split(".")[0] for name in LAYOUTS}  # "base": its files are the layouts
# a template of any name renders against every sample field, so it may use any of them
_EVERY_SAMPLE_FIELD: dict[str, Any] = {
    "cart": SAMPLE_DATA["abandoned_cart"]["cart"],
    "incentive": SAMPLE_DATA["abandoned_cart"]["incentive"],
    "data": {key: value for sample in SAMPLE_DATA.values() for key, value in sample.get("data", {}).items()},
}


def check(name: str, body: Mapping[str, Any]) -> dict[str, str | None]:
    """The normalised body, or ValueError("field F: line N: what is wrong")."""
    normalised = check_shape(name, body)
    try:
        compose_draft(SAMPLE_WORKSPACE, name, normalised, None)
    except ComposeFailed as exc:
        raise ValueError(describe(name, exc)) from exc
    return normalised


def check_shape(name: str, body: Mapping[str, Any]) -> dict[str, str | None]:
    if not TEMPLATE_NAME.match(name) or name in _RESERVED:
        raise ValueError(f"name: {name!r} is not a template name (a-z, 0-9, _ and -, at most 64; not 'base')")
    if not isinstance(body, Mapping):
        raise ValueError("body: an object with subject, html and text")
    unknown = sorted(set(body) - {"subject", "html", "text"})
    if unknown:
        raise ValueError(f"field {unknown[0]}: unknown (a template has subject, html and text)")
    normalised: dict[str, str | None] = {}
    for field, limit in (("subject", MAX_SUBJECT), ("html", MAX_BODY), ("text", MAX_BODY)):
        value = body.get(field)
        if value is not None and not isinstance(value, str):
            raise ValueError(f"field {field}: a string or null, not {type(value).__name__}")
        if value is not None and len(value) > limit:
            raise ValueError(f"field {field}: {len(value):,} characters, more than {limit:,}")
        normalised[field] = value if value and value.strip() else None
    subject = normalised["subject"]
    if subject is None:
        raise ValueError("field subject: required")
    if "\n" in subject.strip() or "\r" in subject.strip():
        raise ValueError("field subject: line 2: the subject is one line")
    if normalised["html"] is None and normalised["text"] is None:
        raise ValueError("field html: html or text is required")
    return normalised


def compose_draft(
    workspace: Workspace,
    name: str,
    body: Mapping[str, Any] | None,
    profile: Mapping[str, Any] | None,
    records: TemplateRecords | None = None,
) -> Composed:
    """The whole message for a sample (or the given) profile, through the real compose path,
    with `body` as the workspace's current version of `name` (None: its current one in
    `records`, else the bundled one). Links are signed with PREVIEW_KEY under PREVIEW_URL."""
    source = _Draft(workspace.id, name, body, records) if body is not None else records
    composer = Composer(
        CampaignTemplates(make_environment(None, source), cache_size=1),
        SystemClock(),
        link_secret=PREVIEW_KEY,
        public_url=PREVIEW_URL,
        link_ttl=timedelta(days=60),
    )
    sample = {} if name in SAMPLE_DATA else _EVERY_SAMPLE_FIELD
    trigger = sample_trigger(name, {**sample, **(profile or {})})
    return composer.compose(msgspec.structs.replace(trigger, workspace_id=workspace.id), workspace)


def describe(name: str, exc: ComposeFailed) -> str:
    """ "field html: line 3: 'cart' is undefined" for a template error; the reason otherwise."""
    failure = exc.__cause__
    if not isinstance(failure, TemplateFailed):
        return str(exc)
    own = re.findall(rf"\b{re.escape(name)}\.(subject\.txt|html|txt):(\d+|\?)", failure.location)
    suffix, line = own[-1] if own else (failure.part.removeprefix(f"{name}."), "?")
    field = FIELDS.get(suffix, "template")
    return f"field {field}: line {line}: {failure.detail}"


@dataclass(frozen=True)
class _DraftRecord:
    body: Mapping[str, Any]
    version: int = 2**62  # newer than any stored version: a distinct cache name
    deleted: bool = False


@dataclass(frozen=True)
class _Draft:
    """`records` with one template replaced by a draft."""

    workspace_id: str
    name: str
    body: Mapping[str, Any]
    records: TemplateRecords | None

    def current(self, workspace_id: str, kind: Literal["template"], name: str = "") -> TemplateRecord | None:
        if (workspace_id, name) == (self.workspace_id, self.name):
            return _DraftRecord(self.body)
        return self.records.current(workspace_id, kind, name) if self.records else None
