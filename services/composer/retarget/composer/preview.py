"""Preview a template as a workspace's recipient would get it: the management API's
`POST …/templates/{name}/preview` calls render_preview.

The message goes through the real compose path (context, sandbox, link rewriting, text from
HTML), so what the preview shows is what would be sent. Its links are signed with a
preview-only key under https://preview.invalid, which no service accepts: clicking the
unsubscribe link of a preview made for a real profile can't unsubscribe anyone.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from retarget.common.workspaces import Workspace
from retarget.composer.compose import ComposeFailed
from retarget.composer.template_check import check, compose_draft, describe
from retarget.composer.template_source import TemplateRecords


def render_preview(
    workspace: Workspace,
    template_name: str,
    body: Mapping[str, Any] | None,
    profile: Mapping[str, Any] | None,
    *,
    records: TemplateRecords | None = None,
) -> dict[str, str | None]:
    """{"subject", "html", "text", "message"} of template `template_name` for `profile` (a sample one
    when None: retarget.composer.samples), rendered from the draft `body`, or when None from
    the workspace's current version in `records` (a ConfigFollower), else the bundled one.
    `profile` has any of recipient, cart, incentive, data. "html" is None for a text-only
    template; "message" is the complete RFC 5322 message the sender would get (what
    spam_score scores). Raises ValueError naming the field and line ("field html: line 3: …")."""
    draft = check(template_name, body) if body is not None else None
    try:
        composed = compose_draft(workspace, template_name, draft, profile, records)
    except ComposeFailed as exc:
        raise ValueError(describe(template_name, exc)) from exc
    rendered = composed.rendered
    return {
        "subject": rendered.subject,
        "html": rendered.html,
        "text": rendered.text,
        "message": composed.outbound.raw,
    }
